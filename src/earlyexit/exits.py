"""Exit criteria (a score per sample, higher = more confident) and threshold calibration.

Every criterion maps to [0, 1], and a sample exits when ``score > threshold``, as in the
forum's ``conf > 0.5``: threshold 1 sends every sample on, threshold 0 lets (almost) all exit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Highest class probability (Shallow-Deep Networks, Kaya et al.)."""
    return logits.softmax(dim=1).amax(dim=1)


def entropy_confidence(logits: torch.Tensor) -> torch.Tensor:
    """``1 - H(p) / log(C)``: BranchyNet's entropy rule, rescaled to [0, 1] with 1 = certain."""
    log_p = logits.log_softmax(dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1)
    return (1.0 - entropy / math.log(logits.shape[1])).clamp(0.0, 1.0)


def learned_confidence(confidence_logit: torch.Tensor) -> torch.Tensor:
    """The confidence head's probability that exit 1 is right."""
    return torch.sigmoid(confidence_logit)


CRITERIA = ("max_softmax", "entropy", "learned")


def exit_scores(criterion: str, logits: torch.Tensor, confidence_logit: torch.Tensor | None = None) -> torch.Tensor:
    """Score each sample at an exit with the named criterion (one of ``CRITERIA``)."""
    if criterion == "max_softmax":
        return max_softmax(logits)
    if criterion == "entropy":
        return entropy_confidence(logits)
    if criterion == "learned":
        if confidence_logit is None:
            raise ValueError("criterion 'learned' needs the confidence head's logits")
        return learned_confidence(confidence_logit)
    raise ValueError(f"unknown exit criterion {criterion!r}; expected one of {CRITERIA}")


@dataclass(frozen=True)
class OperatingPoint:
    """One threshold and what it gives on a set of samples."""

    threshold: float
    exit_fraction: float
    accuracy: float
    expected_flops: float


@dataclass(frozen=True)
class Sweep:
    """Exit fraction, accuracy and expected cost for every candidate threshold (ascending)."""

    thresholds: torch.Tensor
    exit_fraction: torch.Tensor
    accuracy: torch.Tensor
    expected_flops: torch.Tensor

    def point(self, index: int) -> OperatingPoint:
        return OperatingPoint(float(self.thresholds[index]), float(self.exit_fraction[index]),
                              float(self.accuracy[index]), float(self.expected_flops[index]))


def sweep_thresholds(scores: torch.Tensor, early_correct: torch.Tensor, final_correct: torch.Tensor,
                     early_flops: float, full_flops: float, thresholds: torch.Tensor | None = None) -> Sweep:
    """Evaluate every threshold: who exits (``score > t``), the accuracy and the mean FLOPs per sample.

    Without ``thresholds``, every distinct score plus 0 and 1 is tried, so no operating point is missed.
    """
    scores = scores.double().flatten()
    if thresholds is None:
        thresholds = torch.cat([scores.new_tensor([0.0, 1.0]), scores]).unique()
    thresholds = thresholds.double().sort().values
    # Sorted by score, the samples that go on for threshold t are a prefix (score <= t), so
    # cumulative sums give every threshold's counts in O(N log N) instead of a T x N mask.
    order = scores.argsort()
    early = torch.cat([scores.new_zeros(1), early_correct.double().flatten()[order].cumsum(0)])
    final = torch.cat([scores.new_zeros(1), final_correct.double().flatten()[order].cumsum(0)])
    n = len(scores)
    going_on = torch.searchsorted(scores[order], thresholds, right=True)
    exit_fraction = (n - going_on).double() / n
    accuracy = (final[going_on] + early[-1] - early[going_on]) / n
    expected = exit_fraction * early_flops + (1 - exit_fraction) * full_flops
    return Sweep(thresholds, exit_fraction, accuracy, expected)


def choose_threshold(sweep: Sweep, min_accuracy: float | None = None, max_flops: float | None = None) -> OperatingPoint:
    """Pick an operating point on (validation) data.

    * ``min_accuracy``: the cheapest point whose accuracy is at least this (ties: most accurate);
    * ``max_flops``: the most accurate point whose expected FLOPs fit the budget (ties: cheapest).

    Exactly one of the two must be given.
    """
    if (min_accuracy is None) == (max_flops is None):
        raise ValueError("give exactly one of min_accuracy or max_flops")
    if min_accuracy is not None:
        ok = sweep.accuracy >= min_accuracy - 1e-12
        if not ok.any():
            raise ValueError(f"no threshold reaches accuracy {min_accuracy:.4f}; best is {float(sweep.accuracy.max()):.4f}")
        cost = torch.where(ok, sweep.expected_flops, torch.full_like(sweep.expected_flops, math.inf))
        best = torch.nonzero(cost == cost.min()).flatten()
        return sweep.point(int(best[sweep.accuracy[best].argmax()]))
    ok = sweep.expected_flops <= max_flops + 1e-9
    if not ok.any():
        raise ValueError(f"no threshold fits {max_flops:.0f} FLOPs; the cheapest needs {float(sweep.expected_flops.min()):.0f}")
    accuracy = torch.where(ok, sweep.accuracy, torch.full_like(sweep.accuracy, -1.0))
    best = torch.nonzero(accuracy == accuracy.max()).flatten()
    return sweep.point(int(best[sweep.expected_flops[best].argmin()]))


def evaluate_threshold(threshold: float, scores: torch.Tensor, early_correct: torch.Tensor,
                       final_correct: torch.Tensor, early_flops: float, full_flops: float) -> OperatingPoint:
    """The operating point that one fixed threshold gives (e.g. a validation threshold on test)."""
    sweep = sweep_thresholds(scores, early_correct, final_correct, early_flops, full_flops,
                             torch.tensor([float(threshold)]))
    return sweep.point(0)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, steps: int = 100) -> float:
    """Temperature scaling (Guo et al., 2017): the T > 0 minimising the NLL of ``softmax(logits / T)``.

    Fit it on validation logits; divide any split's logits by it before scoring.
    """
    log_t = torch.zeros((), requires_grad=True)  # optimise log T so that T stays positive
    logits, labels = logits.detach(), labels.detach()
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp())
