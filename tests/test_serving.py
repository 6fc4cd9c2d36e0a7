"""Serving one image at a time refuses what it cannot serve: measured times that cannot be times,
an image it cannot pass to the graph, and stage files given the wrong way round."""

import numpy as np
import pytest
import torch

from earlyexit.export import FirstStage, FullNetwork, SecondStage, export_onnx
from earlyexit.serving import (
    OneGraphServer,
    TwoStageServer,
    latency_summary,
    one_image,
    percentile_ratio,
    simulate_queue,
)
from helpers import sharpened_model

TIMES = np.array([2e-5, 3e-5, 2.5e-5, 4e-5])


@pytest.mark.parametrize("bad, message", [
    (np.array([2e-5, -3e-5, 4e-5]), "must be times in seconds, every one > 0"),
    (np.array([2e-5, 0.0, 4e-5]), "must be times in seconds, every one > 0"),
    (np.array([2e-5, np.nan]), "must hold finite numbers"),
    (np.array([[2e-5, 3e-5], [4e-5, 5e-5]]), r"must be 1-D, got shape \(2, 2\)"),
])
def test_every_function_refuses_what_cannot_be_measured_times_the_same_way(bad, message):
    with pytest.raises(ValueError, match=f"latencies {message}"):
        latency_summary(bad)
    with pytest.raises(ValueError, match=f"service_times {message}"):
        simulate_queue(bad, 1000.0, requests=10)
    with pytest.raises(ValueError, match=f"a {message}"):
        percentile_ratio(bad, bad, 50)


def test_an_empty_queue_and_bad_seeds_are_refused_by_name():
    with pytest.raises(ValueError, match="service_times must hold at least 1 time"):
        simulate_queue(np.array([]), 1000.0)
    for seed in (-1, 1.5):
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            latency_summary(TIMES, seed=seed)
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            simulate_queue(TIMES, 1000.0, seed=seed)
    with pytest.raises(ValueError, match="latencies must hold at least 2 time"):
        latency_summary(TIMES[:1])
    assert simulate_queue(TIMES, 1000.0, requests=10).shape == (10,)


def test_one_image_names_the_dtype_it_needs():
    with pytest.raises(TypeError, match=r"image must be float32 .* got torch.bfloat16: convert it with .float\(\)"):
        one_image(torch.zeros(1, 1, 28, 28, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="image must be float32"):
        one_image(torch.zeros(1, 1, 28, 28, dtype=torch.float64))
    assert one_image(torch.zeros(1, 1, 28, 28)).dtype == np.float32


@pytest.fixture(scope="module")
def stage_files(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    model, folder = sharpened_model((8, 16)), tmp_path_factory.mktemp("stages")
    return {"first": export_onnx(FirstStage(model), folder / "first.onnx"),
            "second": export_onnx(SecondStage(model), folder / "second.onnx"),
            "full": export_onnx(FullNetwork(model), folder / "full.onnx")}


def test_stage_files_in_swapped_order_are_refused_and_said_so(stage_files):
    with pytest.raises(ValueError, match="the stage files are in swapped order"):
        TwoStageServer(stage_files["second"], stage_files["first"], 0.5)
    with pytest.raises(ValueError, match=r"first \(.*full\.onnx\) must be a graph taking \['images'\] and giving"):
        TwoStageServer(stage_files["full"], stage_files["second"], 0.5)
    with pytest.raises(ValueError, match=r"second \(.*full\.onnx\) must be a graph taking \['features'\]"):
        TwoStageServer(stage_files["first"], stage_files["full"], 0.5)
    with pytest.raises(ValueError, match=r"second\.onnx must be a graph taking \['images'\]"):
        OneGraphServer(stage_files["second"])
    with pytest.raises(TypeError, match="check must be True or False"):
        TwoStageServer(stage_files["first"], stage_files["second"], 0.5, check="yes")
    server = TwoStageServer(stage_files["first"], stage_files["second"], 0.5)
    logits, exit_number = server(np.zeros((1, 1, 28, 28), np.float32))
    assert logits.shape == (1, 10) and exit_number in (1, 2)


def test_the_bootstrap_resamples_requests_not_repeated_measurements_of_one():
    # doctored: 40 requests timed in two passes; every request's two times agree, so counting
    # the 80 times as 80 independent requests would make the interval too narrow
    rng = np.random.default_rng(0)
    fast = rng.uniform(1e-4, 2e-4, 40)
    early, full = np.tile(fast, 2), np.tile(fast * rng.uniform(1.2, 1.6, 40), 2)
    by_request = percentile_ratio(early, full, 50, passes=2)
    as_if_independent = percentile_ratio(early, full, 50)
    assert by_request.is_ratio and by_request.direction == -1 and "shorter" in by_request.verdict(
        above="longer", below="shorter")
    assert by_request.high / by_request.low > as_if_independent.high / as_if_independent.low
    summary = latency_summary(early, passes=2)
    assert summary["p50"].low <= summary["p50"].value <= summary["p50"].high
    with pytest.raises(ValueError, match="not a whole number of 3 passes"):
        percentile_ratio(early, full, 50, passes=3)
