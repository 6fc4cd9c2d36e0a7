"""Everything the chapters measure on a split: per-exit outputs, accuracy, overthinking, operating points."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .exits import OperatingPoint, choose_threshold, evaluate_threshold, exit_scores, sweep_thresholds
from .models import EarlyExitCNN


@dataclass
class ExitRecord:
    """Both exits' logits and the confidence logit for every sample of a split, with the labels."""

    logits1: torch.Tensor
    logits2: torch.Tensor
    confidence_logit: torch.Tensor
    labels: torch.Tensor

    @property
    def correct1(self) -> torch.Tensor:
        return self.logits1.argmax(1) == self.labels

    @property
    def correct2(self) -> torch.Tensor:
        return self.logits2.argmax(1) == self.labels

    def scores(self, criterion: str) -> torch.Tensor:
        """Exit-1 score of every sample under an exit criterion."""
        return exit_scores(criterion, self.logits1, self.confidence_logit)


@torch.no_grad()
def collect(model: EarlyExitCNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> ExitRecord:
    """Run every sample through every exit once; later analysis needs no more forward passes."""
    model.eval()
    parts = [model(images[i:i + batch_size]) for i in range(0, len(labels), batch_size)]
    return ExitRecord(torch.cat([p.exit_logits[0] for p in parts]), torch.cat([p.exit_logits[1] for p in parts]),
                      torch.cat([p.confidence_logit for p in parts]), labels)


def exit_accuracies(record: ExitRecord) -> dict[str, float]:
    """Accuracy of exit 1 and of the final exit, each on every sample."""
    return {"exit1": float(record.correct1.float().mean()), "exit2": float(record.correct2.float().mean())}


def overthinking(record: ExitRecord) -> dict[str, float]:
    """How often the early exit is right where the final one is wrong, and the oracle's accuracy.

    The oracle leaves at the first exit that is right: no exit rule can beat it.
    """
    c1, c2 = record.correct1, record.correct2
    return {"exit1_right_final_wrong": float((c1 & ~c2).float().mean()),
            "final_right_exit1_wrong": float((~c1 & c2).float().mean()),
            "oracle_accuracy": float((c1 | c2).float().mean())}


def exit_fraction_by_class(exits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """For every class, the share of its samples that leave at exit 1 (``exits`` is a boolean mask)."""
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1)
    return torch.bincount(labels, weights=exits.double(), minlength=num_classes) / counts


@dataclass(frozen=True)
class CalibratedPoint:
    """A threshold chosen on validation and what it gives there and on test."""

    criterion: str
    val: OperatingPoint
    test: OperatingPoint
    test_final_accuracy: float


def calibrate(val: ExitRecord, test: ExitRecord, criterion: str, early_flops: float, deep_flops: float,
              max_accuracy_drop: float | None = None, max_flops: float | None = None) -> CalibratedPoint:
    """Choose the threshold on validation (an accuracy floor relative to the final exit, or a FLOPs
    budget), then evaluate that same threshold on test."""
    sweep = sweep_thresholds(val.scores(criterion), val.correct1, val.correct2, early_flops, deep_flops)
    if max_accuracy_drop is not None:
        floor = float(val.correct2.float().mean()) - max_accuracy_drop
        chosen = choose_threshold(sweep, min_accuracy=floor)
    else:
        chosen = choose_threshold(sweep, max_flops=max_flops)
    on_test = evaluate_threshold(chosen.threshold, test.scores(criterion), test.correct1, test.correct2,
                                 early_flops, deep_flops)
    return CalibratedPoint(criterion, chosen, on_test, float(test.correct2.float().mean()))


def mean_and_spread(values: list[float]) -> tuple[float, float]:
    """Mean and (sample) standard deviation; the spread of one value is 0."""
    tensor = torch.tensor(values, dtype=torch.float64)
    return float(tensor.mean()), float(tensor.std()) if len(values) > 1 else 0.0


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    edges = torch.linspace(0, 1, bins + 1)
    index = torch.bucketize(confidence.clamp(0, 1), edges[1:-1])
    total = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            total += float(in_bin.float().mean()) * abs(float(confidence[in_bin].mean()) - float(correct[in_bin].float().mean()))
    return total
