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
  split instead of validation (``calibrate`` with the two splits swapped).
"""

from __future__ import annotations

import json
from pathlib import Path

from earlyexit.calibration import calibrate, evaluate_threshold
from earlyexit.data import load_splits
from earlyexit.evaluation import collect, exit_accuracies
from earlyexit.flops import exit_costs, full_network_flops
from earlyexit.training import TrainConfig, train, train_cached

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
        on_test = calibrate(test, val, "max_softmax", early, deep, target_flops=0.25 * full)
        on_val = evaluate_threshold(on_test.threshold, val.scores("max_softmax"), val.correct(1), val.correct(2),
                                    early, deep)
        target = (deep - 0.25 * full) / (deep - early)
        misses.append(abs(on_val.exit_fraction - target))
    doctored["threshold chosen on the test set"] = {
        "how": "Chapter 5's operating points chosen on test, then measured on validation",
        "results": {"05_thresholds": {"val_budget_miss": sum(misses) / 3}}}

    OUT.write_text(json.dumps(doctored, indent=1, sort_keys=True) + "\n")
    print(json.dumps(doctored, indent=1))


if __name__ == "__main__":
    main()
