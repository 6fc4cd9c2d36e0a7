"""The list of the book's models, and training them ahead (earlyexit.pretrain)."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from earlyexit.pretrain import missing, pretrain, read_model_list
from earlyexit.training import TrainConfig, cache_path
from earlyexit.transformer import LMConfig, lm_cache_path
from earlyexit.utils import MODEL_LIST, note_model

ROOT = Path(__file__).resolve().parents[1]

TINY_LM = LMConfig(layers=1, width=8, heads=1, context=8, steps=2, batch_size=2)


def note(config):
    kind, where = ("lm", lm_cache_path) if isinstance(config, LMConfig) else ("cnn", cache_path)
    note_model(where(config).stem, kind, asdict(config))


def test_models_are_noted_only_when_a_list_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_LIST, raising=False)
    monkeypatch.chdir(tmp_path)
    note(TrainConfig())
    assert not list(tmp_path.rglob("*.json"))
    listed = tmp_path / "models.json"
    monkeypatch.setenv(MODEL_LIST, str(listed))
    configs = [TrainConfig(seed=1), TrainConfig(channels=(4, 7), exit_weights=(0.0, 1.0)), TINY_LM]
    for config in configs + configs[:1]:  # noting a model twice lists it once
        note(config)
    assert sorted(read_model_list(listed), key=repr) == sorted(configs, key=repr)
    assert len(listed.read_text().splitlines()) == len(configs) + 2  # one line per model


def test_the_committed_list_holds_valid_configurations():
    configs = read_model_list(ROOT / "notebooks" / "models.json")
    assert TrainConfig() in configs and LMConfig() in configs  # Chapter 2's model, Chapter 11's


@pytest.mark.parametrize("entry, message", [
    ({"kind": "rnn", "config": {}}, "kind 'rnn'"),
    ({"kind": "cnn", "config": asdict(TrainConfig(seed=1))}, "describes the model"),
])
def test_a_bad_entry_is_named(tmp_path, entry, message):
    listed = tmp_path / "models.json"
    listed.write_text(json.dumps({cache_path(TrainConfig()).stem: entry}))
    with pytest.raises(ValueError, match=message):
        read_model_list(listed)


def test_missing_lists_untrained_models_longest_first(tmp_path):
    small, large = TrainConfig(channels=(4, 7)), TrainConfig(channels=(16, 32, 32))
    assert missing([small, TINY_LM, large], tmp_path) == [TINY_LM, large, small]
    cache_path(large, tmp_path).parent.mkdir(parents=True, exist_ok=True)
    cache_path(large, tmp_path).touch()
    assert missing([small, large], tmp_path) == [small]


def test_pretrain_trains_what_is_missing_once(tmp_path):
    assert pretrain([TINY_LM], workers=1, cache_dir=tmp_path, progress=False) == 1
    assert lm_cache_path(TINY_LM, tmp_path).exists()
    assert pretrain([TINY_LM], workers=1, cache_dir=tmp_path, progress=False) == 0


def test_pretrain_needs_a_worker():
    with pytest.raises(ValueError, match="workers"):
        pretrain([TINY_LM], workers=0)
