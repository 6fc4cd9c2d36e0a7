"""The package's plumbing: files written whole or not at all."""

from __future__ import annotations

import json
import os

import pytest
import torch

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


# --- The shared argument checks: every public function refuses what it cannot handle through them.


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", 2**64])
def test_a_seed_is_an_int_from_zero_and_is_named_when_refused(seed):
    with pytest.raises(ValueError, match="my_seed must be an int >= 0"):
        utils.check_seed("my_seed", seed)
    assert utils.check_seed("my_seed", 2**63 - 1) == 2**63 - 1


def test_an_int_may_have_a_maximum():
    assert utils.check_int("count", 3, 1, 3) == 3
    with pytest.raises(ValueError, match="count must be an int from 1 to 3, got 4"):
        utils.check_int("count", 4, 1, 3)


def test_values_of_another_number_of_dimensions_are_refused_not_flattened():
    with pytest.raises(ValueError, match=r"values must be 1-D, got shape \(2, 2\)"):
        utils.check_finite("values", [[1.0, 2.0], [3.0, 4.0]], ndim=1)
    with pytest.raises(ValueError, match=r"flags must be 1-D, got shape \(1, 2\)"):
        utils.check_flags("flags", torch.tensor([[True, False]]), ndim=1)
    assert utils.check_finite("values", [[1.0, 2.0]]).shape == (2,)  # without ndim, as before


def test_token_ids_must_be_integers_in_the_vocabulary_and_of_the_right_shape():
    ids = utils.check_token_ids("ids", [[1, 2, 3]], 14, 2)
    assert ids.dtype == torch.long and ids.shape == (1, 3)
    with pytest.raises(TypeError, match="ids must hold integer token ids, got dtype torch.float32"):
        utils.check_token_ids("ids", torch.tensor([1.7, 2.0]), 14, 1)  # never truncated to 1
    with pytest.raises(TypeError, match="ids must hold integer token ids"):
        utils.check_token_ids("ids", torch.tensor([True]), 14, 1)
    with pytest.raises(ValueError, match="ids must hold token ids from 0 to 13, got values from -1 to 2"):
        utils.check_token_ids("ids", [-1, 2], 14, 1)
    with pytest.raises(ValueError, match=r"ids must be a 1-D tensor of token ids, got shape \(2, 2\)"):
        utils.check_token_ids("ids", [[1, 2], [3, 4]], 14, 1)
    with pytest.raises(TypeError, match="ids must be a tensor or a sequence of numbers"):
        utils.check_token_ids("ids", None, 14, 1)


@pytest.mark.parametrize("content, problem", [
    (b"", "is empty"),
    (b"  \n", "is empty"),
    (b'{"results": {"a": ', "is not valid JSON"),  # truncated
    (b"not json", "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b"[1, 2]", "must hold a JSON object, got a JSON array"),
    (b'"text"', "must hold a JSON object, got a JSON string"),
])
def test_a_damaged_json_file_is_refused_with_its_name_and_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "thing.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"thing\.json: this list of things {problem}"):
        utils.read_json_file(path, "list of things")


def test_a_json_file_of_the_expected_structure_is_read(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"a": [1, 2]}))
    assert utils.read_json_file(path, "file") == {"a": [1, 2]}
    path.write_text("[1, 2]")
    assert utils.read_json_file(path, "file", expect=list) == utils.read_json_file(path, "file", expect=None) == [1, 2]


def test_seeding_and_progress_refuse_what_is_not_a_seed_or_a_yes_or_no():
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        utils.seed_everything(1.5)
    with pytest.raises(TypeError, match="progress must be True or False"):
        utils.progress_enabled("no")  # a non-empty string read as "show the bars"
    assert utils.progress_enabled(False) is False
    assert utils.check_token_ids("ids", [], 14, 1).dtype == torch.long  # an empty list holds no float
