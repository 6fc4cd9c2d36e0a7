"""The training loop is seeded, its losses are what the chapters say, and the cache behaves."""

import dataclasses
import warnings

import pytest
import torch
import torch.nn.functional as F

from earlyexit.losses import masked_deep_loss
from earlyexit.models import EarlyExitCNN
from earlyexit.training import TrainConfig, cache_path, train, train_cached, training_loss

FAST = dict(epochs=1, batch_size=50)


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def grad_or_zero(parameter):
    return torch.zeros_like(parameter) if parameter.grad is None else parameter.grad.clone()


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tiny_splits):
    a = train(TrainConfig(seed=3, **FAST), tiny_splits, progress=False)
    b = train(TrainConfig(seed=3, **FAST), tiny_splits, progress=False)
    c = train(TrainConfig(seed=4, **FAST), tiny_splits, progress=False)
    assert torch.equal(weights(a.model), weights(b.model))
    assert not torch.equal(weights(a.model), weights(c.model))


def test_history_has_one_entry_per_epoch_with_loss_and_accuracy(tiny_splits):
    trained = train(TrainConfig(epochs=2, batch_size=50), tiny_splits, progress=False)
    assert [h["epoch"] for h in trained.history] == [1, 2]
    for key in ("train_loss", "val_exit1_accuracy", "val_exit2_accuracy", "train_deep_fraction"):
        assert all(isinstance(h[key], float) for h in trained.history)


def test_routing_survivors_in_training_gives_the_masked_loss_gradient(tiny_splits):
    """Training sends only non-exiting samples through block 2; that must equal masking the
    deep loss over the full batch."""
    torch.manual_seed(0)
    model = EarlyExitCNN()
    images, targets = tiny_splits.train_images[:40], tiny_splits.train_labels[:40]
    with torch.no_grad():
        median = float(model(images).exit_logits[0].softmax(1).amax(1).median())
    config = TrainConfig(regime="masked", gate_threshold=median, confidence_weight=0.0)
    loss, stats = training_loss(model, images, targets, config)
    assert 0 < stats["deep_fraction"] < 1  # the gate splits this batch
    model.zero_grad()
    loss.backward()
    routed = [grad_or_zero(p) for p in model.parameters()]

    model.zero_grad()
    out = model(images)
    keep = out.exit_logits[0].softmax(1).amax(1).detach() <= config.gate_threshold
    reference = F.cross_entropy(out.exit_logits[0], targets) + masked_deep_loss(out.exit_logits[1], targets, keep)
    reference.backward()
    for got, expected in zip(routed, [grad_or_zero(p) for p in model.parameters()]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_confidence_head_trains_without_touching_the_backbone(tiny_splits):
    torch.manual_seed(0)
    model = EarlyExitCNN()
    images, targets = tiny_splits.train_images[:40], tiny_splits.train_labels[:40]
    with_conf, _ = training_loss(model, images, targets, TrainConfig(confidence_weight=1.0))
    without, _ = training_loss(model, images, targets, TrainConfig(confidence_weight=0.0))
    (with_conf - without).backward()
    assert model.confidence1[1].weight.grad.abs().sum() > 0
    assert model.block1[0].weight.grad is None or model.block1[0].weight.grad.abs().sum() == 0


def test_unknown_regime_and_bad_gate_are_rejected():
    with pytest.raises(ValueError, match="unknown regime"):
        TrainConfig(regime="distill")
    with pytest.raises(ValueError, match="gate_threshold"):
        TrainConfig(gate_threshold=2.0)


def test_cache_key_changes_with_any_setting():
    base = TrainConfig()
    keys = {base.key()} | {dataclasses.replace(base, **change).key() for change in
                           ({"seed": 1}, {"lr": 1e-3}, {"regime": "masked"}, {"exit_weights": (0.3, 1.0)})}
    assert len(keys) == 5


def test_cache_miss_trains_then_hit_loads_the_same_weights(tiny_splits, tmp_path):
    tmp_path = tmp_path / "cache"
    config = TrainConfig(**FAST)
    first = train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path)
    assert not first.from_cache and cache_path(config, tmp_path).is_file()
    second = train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path)
    assert second.from_cache and second.history == first.history
    assert torch.equal(weights(first.model), weights(second.model))
    assert [p.name for p in tmp_path.iterdir()] == [cache_path(config, tmp_path).name]  # no temp files left


def test_corrupt_checkpoint_is_retrained_and_replaced(tiny_splits, tmp_path):
    config = TrainConfig(**FAST)
    path = cache_path(config, tmp_path)
    path.write_bytes(b"not a checkpoint")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path)
    assert not trained.from_cache and any("retraining" in str(w.message) for w in caught)
    assert train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path).from_cache


def test_data_of_another_dataset_is_refused(tiny_splits):
    with pytest.raises(ValueError, match="config is for 'mnist'"):
        train(TrainConfig(dataset="mnist", **FAST), tiny_splits, progress=False)
