"""The training loop is seeded, its losses are what the chapters say, and the cache behaves."""

import dataclasses
import warnings

import pytest
import torch
import torch.nn.functional as F

from earlyexit.losses import masked_deep_loss
from earlyexit.models import EarlyExitCNN
from earlyexit.training import TrainConfig, train, train_cached, training_loss
from helpers import on_every_device

FAST = dict(epochs=1, batch_size=50)


def weights(model):
    return torch.cat([p.detach().flatten().cpu() for p in model.parameters()])


def grad_or_zero(parameter):
    return torch.zeros_like(parameter) if parameter.grad is None else parameter.grad.clone()


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tiny_splits):
    a = train(TrainConfig(seed=3, **FAST), tiny_splits, progress=False, device="cpu")
    b = train(TrainConfig(seed=3, **FAST), tiny_splits, progress=False, device="cpu")
    c = train(TrainConfig(seed=4, **FAST), tiny_splits, progress=False, device="cpu")
    assert torch.equal(weights(a.model), weights(b.model))
    assert not torch.equal(weights(a.model), weights(c.model))


def test_history_has_one_entry_per_epoch_with_loss_and_accuracy(tiny_splits):
    trained = train(TrainConfig(epochs=2, batch_size=50), tiny_splits, progress=False)
    assert [h["epoch"] for h in trained.history] == [1, 2]
    for key in ("train_loss", "val_exit1_accuracy", "val_exit2_accuracy", "train_deep_fraction"):
        assert all(isinstance(h[key], float) for h in trained.history)


@on_every_device
def test_training_runs_on_the_device_and_returns_a_cpu_model_from_the_cache(tiny_splits, tmp_path, device):
    trained = train_cached(TrainConfig(regime="masked", **FAST), tiny_splits, progress=False, cache_dir=tmp_path,
                           device=device)
    assert all(p.device.type == "cpu" for p in trained.model.parameters())
    assert 0.0 <= trained.history[-1]["train_deep_fraction"] <= 1.0


def test_three_exit_networks_train_in_every_regime(tiny_splits):
    for regime in ("joint", "masked", "learned"):
        trained = train(TrainConfig(regime=regime, channels=(8, 8, 8), **FAST), tiny_splits, progress=False)
        assert trained.model.num_exits == 3 and "val_exit3_accuracy" in trained.history[-1]


@pytest.mark.parametrize("channels", [(16, 32), (16, 32, 32)])
def test_routing_survivors_in_training_gives_the_masked_loss_gradient(tiny_splits, channels):
    """Training sends only the samples that did not exit through the next block; that must equal
    masking each later exit's loss over the full batch."""
    torch.manual_seed(0)
    model = EarlyExitCNN(channels)
    images, targets = tiny_splits.train_images[:40], tiny_splits.train_labels[:40]
    with torch.no_grad():
        median = float(model(images).exit_logits[0].softmax(1).amax(1).median())
    config = TrainConfig(regime="masked", channels=channels, gate_threshold=median, confidence_weight=0.0)
    loss, stats = training_loss(model, images, targets, config)
    assert 0 < stats["deep_fraction"] < 1  # the gate splits this batch
    model.zero_grad()
    loss.backward()
    routed = [grad_or_zero(p) for p in model.parameters()]

    model.zero_grad()
    out = model(images)
    keep = torch.ones(len(targets), dtype=torch.bool)
    reference = F.cross_entropy(out.exit_logits[0], targets)
    for k in range(1, len(channels)):
        keep = keep & (out.exit_logits[k - 1].softmax(1).amax(1).detach() <= median)
        reference = reference + masked_deep_loss(out.exit_logits[k], targets, keep)
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
    assert model.confidence_heads[0].linear.weight.grad.abs().sum() > 0
    assert model.blocks[0].conv.weight.grad is None or model.blocks[0].conv.weight.grad.abs().sum() == 0


