"""The package's plumbing: files written whole or not at all."""

from __future__ import annotations

import os

import pytest

from earlyexit import utils


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
