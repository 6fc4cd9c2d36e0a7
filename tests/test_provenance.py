"""The shipped weights are what the book says they are: every file matches its hash, the training
code still has the fingerprint they were trained under, and retraining the start of a shipped
model reproduces its log. A doctored recipe changes the fingerprint."""

import dataclasses
import functools
from pathlib import Path

import pytest
import torch

from earlyexit import data as data_module
from earlyexit import provenance, training, transformer
from earlyexit.checkpoints import read_manifest, sha256_of
from earlyexit.data import load_splits
from earlyexit.models import EarlyExitCNN
from earlyexit.pretrain import config_of
from earlyexit.recipes import LADDER_SEEDS, SEEDS, book_models
from earlyexit.stats import seed_tolerance
from earlyexit.text import make_splits
from earlyexit.training import TrainConfig, train
from earlyexit.transformer import EarlyExitLM, LMConfig, train_lm

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "notebooks" / "models"
ORIGINAL_DEBIAN = data_module.DATASETS["fashion-mnist"].debian_dir


@pytest.fixture
def real_repository(monkeypatch):
    """These tests read the real data and the real shipped models (the others are cut off from them)."""
    monkeypatch.setenv("EARLYEXIT_HOME", str(ROOT))
    info = data_module.DATASETS["fashion-mnist"]
    monkeypatch.setitem(data_module.DATASETS, "fashion-mnist", dataclasses.replace(info, debian_dir=ORIGINAL_DEBIAN))


def test_the_manifest_ships_exactly_the_models_the_book_plans():
    manifest = read_manifest(MODELS)
    assert sorted(manifest.entries) == sorted(c.name() for c in book_models())
    listed = {e.file for e in manifest.entries.values()}
    assert None not in listed, "planned models not trained yet: run `make models`"
    assert {p.name for p in MODELS.glob("*.safetensors")} == listed  # no stray weights


def test_the_readme_states_the_shipped_training_time_the_manifest_records():
    import re
    stated = re.search(r"`train_seconds`\s+add up to ([\d.]+) hours", (ROOT / "README.md").read_text())
    assert stated, "the README no longer says how long the shipped models trained"
    total = sum(e.train_seconds or 0 for e in read_manifest(MODELS).entries.values()) / 3600
    assert stated.group(1) == f"{total:.1f}"


def test_every_shipped_file_matches_its_hash_and_holds_its_model():
    for entry in read_manifest(MODELS).entries.values():
        data = (MODELS / entry.file).read_bytes()
        assert sha256_of(data) == entry.sha256, entry.file
        assert entry.file.endswith(f"-{entry.sha256[:8]}.safetensors")
        config = config_of(entry)
        model = EarlyExitLM(config) if isinstance(config, LMConfig) else EarlyExitCNN(config.channels)
        assert entry.parameters == sum(p.numel() for p in model.parameters())
        assert entry.log and entry.trained_on.get("torch")


def test_the_training_code_still_has_the_fingerprint_the_weights_were_trained_under(real_repository):
    recorded = read_manifest(MODELS).fingerprints
    assert set(recorded) == {"cnn", "lm"}
    for kind in ("cnn", "lm"):
        assert provenance.differences(recorded[kind], provenance.fingerprint(kind)) == [], kind


@functools.cache
def synthetic_fingerprint():
    return provenance.cnn_fingerprint(provenance._synthetic_splits())


@pytest.mark.parametrize("doctor", [
    # another initialisation
    lambda mp: mp.setattr(training, "seed_everything", lambda seed: torch.manual_seed(seed + 1)),
    # a loss that weighs the confidence heads twice
    lambda mp: mp.setattr(training, "confidence_loss",
                          functools.partial(lambda f, *a: 2 * f(*a), training.confidence_loss)),
    # another schedule: a shorter warm-up
    lambda mp: mp.setattr(training.torch.optim.lr_scheduler, "OneCycleLR",
                          functools.partial(torch.optim.lr_scheduler.OneCycleLR, pct_start=0.1)),
])
def test_a_doctored_cnn_recipe_changes_the_fingerprint(monkeypatch, doctor):
    clean = synthetic_fingerprint()
    doctor(monkeypatch)
    assert provenance.differences(clean, provenance.cnn_fingerprint(provenance._synthetic_splits()))


def test_a_doctored_lm_recipe_or_corpus_changes_the_fingerprint(monkeypatch):
    corpus = make_splits(train_chains=300, held_out_chains=10)
    clean = provenance.lm_fingerprint(corpus)
    adamw = torch.optim.AdamW
    doubled = lambda params, **kw: adamw(params, **{**kw, "weight_decay": 0.02})  # noqa: E731
    monkeypatch.setattr(transformer.torch.optim, "AdamW", doubled)
    assert provenance.differences(clean, provenance.lm_fingerprint(corpus))
    monkeypatch.undo()
    other = make_splits(train_chains=301, held_out_chains=10)
    assert "the training data differ (its digest changed)" in provenance.differences(
        clean, provenance.lm_fingerprint(other))


def shipped(config):
    return read_manifest(MODELS).entries[config.name()]


def test_retraining_the_first_epoch_of_the_standard_model_reproduces_its_log(real_repository):
    """CI retrains the start of a shipped CNN: its first epoch must land where the log says, within
    four times the spread between seeds at that epoch (another CPU takes another path, as a seed does)."""
    config = TrainConfig(seed=0)
    retrained = train(config, load_splits(), progress=False, stop_after=1).history[0]
    for key in ("val_exit1_accuracy", "val_exit2_accuracy"):
        logged = [shipped(TrainConfig(seed=s)).log[0][key] for s in SEEDS]
        tolerance = seed_tolerance(logged, floor=0.002)
        assert abs(retrained[key] - logged[0]) <= tolerance, (key, retrained[key], logged[0], tolerance)


def test_retraining_the_start_of_the_language_model_reproduces_its_log(real_repository):
    # A shipped model of the recipe, from the ladder's 12,000-step rung: it logs every 120 steps, so
    # its first 480 steps give four logged mean losses (about 40 s on one core), where the
    # 96,000-step models log every 960. Both seeds trained on one CPU thread (a GPU adds in
    # another order: its log would drift from a CPU's sooner).
    configs = [LMConfig(steps=12000, seed=s) for s in LADDER_SEEDS]
    assert all("gpu" not in shipped(c).trained_on for c in configs)
    config, every, points = configs[0], shipped(configs[0]).log["loss_every"], 4
    retrained = train_lm(config, make_splits(), progress=False, stop_after=points * every, device="cpu").losses
    assert len(retrained) == points
    for i in range(points):
        logged = [shipped(c).log["loss"][i] for c in configs]
        assert abs(retrained[i] - logged[0]) <= seed_tolerance(logged, floor=0.01), (i, retrained[i], logged)
