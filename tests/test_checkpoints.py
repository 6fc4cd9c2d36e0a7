"""Shipped weights load only when they are exactly what the manifest says; anything else is refused
with an error that names the file. Cached weights are a cache: a damaged one is retrained."""

import json

import pytest
import torch
from safetensors.torch import save as save_safetensors

from earlyexit.checkpoints import (
    MANIFEST_NAME,
    CheckpointError,
    Entry,
    Manifest,
    load_or_train,
    machine,
    read_manifest,
    sha256_of,
    ship,
    where_trained,
    write_manifest,
)
from earlyexit.models import EarlyExitCNN

CONFIG = {"channels": [4, 6]}


def build():
    return EarlyExitCNN((4, 6))


def never_train():
    raise AssertionError("a shipped model must never be retrained behind the reader's back")


@pytest.fixture
def shipped(tmp_path):
    """A folder holding one shipped model, its manifest, and the model itself."""
    torch.manual_seed(0)
    model = build()
    entry = ship("tiny", "cnn", CONFIG, model, [{"epoch": 1}], 1.0, {"threads": 1}, tmp_path)
    write_manifest(Manifest({"tiny": entry}), tmp_path)
    return tmp_path, entry, model


def load(folder):
    return load_or_train("tiny", "cnn", CONFIG, build, never_train, cache=folder / "cache", shipped=folder)


def test_a_shipped_model_loads_as_it_was_saved(shipped):
    folder, entry, model = shipped
    loaded = load(folder)
    assert loaded.source == "shipped" and loaded.log == [{"epoch": 1}]
    for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)
    assert entry.file == f"tiny-{entry.sha256[:8]}.safetensors"  # the name carries the hash


def test_a_tampered_file_is_refused_by_its_hash(shipped):
    folder, entry, _ = shipped
    data = bytearray((folder / entry.file).read_bytes())
    data[-3] ^= 0x01  # one bit of one weight
    (folder / entry.file).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{entry.file}.*SHA-256"):
        load(folder)


def test_a_missing_file_says_how_to_get_it(shipped):
    folder, entry, _ = shipped
    (folder / entry.file).unlink()
    with pytest.raises(CheckpointError, match=f"{entry.file} is missing.*make models"):
        load(folder)


def test_a_planned_model_not_yet_trained_says_so(tmp_path):
    write_manifest(Manifest({"tiny": Entry("tiny", "cnn", CONFIG)}), tmp_path)
    with pytest.raises(CheckpointError, match="not been trained yet.*make models"):
        load(tmp_path)


def reship(folder, entry, data):
    """Replace the file with ``data`` and make the manifest agree: damage the hash cannot see."""
    (folder / entry.file).write_bytes(data)
    entry.sha256 = sha256_of(data)
    write_manifest(Manifest({"tiny": entry}), folder)


@pytest.mark.parametrize("data, message", [
    (b"", "not a readable safetensors file"),
    (b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", "not a readable safetensors file"),
    (save_safetensors({"weight": torch.zeros(3)}), "another model's tensors"),
])
def test_a_file_that_is_not_this_model_is_refused(shipped, data, message):
    folder, entry, _ = shipped
    reship(folder, entry, data)
    with pytest.raises(CheckpointError, match=f"{entry.file}.*{message}"):
        load(folder)


def test_nan_weights_are_refused(shipped):
    folder, entry, model = shipped
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["exits.0.linear.bias"][0] = float("nan")
    reship(folder, entry, save_safetensors(state))
    with pytest.raises(CheckpointError, match="NaN or infinite weights in \\['exits.0.linear.bias'\\]"):
        load(folder)


def test_an_entry_of_another_configuration_is_refused(shipped):
    folder, _, _ = shipped
    with pytest.raises(CheckpointError, match="another configuration"):
        load_or_train("tiny", "cnn", {"channels": [4, 7]}, build, never_train, shipped=folder)


@pytest.mark.parametrize("text, message", [
    ("", "not valid JSON"),
    ('{"format": 1, "models": {', "not valid JSON"),
    ("[]", "expected an object with a 'models' object"),
    ('{"format": 1}', "expected an object with a 'models' object"),
    ('{"format": 7, "models": {}}', "format 7"),
    ('{"format": 1, "models": {"a": {"config": {}}}}', "entry 'a' needs a 'kind'"),
    ('{"format": 1, "models": {"a": {"kind": "cnn", "config": {}, "file": "a.safetensors"}}}', "without its SHA-256"),
    ('{"format": 1, "models": {"a": {"kind": "cnn", "config": {}, "file": "../a.safetensors", "sha256": "0"}}}',
     "file name in the folder"),
    ('{"format": 1, "models": {"a": {"kind": "cnn", "config": {}, "file": 3, "sha256": "0"}}}', "must be a string"),
])
def test_a_damaged_manifest_is_named_with_what_is_wrong(tmp_path, text, message):
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(CheckpointError, match=f"{MANIFEST_NAME}: .*{message}"):
        read_manifest(tmp_path)


def test_a_model_that_is_not_shipped_is_trained_once_then_cached(tmp_path):
    calls = []

    def train():
        calls.append(1)
        torch.manual_seed(1)
        return build(), {"loss": [1.0]}, 2.5

    first = load_or_train("other", "cnn", CONFIG, build, train, cache=tmp_path / "cache", shipped=tmp_path)
    again = load_or_train("other", "cnn", CONFIG, build, train, cache=tmp_path / "cache", shipped=tmp_path)
    assert (first.source, again.source, len(calls)) == ("trained", "cache", 1)
    assert again.log == {"loss": [1.0]} and again.train_seconds == 2.5
    record = json.loads((tmp_path / "cache" / "other.json").read_text())
    assert record["config"] == CONFIG and record["trained_on"]["torch"]


def test_the_manifest_round_trips(shipped):
    folder, entry, _ = shipped
    again = read_manifest(folder).entries["tiny"]
    assert again == entry


def test_where_a_model_trained_is_said_from_its_entry(shipped):
    folder, entry, _ = shipped
    manifest = read_manifest(folder)
    manifest.entries["tiny"].trained_on = {"threads": 1, "cpu": "Some CPU"}
    write_manifest(manifest, folder)
    assert where_trained("tiny", folder) == "1 CPU thread (Some CPU)"
    manifest.entries["tiny"].trained_on = {"threads": 4, "cpu": "Some CPU", "gpu": "Some GPU"}
    write_manifest(manifest, folder)
    assert where_trained("tiny", folder) == "a GPU (Some GPU)"
    (folder / entry.file).unlink()  # a model this machine would train itself
    assert where_trained("tiny", folder) == "this machine"
    assert where_trained("no such model", folder) == "this machine"


def test_a_cpu_training_records_no_gpu():
    found = machine("cpu")
    assert "gpu" not in found and {"torch", "python", "threads", "cpu"} <= set(found)
