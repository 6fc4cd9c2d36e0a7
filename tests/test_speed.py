"""The speed model's bookkeeping (shares reaching each stage, the stage-sum estimate); no timed assertions."""

import pytest
import torch

from earlyexit import speed
from earlyexit.exits import ThresholdRule, max_softmax
from earlyexit.fast import FastEarlyExit
from earlyexit.flops import exit_costs, full_network_flops
from earlyexit.speed import (
    fast_implementation,
    full_batches,
    measure_speed,
    reference_implementation,
    speed_table,
    time_layers,
)
from helpers import sharpened_model, threshold_between


@pytest.mark.parametrize("channels", [(16, 32), (16, 32, 32)])
def test_measure_speed_counts_who_reaches_each_stage(channels):
    model = sharpened_model(channels)
    images = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    rule = ThresholdRule(threshold_between(max_softmax(model(images).exit_logits[0].detach())))
    for impl in (reference_implementation(model, rule), fast_implementation(FastEarlyExit(model, rule))):
        row = measure_speed(impl, images, 16, exit_costs(model), full_network_flops(model), repeats=3, warmup=1)
        routed = impl.route(images).exit_number
        assert row.reach[0] == 1.0
        assert row.reach[1] == pytest.approx(float((routed > 1).double().mean()))
        assert row.exit_fraction == pytest.approx(float((routed < len(channels)).double().mean()))
        assert len(row.stages) == len(channels) and len(row.full.samples) == 3
        expected = [sum(r * t.samples[i] for r, t in zip(row.reach, row.stages)) for i in range(3)]
        assert list(row.stage_sum.samples) == pytest.approx(expected)
        assert row.flops_ideal > 1.0
        table = speed_table([row])._repr_markdown_().splitlines()
        assert table[0].startswith("| batch | exit early") and table[2].startswith("| 16 |")


def test_time_layers_names_every_layer_of_every_block():
    model = sharpened_model((16, 32, 32))
    times = time_layers(model, torch.randn(8, 1, 28, 28), 4, ThresholdRule(0.5), repeats=2, warmup=0)
    assert list(times) == [f"block {k}: {layer}" for k in (1,) for layer in ("conv", "ReLU", "max-pool")] + \
        ["exit 1: head + decision"] + [f"block 2: {layer}" for layer in ("conv", "ReLU", "max-pool")] + \
        ["exit 2: head + decision"] + [f"block 3: {layer}" for layer in ("conv", "ReLU", "max-pool")] + ["exit 3: head"]


def test_full_batches_drop_the_ragged_end_and_check_the_size():
    assert [len(b) for b in full_batches(torch.zeros(10, 1, 28, 28), 4)] == [4, 4]
    with pytest.raises(ValueError, match="between 1 and 10"):
        full_batches(torch.zeros(10, 1, 28, 28), 11)


def test_timing_images_are_at_least_256_and_one_whole_batch():
    images = torch.zeros(2000, 1, 28, 28)
    assert len(speed.timing_images(images, 1)) == speed.MIN_TIMED_IMAGES
    assert len(speed.timing_images(images, 1024)) == 1024
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        speed.timing_images(images, 0)
