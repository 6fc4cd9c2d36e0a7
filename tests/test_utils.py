"""The package's plumbing: files written whole or not at all."""

from __future__ import annotations

import os

import pytest
import torch

from earlyexit import checks, utils


def test_atomic_write_writes_text_and_bytes_and_leaves_no_temporary_file(tmp_path):
    folder = tmp_path / "out"
    utils.atomic_write(folder / "deep" / "a.txt", "text")
    utils.atomic_write(str(folder / "b.bin"), b"\x00\x01")
    assert (folder / "deep" / "a.txt").read_text() == "text" and (folder / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in folder.iterdir()) == ["b.bin", "deep"]


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "kept.json"
    target.write_text("old")

    def broken_rename(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_rename)
    with pytest.raises(OSError, match="disk full"):
        utils.atomic_write(target, "new")
    assert target.read_text() == "old" and [p.name for p in folder.iterdir()] == ["kept.json"]


@pytest.mark.parametrize("content", [None, 3, ["text"]])
def test_atomic_write_refuses_what_is_neither_text_nor_bytes(tmp_path, content):
    with pytest.raises(TypeError, match="content must be str or bytes"):
        utils.atomic_write(tmp_path / "out" / "x", content)
    assert not (tmp_path / "out").exists()


# --- The shared argument checks: every public function refuses what it cannot handle through them.


def test_seeding_and_progress_refuse_what_is_not_a_seed_or_a_yes_or_no():
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        utils.seed_everything(1.5)
    with pytest.raises(TypeError, match="progress must be True or False"):
        utils.progress_enabled("no")  # a non-empty string read as "show the bars"
    assert utils.progress_enabled(False) is False
    assert checks.check_token_ids("ids", [], 14, 1).dtype == torch.long  # an empty list holds no float


def test_resolve_device_names_the_device_given_or_the_default():
    assert utils.resolve_device("cpu") == torch.device("cpu")
    assert utils.resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert utils.resolve_device(None) == utils.default_device()
    with pytest.raises(RuntimeError):
        utils.resolve_device("no-such-device")
