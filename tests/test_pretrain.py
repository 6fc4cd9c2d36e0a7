"""`make models`: the manifest plans the book's models, and pretrain trains what is missing, once,
and never mixes models of two training recipes."""

import pytest

from earlyexit import pretrain as pretrain_module
from earlyexit.checkpoints import CheckpointError, Entry, Manifest, load_or_train, read_manifest, write_manifest
from earlyexit.pretrain import config_of, missing, plan, pretrain
from earlyexit.text import make_splits
from earlyexit.training import TrainConfig
from earlyexit.transformer import EarlyExitLM, LMConfig, train_lm

TINY_LM = LMConfig(layers=1, width=8, heads=1, context=8, steps=2, batch_size=2)


@pytest.fixture
def quick_recipe(monkeypatch):
    """Fingerprints are tested in test_provenance.py; here a constant stands in (no data needed)."""
    monkeypatch.setattr(pretrain_module, "fingerprint", lambda kind: {"data": kind, "runs": {}})
    monkeypatch.setattr(pretrain_module, "make_splits", lambda: make_splits(train_chains=50, held_out_chains=5))


def test_planning_lists_each_model_once(tmp_path):
    configs = [TrainConfig(seed=1), TrainConfig(channels=(4, 7), exit_weights=(0.0, 1.0)), TINY_LM]
    assert plan(configs + configs[:1], tmp_path) == 3
    assert plan(configs, tmp_path) == 0
    entries = read_manifest(tmp_path).entries
    assert sorted((config_of(e) for e in entries.values()), key=repr) == sorted(configs, key=repr)


def test_missing_lists_untrained_models_longest_first(tmp_path):
    small, large, lm = TrainConfig(channels=(4, 7)), TrainConfig(channels=(16, 32, 32)), LMConfig(steps=8000)
    plan([small, lm, large, TINY_LM], tmp_path)
    assert [config_of(e) for e in missing(read_manifest(tmp_path), tmp_path)] == [lm, large, small, TINY_LM]


def test_pretrain_trains_what_is_missing_once_and_ships_it(tmp_path, quick_recipe):
    plan([TINY_LM], tmp_path)
    assert pretrain(workers=1, folder=tmp_path, progress=False) == 1
    entry = read_manifest(tmp_path).entries[TINY_LM.name()]
    assert entry.file and (tmp_path / entry.file).is_file() and entry.trained_on["threads"] >= 1
    assert entry.log["steps"] == 2 and len(entry.log["loss"]) == 2
    assert pretrain(workers=1, folder=tmp_path, progress=False) == 0
    loaded = load_or_train(TINY_LM.name(), "lm", TINY_LM.as_json(), lambda: EarlyExitLM(TINY_LM),
                           lambda: pytest.fail("retrained"), shipped=tmp_path)
    assert loaded.source == "shipped"
    assert read_manifest(tmp_path).fingerprints == {"lm": {"data": "lm", "runs": {}}}


def test_pretrain_refuses_to_mix_two_recipes(tmp_path, quick_recipe):
    plan([TINY_LM], tmp_path)
    manifest = read_manifest(tmp_path)
    manifest.fingerprints["lm"] = {"data": "another corpus", "runs": {}}
    write_manifest(manifest, tmp_path)
    with pytest.raises(RuntimeError, match="lm training recipe changed.*training data differ"):
        pretrain(workers=1, folder=tmp_path, progress=False)


@pytest.mark.parametrize("entry, message", [
    (Entry("lm-0", "lm", {"layers": 0}), "not a valid lm configuration"),
    (Entry("joint-0", "cnn", TrainConfig(seed=1).as_json()), "describes the model"),
])
def test_a_bad_entry_is_named(entry, message):
    with pytest.raises(ValueError, match=f"'{entry.name}'.*{message}"):
        config_of(entry)


def test_pretrain_needs_a_worker():
    with pytest.raises(ValueError, match="workers"):
        pretrain(workers=0)


def test_a_damaged_list_is_named(tmp_path):
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(CheckpointError, match="manifest.json"):
        pretrain(workers=1, folder=tmp_path)
    write_manifest(Manifest(), tmp_path)
    assert pretrain(workers=1, folder=tmp_path) == 0


def test_pretrain_resumes_a_saved_run_and_removes_its_state(tmp_path, quick_recipe):
    config = LMConfig(layers=1, width=8, heads=1, context=8, steps=6, batch_size=2)
    plan([config], tmp_path)
    state = pretrain_module.resume_file(read_manifest(tmp_path).entries[config.name()], tmp_path)
    train_lm(config, make_splits(train_chains=50, held_out_chains=5), progress=False, stop_after=3, resume=state)
    assert pretrain(workers=1, folder=tmp_path, progress=False, resume=True) == 1
    entry = read_manifest(tmp_path).entries[config.name()]
    assert [s["from_step"] for s in entry.log["segments"]] == [0, 3] and entry.log["steps"] == 6
    assert not state.exists()  # shipped, so the run's state is gone
