"""The speed model's bookkeeping (shares reaching each stage, the stage-sum estimate); no timed assertions."""

import math

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
        def geometric_mean(values):  # three rounds in three blocks: the mean of the blocks, on a log scale
            return math.exp(sum(math.log(v) for v in values) / len(values))

        assert row.versus_estimate.estimate == pytest.approx(geometric_mean(
            [e / t for e, t in zip(expected, row.early_exit.samples)]))
        assert row.masked_speedup.estimate == pytest.approx(geometric_mean(
            [f / m for f, m in zip(row.full.samples, row.masked.samples)]))
        assert row.flops_ideal > 1.0
        table = speed_table([row])._repr_markdown_().splitlines()
        assert table[0].startswith("| batch | exit early") and table[2].startswith("| 16 |")


def test_time_layers_names_every_layer_of_every_block():
    model = sharpened_model((16, 32, 32))
    times = time_layers(model, torch.randn(8, 1, 28, 28), 4, ThresholdRule(0.5), repeats=3, warmup=0)
    assert list(times) == [f"block {k}: {layer}" for k in (1,) for layer in ("conv", "ReLU", "max-pool")] + \
        ["exit 1: head + decision"] + [f"block 2: {layer}" for layer in ("conv", "ReLU", "max-pool")] + \
        ["exit 2: head + decision"] + [f"block 3: {layer}" for layer in ("conv", "ReLU", "max-pool")] + ["exit 3: head"]


def test_full_batches_drop_the_ragged_end_and_check_the_size():
    assert [len(b) for b in full_batches(torch.zeros(10, 1, 28, 28), 4)] == [4, 4]
    with pytest.raises(ValueError, match="between 1 and 10"):
        full_batches(torch.zeros(10, 1, 28, 28), 11)


def test_the_timing_sample_is_seeded_random_at_least_256_and_one_whole_batch():
    images = torch.arange(2000.0).reshape(2000, 1, 1, 1).expand(2000, 1, 28, 28)
    small, large = speed.timing_sample(images, 1), speed.timing_sample(images, 1024)
    assert len(small) == speed.MIN_TIMED_IMAGES and len(large) == 1024
    assert torch.equal(large[:256], small)  # the larger sample extends the smaller one
    assert not torch.equal(small, images[:256])  # not simply the first images
    assert torch.equal(speed.timing_sample(images, 16, seed=0), small[:256])
    assert not torch.equal(speed.timing_sample(images, 16, seed=1), small)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        speed.timing_sample(images, 0)
    with pytest.raises(ValueError, match="needs 1024 images, got 300"):
        speed.timing_sample(images[:300], 1024)


def test_stages_are_timed_in_the_chunks_the_implementation_runs():
    model = sharpened_model()
    fast = FastEarlyExit(model, 0.5, chunk_size=8)
    impl = fast_implementation(fast)
    assert [len(c) for c in impl.split(torch.zeros(20, 1, 28, 28))] == [8, 8, 4]
    assert [len(c) for c in reference_implementation(model, ThresholdRule(0.5)).split(torch.zeros(20, 1, 28, 28))] \
        == [20]


def test_the_flops_ideal_is_that_of_the_timed_images():
    assert speed.expected_flops(torch.tensor([1, 1, 1, 2]), (1.0, 9.0)) == pytest.approx(3.0)


def test_compare_runtimes_names_the_fastest_of_each_kind_and_restores_threads():
    threads = torch.get_num_threads()
    seen = []

    def candidate(name, kind, wait, threads=None):
        def run(x):
            seen.append((name, torch.get_num_threads()))
            return [sum(range(wait))]
        return speed.Candidate(name, kind, run, threads)

    candidates = [candidate("slow full", "full", 20000, 1), candidate("quick full", "full", 2000),
                  candidate("early exit", "early exit", 200)]
    row = speed.compare_runtimes(candidates, torch.zeros(32, 1, 28, 28), 16,
                                 lambda x: torch.tensor([1] * 12 + [2] * 4), (1.0, 9.0), 9.0, repeats=5, warmup=1)
    assert row.fastest("full") == "quick full" and row.fastest("early exit") == "early exit"
    assert row.exit_fraction == pytest.approx(0.75) and row.flops_ideal == pytest.approx(9.0 / 3.0)
    assert all(n == 1 for name, n in seen if name == "slow full") and torch.get_num_threads() == threads
    assert row.speedup.estimate > 1
    table = speed.runtime_table([row])._repr_markdown_().splitlines()
    assert table[2].startswith("| 16 | 75.0% |") and "quick full | early exit |" in table[2]
    with pytest.raises(ValueError, match="both kinds"):
        speed.compare_runtimes(candidates[:2], torch.zeros(32, 1, 28, 28), 16, lambda x: x, (1.0,), 1.0)
    with pytest.raises(ValueError, match="kind must be"):
        speed.Candidate("x", "fast", lambda x: x)


def test_exit_numbers_costs_and_batch_sizes_are_checked_by_name():
    with pytest.raises(ValueError, match="exit_number must hold at least one"):
        speed.expected_flops(torch.tensor([], dtype=torch.long), (1.0, 9.0))  # it returned NaN
    with pytest.raises(ValueError, match="exit_number must hold exit numbers from 1 to 2, got values from 0 to 1"):
        speed.expected_flops(torch.tensor([0, 1]), (1.0, 9.0))
    with pytest.raises(ValueError, match="exit_number must hold exit numbers from 1 to 2, got values from 1 to 3"):
        speed.expected_flops(torch.tensor([1, 3]), (1.0, 9.0))
    with pytest.raises(ValueError, match=r"exit_costs\[1\] must be a finite number"):
        speed.expected_flops(torch.tensor([1, 2]), (1.0, float("nan")))
    images = torch.zeros(300, 1, 28, 28)
    with pytest.raises(ValueError, match="batch_size must be between 1 and 300, got 2.5"):
        full_batches(images, 2.5)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        speed.timing_sample(images, 16, seed=-1)
    with pytest.raises(TypeError, match="run must be callable"):
        speed.Candidate("x", "full", "not a function")
    with pytest.raises(TypeError, match="model must be an EarlyExitCNN"):
        reference_implementation(None, ThresholdRule(0.5))


def test_session_candidates_take_a_dict_of_graphs():
    with pytest.raises(TypeError, match="paths must be a dict of kind -> ONNX file"):
        speed.session_candidates(["full.onnx", "early_exit.onnx"])
