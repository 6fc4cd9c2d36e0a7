"""The multi-exit CNN: shapes of every output for any number of blocks, and clear errors for bad input."""

import pytest
import torch

from earlyexit.flops import exit_costs, full_network_flops, stage_flops
from earlyexit.models import EarlyExitCNN, feature_sizes, logits_tolerance


@pytest.mark.parametrize("channels", [(16, 32), (16, 32, 32), (8, 8, 8, 8)])
def test_every_exit_returns_logits_of_the_right_shape(channels):
    torch.manual_seed(0)
    model = EarlyExitCNN(channels)
    out = model(torch.randn(5, 1, 28, 28))
    assert model.num_exits == len(channels) == len(out.exit_logits)
    assert [tuple(logits.shape) for logits in out.exit_logits] == [(5, 10)] * len(channels)
    assert [tuple(c.shape) for c in out.confidence_logits] == [(5,)] * (len(channels) - 1)
    # logits, not probabilities: rows do not sum to one
    assert not torch.allclose(out.exit_logits[0].sum(1), torch.ones(5))


def test_each_block_keeps_the_size_until_its_pool_halves_it():
    model = EarlyExitCNN((16, 32, 32))
    x = torch.zeros(2, 1, 28, 28)
    shapes = []
    for block in model.blocks:
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 14, 14), (32, 7, 7), (32, 3, 3)] == feature_sizes((16, 32, 32))


def test_the_same_seed_gives_the_forum_networks_weights_whatever_the_names():
    """Layers are created in the forum's order (block 1, block 2, exit 1, confidence 1, exit 2)."""
    torch.manual_seed(0)
    expected = [torch.nn.Conv2d(1, 16, 5, padding=2), torch.nn.Conv2d(16, 32, 5, padding=2),
                torch.nn.Linear(3136, 10), torch.nn.Linear(3136, 1), torch.nn.Linear(1568, 10)]
    torch.manual_seed(0)
    model = EarlyExitCNN()
    got = [model.blocks[0].conv, model.blocks[1].conv, model.exits[0].linear, model.confidence_heads[0].linear,
           model.exits[1].linear]
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(expected, got))


@pytest.mark.parametrize("images, error, message", [
    (torch.zeros(1, 28, 28), ValueError, "4-D batch.*unsqueeze"),
    (torch.zeros(2, 3, 28, 28), ValueError, "expected 1 input channel.*got 3"),
    (torch.zeros(2, 1, 32, 32), ValueError, "expected 28x28 images, got 32x32"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), TypeError, "floating-point"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.float64), TypeError, "float32.*images.float"),
    ([[0.0]], TypeError, "must be a torch.Tensor"),
])
def test_bad_input_raises_an_error_saying_what_was_expected(images, error, message):
    with pytest.raises(error, match=message):
        EarlyExitCNN()(images)


@pytest.mark.parametrize("channels", [(16,), (16, 0), (16, 2.5), (4, 4, 4, 4, 4)])
def test_impossible_architectures_are_refused(channels):
    with pytest.raises(ValueError, match="channels|blocks"):
        EarlyExitCNN(channels)


def test_flops_are_counted_per_stage_and_the_exit_1_path_is_about_an_eighth():
    model = EarlyExitCNN()
    stages = stage_flops(model)
    assert stages["block 1"] == 2 * 16 * 28 * 28 * 25  # FLOPs = 2 x multiply-adds of the 5x5 conv
    assert stages["block 2"] == 2 * 32 * 14 * 14 * 16 * 25
    assert stages["exit 1"] == 2 * 16 * 14 * 14 * 10
    early, deep = exit_costs(model)
    assert deep == early + stages["block 2"] + stages["exit 2"]
    assert full_network_flops(model) == stages["block 1"] + stages["block 2"] + stages["exit 2"]
    assert 0.10 < early / full_network_flops(model) < 0.14
    assert exit_costs(model, "learned")[0] == early + stages["confidence 1"]
    assert exit_costs(model, "learned")[1] == deep + stages["confidence 1"]


def test_exit_costs_of_a_three_exit_network_add_up():
    model = EarlyExitCNN((16, 32, 32))
    stages = stage_flops(model)
    costs = exit_costs(model, None)
    assert costs[2] == sum(stages[f"{part} {k}"] for k in (1, 2, 3) for part in ("block", "exit"))
    assert costs[0] < costs[1] < costs[2]


@pytest.mark.parametrize("channels", [(16, 32), (16, 32, 32)])
def test_final_logits_are_the_last_exits_logits_of_a_full_pass(channels):
    torch.manual_seed(0)
    model = EarlyExitCNN(channels).eval()
    images = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.final_logits(images), model(images).exit_logits[-1])


def test_a_model_needs_two_classes_or_more_and_the_tolerance_checks_its_images():
    for classes in (1, 2.5, True):
        with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
            EarlyExitCNN(num_classes=classes)
    with pytest.raises(TypeError, match="images must be float32"):
        logits_tolerance(EarlyExitCNN(), torch.zeros(2, 1, 28, 28, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"model must be an EarlyExitCNN \(a TrainedModel's .model\)"):
        stage_flops(object())