@pytest.mark.parametrize("change, message", [
    ({"regime": "distill"}, "unknown regime"), ({"gate_threshold": 2.0}, "gate_threshold"),
    ({"lr": float("nan")}, "lr"), ({"lr": -1e-3}, "lr"), ({"lr": 0}, "lr"),
    ({"exit_weights": (1.0,)}, "1 exit_weights for 2 exits"), ({"exit_weights": (1.0, -1.0)}, "exit_weights"),
    ({"exit_weights": (0, 0)}, "at least one exit weight"), ({"confidence_weight": -1}, "confidence_weight"),
    ({"channels": (16, 0)}, r"channels\[1\] must be an int >= 1"),
    ({"epochs": 1.5}, "epochs"), ({"epochs": 0}, "epochs"), ({"batch_size": True}, "batch_size"),
    ({"dataset": "cifar"}, "unknown dataset"), ({"val_size": 0}, "val_size"), ({"seed": -1}, "seed"),
    ({"channels": (16,)}, "channels"),
])
def test_bad_configurations_are_refused_with_their_name(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


def test_equal_configurations_share_one_key():
    base = TrainConfig()
    for same in (TrainConfig(exit_weights=(1, 1)), TrainConfig(exit_weights=[1.0, 1.0]),
                 TrainConfig(gate_threshold=0.9), TrainConfig(confidence_weight=1), TrainConfig(channels=[16, 32])):
        assert same == base and same.key() == base.key()
    assert TrainConfig(gate_threshold=1) == TrainConfig(gate_threshold=1.0)
    assert TrainConfig(gate_threshold=1).key() == TrainConfig(gate_threshold=1.0).key()


def test_cache_key_changes_with_any_setting():
    base = TrainConfig()
    keys = {base.key()} | {dataclasses.replace(base, **change).key() for change in
                           ({"seed": 1}, {"lr": 1e-3}, {"regime": "masked"}, {"exit_weights": (0.3, 1.0)},
                            {"channels": (16, 32, 32), "exit_weights": None})}
    assert len(keys) == 6


def test_cache_miss_trains_then_hit_loads_the_same_weights(tiny_splits, tmp_path):
    tmp_path = tmp_path / "cache"
    config = TrainConfig(**FAST)
    first = train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path)
    assert not first.from_cache and (tmp_path / f"{config.name()}.safetensors").is_file()
    second = train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path)
    assert second.from_cache and second.history == first.history
    assert torch.equal(weights(first.model), weights(second.model))
    names = sorted(p.name for p in tmp_path.iterdir())  # no temp files left
    assert names == [f"{config.name()}.json", f"{config.name()}.safetensors"]


def test_a_list_of_exit_weights_hits_the_cache_without_warnings(tiny_splits, tmp_path):
    train_cached(TrainConfig(exit_weights=[0.3, 1], **FAST), tiny_splits, progress=False, cache_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = train_cached(TrainConfig(exit_weights=(0.3, 1.0), **FAST), tiny_splits, progress=False,
                             cache_dir=tmp_path)
    assert again.from_cache


@pytest.mark.parametrize("damage", [b"not a checkpoint", b""])
def test_a_damaged_cached_model_is_named_retrained_and_replaced(tiny_splits, tmp_path, damage):
    config = TrainConfig(**FAST)
    train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path)
    path = tmp_path / f"{config.name()}.safetensors"
    path.write_bytes(damage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path)
    assert not trained.from_cache
    assert any("retraining" in str(w.message) and path.name in str(w.message) for w in caught)
    assert train_cached(config, tiny_splits, progress=False, cache_dir=tmp_path).from_cache


def test_a_cached_model_is_not_handed_out_for_another_dataset(tiny_splits, tmp_path):
    train_cached(TrainConfig(**FAST), tiny_splits, progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="config is for 'mnist'"):
        train_cached(TrainConfig(dataset="mnist", **FAST), tiny_splits, progress=False, cache_dir=tmp_path)


def test_a_prefix_of_training_is_the_start_of_the_whole_run(tiny_splits):
    config = TrainConfig(epochs=3, batch_size=50)
    whole = train(config, tiny_splits, progress=False)
    prefix = train(config, tiny_splits, progress=False, stop_after=1)
    assert prefix.history == whole.history[:1]


def test_data_of_another_dataset_is_refused(tiny_splits):
    with pytest.raises(ValueError, match="config is for 'mnist'"):
        train(TrainConfig(dataset="mnist", **FAST), tiny_splits, progress=False)


def test_a_nan_gate_score_goes_on_in_training_as_in_routing():
    """Training gates with the routing's exit decision: a NaN score never exits."""
    torch.manual_seed(0)
    model = EarlyExitCNN()
    with torch.no_grad():
        model.confidence_heads[0].linear.weight.fill_(float("nan"))
    images, targets = torch.randn(6, 1, 28, 28), torch.arange(6)
    _, stats = training_loss(model, images, targets, TrainConfig(regime="learned"))
    assert stats["deep_fraction"] == 1.0
