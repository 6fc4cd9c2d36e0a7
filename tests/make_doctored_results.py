"""Run the computations behind three recorded key results with deliberately broken code.

    .venv/bin/python tests/make_doctored_results.py   # a few minutes: trains two models

Writes tests/data/doctored_results.json, which tests/test_results.py feeds to the checker:
each broken change must move at least one recorded result outside its tolerance. The
broken changes are realised without editing the package:

* "exit weights swapped": Chapter 4's runs with unequal weights trained with their weights
  swapped: (0.3, 1) as (1, 0.3), and (0, 1) as (1, 0);
* "masked loss lets every sample through": the masked run of Chapter 3 with a gate that
  stops no sample, ``gate_threshold=1.0``;
* "threshold chosen on the test set": Chapter 5's operating points chosen on the test
  split instead of validation (``choose_on_validation`` with the two splits swapped);
* "early exit became slower than the full network": the exit decision broken so that no
  image ever leaves early (threshold 1, as a threshold on the wrong scale would do), timed
  exactly as Chapters 7, 8 and 9 time early exit. Speed ratios are stored with their 95%
  interval, ``[median, low, high]``, so that the checker can see a speedup turn into a
  measured slowdown.
"""

from __future__ import annotations

import json
from pathlib import Path

from earlyexit.data import load_splits
from earlyexit.evaluation import collect, exit_accuracies
from earlyexit.exits import ThresholdRule
from earlyexit.export import EarlyExitModule, FirstStage, FullNetwork, SecondStage, export_onnx
from earlyexit.fast import FastEarlyExit
from earlyexit.flops import exit_costs, full_network_flops
from earlyexit.operating_point import book_operating_point
from earlyexit.serving import OneGraphServer, TwoStageServer
from earlyexit.speed import (
    compare_runtimes,
    eager_candidates,
    fast_implementation,
    measure_speed,
    session_candidates,
    threads_for,
    timing_sample,
)
from earlyexit.thresholds import choose_on_validation, evaluate_threshold
from earlyexit.timing import speedup, time_interleaved, torch_threads
from earlyexit.training import TrainConfig, train, train_cached
from earlyexit.utils import repo_root

OUT = Path(__file__).resolve().parent / "data" / "doctored_results.json"


def main() -> None:
    data = load_splits()
    doctored = {}

    swapped = train(TrainConfig(exit_weights=(1.0, 0.3)), data, progress=False)
    zero_swapped = train(TrainConfig(exit_weights=(1.0, 0.0), epochs=1), data, progress=False)
    accuracy = exit_accuracies(collect(zero_swapped.model, data.val_images, data.val_labels))
    doctored["exit weights swapped"] = {
        "how": "Chapter 4's (0.3, 1) and (0, 1) configurations trained as (1, 0.3) and (1, 0)",
        "results": {"04_joint_loss": {"loss_unequal": swapped.history[-1]["train_loss"],
                                      "zero_weight_exit1": accuracy[1]}}}

    everyone = train(TrainConfig(regime="masked", gate_threshold=1.0), data, progress=False)
    last = everyone.history[-1]
    doctored["masked loss lets every sample through"] = {
        "how": "the masked regime of Chapter 3 with a gate that stops nobody",
        "results": {"03_gradient_masking": {"masked_deep": last["train_deep_fraction"]}}}

    misses = []
    for seed in (0, 1, 2):
        model = train_cached(TrainConfig(seed=seed), data, progress=False).model
        early, deep = exit_costs(model)
        full = full_network_flops(model)
        val = collect(model, data.val_images, data.val_labels)
        test = collect(model, data.test_images, data.test_labels)
        on_test = choose_on_validation(test, val, "max_softmax", early, deep, target_flops=0.25 * full)
        on_val = evaluate_threshold(on_test.threshold, val.scores("max_softmax"), val.correct(1), val.correct(2),
                                    early, deep)
        target = (deep - 0.25 * full) / (deep - early)
        misses.append(abs(on_val.exit_fraction - target))
    doctored["threshold chosen on the test set"] = {
        "how": "Chapter 5's operating points chosen on test, then measured on validation",
        "results": {"05_thresholds": {"val_budget_miss": sum(misses) / 3}}}

    doctored["early exit became slower than the full network"] = {
        "how": "no image leaves early (threshold 1), timed as Chapters 7, 8 and 9 time early exit",
        "results": never_leaving(data)}

    OUT.write_text(json.dumps(doctored, indent=1, sort_keys=True) + "\n")
    print(json.dumps(doctored, indent=1))


def never_leaving(data) -> dict[str, dict[str, list[float]]]:
    """The book's speed ratios, measured with an exit decision that lets no image leave early."""
    op = book_operating_point(data)
    broken = ThresholdRule(1.0)
    fast = FastEarlyExit(op.model, broken)
    interval = lambda ratio: [ratio.estimate, ratio.low, ratio.high]  # noqa: E731
    ch7 = {}
    for b in (1, 256):
        with torch_threads(threads_for(b)):
            row = measure_speed(fast_implementation(fast), timing_sample(data.test_images, b), b, op.exit_costs,
                                op.full_flops, repeats=11)
        ch7[f"after_{b}"] = interval(row.measured)
    folder = repo_root() / ".cache" / "onnx"
    paths = {"full": export_onnx(FullNetwork(op.model), folder / "doctored_full.onnx"),
             "early exit": export_onnx(EarlyExitModule(op.model, broken), folder / "doctored_never.onnx")}
    ch8 = {}
    for b in (1, 256):
        row = compare_runtimes(eager_candidates(fast) + session_candidates(paths), timing_sample(data.test_images, b),
                               b, lambda x: fast(x).exit_number, op.exit_costs, op.full_flops, repeats=11)
        ch8[f"ort_speedup_{b}"] = interval(row.speedup)
    first = export_onnx(FirstStage(op.model), folder / "doctored_first.onnx")
    second = export_onnx(SecondStage(op.model), folder / "doctored_second.onnx")
    servers = {"full": OneGraphServer(paths["full"], check=False),
               "two stages": TwoStageServer(first, second, 1.0, check=False)}
    images = [x.numpy() for x in timing_sample(data.test_images, 256).split(1)]
    t = time_interleaved({name: (lambda s=s: [s(x) for x in images]) for name, s in servers.items()}, repeats=15)
    ch9 = {"batch1_speedup": interval(speedup(t["full"], t["two stages"]))}
    return {"07_flops_vs_clock": ch7, "08_deployment": ch8, "09_serving": ch9}


if __name__ == "__main__":
    main()
