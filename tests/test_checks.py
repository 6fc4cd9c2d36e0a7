"""The shared argument and file checks refuse what the package cannot handle, by name."""

from __future__ import annotations

import json

import pytest
import torch

from earlyexit import checks


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", 2**64])
def test_a_seed_is_an_int_from_zero_and_is_named_when_refused(seed):
    with pytest.raises(ValueError, match="my_seed must be an int >= 0"):
        checks.check_seed("my_seed", seed)
    assert checks.check_seed("my_seed", 2**63 - 1) == 2**63 - 1


def test_an_int_may_have_a_maximum():
    assert checks.check_int("count", 3, 1, 3) == 3
    with pytest.raises(ValueError, match="count must be an int from 1 to 3, got 4"):
        checks.check_int("count", 4, 1, 3)


def test_values_of_another_number_of_dimensions_are_refused_not_flattened():
    with pytest.raises(ValueError, match=r"values must be 1-D, got shape \(2, 2\)"):
        checks.check_finite("values", [[1.0, 2.0], [3.0, 4.0]], ndim=1)
    with pytest.raises(ValueError, match=r"flags must be 1-D, got shape \(1, 2\)"):
        checks.check_flags("flags", torch.tensor([[True, False]]), ndim=1)
    assert checks.check_finite("values", [[1.0, 2.0]]).shape == (2,)  # without ndim, as before


def test_token_ids_must_be_integers_in_the_vocabulary_and_of_the_right_shape():
    ids = checks.check_token_ids("ids", [[1, 2, 3]], 14, 2)
    assert ids.dtype == torch.long and ids.shape == (1, 3)
    with pytest.raises(TypeError, match="ids must hold integer token ids, got dtype torch.float32"):
        checks.check_token_ids("ids", torch.tensor([1.7, 2.0]), 14, 1)  # never truncated to 1
    with pytest.raises(TypeError, match="ids must hold integer token ids"):
        checks.check_token_ids("ids", torch.tensor([True]), 14, 1)
    with pytest.raises(ValueError, match="ids must hold token ids from 0 to 13, got values from -1 to 2"):
        checks.check_token_ids("ids", [-1, 2], 14, 1)
    with pytest.raises(ValueError, match=r"ids must be a 1-D tensor of token ids, got shape \(2, 2\)"):
        checks.check_token_ids("ids", [[1, 2], [3, 4]], 14, 1)
    with pytest.raises(TypeError, match="ids must be a tensor or a sequence of numbers"):
        checks.check_token_ids("ids", None, 14, 1)


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
        checks.read_json_file(path, "list of things")


def test_a_json_file_of_the_expected_structure_is_read(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"a": [1, 2]}))
    assert checks.read_json_file(path, "file") == {"a": [1, 2]}
    path.write_text("[1, 2]")
    assert checks.read_json_file(path, "file", expect=list) == [1, 2]
    assert checks.read_json_file(path, "file", expect=None) == [1, 2]




def test_a_number_read_from_a_tensor_with_its_graph_raises_no_warning():
    import warnings
    loss = (torch.ones(1, requires_grad=True) * 2).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert checks.check_number("loss", loss) == 2.0
