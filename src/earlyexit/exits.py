"""Exit criteria, the exit decision, and the rules that make it at each exit.

A criterion scores each sample at an exit, in [0, 1], higher = more confident. The decision
is the forum's ``conf > 0.5``, made per sample: **leave when score > threshold**. Every path
of the package (batched routing, one-by-one routing, compute-all-then-mask, the fast path,
the exported graph, the threshold sweep) decides through :func:`exit_decision`, with

* **one dtype**: the threshold is rounded once to float32, the dtype of the scores, so a
  comparison in float32 and one in float64 (after ``.item()``) agree;
* **one NaN policy**: a NaN score never exits (``NaN > t`` is False). A sample whose score
  cannot be trusted gets the whole network.

Threshold 1 sends every sample on (no float32 score exceeds 1); threshold 0 lets every
sample exit whose score is above 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from .checks import check_int

CRITERIA = ("max_softmax", "entropy", "learned")


def _check_logits(logits: torch.Tensor, name: str = "logits", ndim: int = 2, classes: int = 1) -> None:
    # shape checks only: they cost nothing per call and trace under torch.export
    if not isinstance(logits, torch.Tensor) or logits.ndim != ndim or not logits.is_floating_point():
        expected = "(N, classes) logits" if ndim == 2 else "one logit per sample, (N,)"
        got = f"shape {tuple(logits.shape)}, {logits.dtype}" if isinstance(logits, torch.Tensor) \
            else type(logits).__name__
        raise ValueError(f"{name} must be a floating-point tensor of {expected}, got {got}")
    if ndim == 2 and logits.shape[1] < classes:
        raise ValueError(f"{name} must have at least {classes} classes here, got shape {tuple(logits.shape)}")


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Highest class probability (Shallow-Deep Networks, Kaya et al.)."""
    _check_logits(logits)
    return logits.softmax(dim=1).amax(dim=1)


def entropy_confidence(logits: torch.Tensor) -> torch.Tensor:
    """``1 - H(p) / log(C)``: BranchyNet's entropy rule in [0, 1], 1 = certain.

    ``torch.special.entr`` gives ``-p log p`` with the limit 0 at p = 0, so
    logits of -inf (classes ruled out) still give a score in [0, 1].
    """
    _check_logits(logits, classes=2)
    entropy = torch.special.entr(logits.softmax(dim=1)).sum(dim=1)
    return (1.0 - entropy / math.log(logits.shape[1])).clamp(0.0, 1.0)


def learned_confidence(confidence_logit: torch.Tensor) -> torch.Tensor:
    """The confidence head's probability that its exit is right."""
    _check_logits(confidence_logit, "confidence_logit", 1)
    return torch.sigmoid(confidence_logit)


def check_criterion(criterion: str) -> str:
    """Return ``criterion`` if it names one of ``CRITERIA``, else raise a ValueError."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown exit criterion {criterion!r}; expected one of {CRITERIA}")
    return criterion


def exit_scores(criterion: str, logits: torch.Tensor, confidence_logit: torch.Tensor | None = None) -> torch.Tensor:
    """Score each sample at an exit with the named criterion (one of ``CRITERIA``)."""
    check_criterion(criterion)
    if criterion == "max_softmax":
        return max_softmax(logits)
    if criterion == "entropy":
        return entropy_confidence(logits)
    if confidence_logit is None:
        raise ValueError("criterion 'learned' needs the confidence head's logits")
    return learned_confidence(confidence_logit)


def check_threshold(threshold: object, name: str = "threshold") -> float:
    """A valid threshold, rounded to float32; a TypeError or ValueError naming ``name`` otherwise.

    Accepted: a real number (Python or NumPy) or a one-element tensor, in [0, 1].
    """
    accepted = "a real number in [0, 1] (a Python or NumPy float, or a one-element tensor)"
    if isinstance(threshold, torch.Tensor):
        if threshold.numel() != 1 or threshold.is_complex() or threshold.dtype == torch.bool:
            raise TypeError(f"{name} must be {accepted}, got a tensor of shape {tuple(threshold.shape)} "
                            f"and dtype {threshold.dtype}")
        value = float(threshold.detach().cpu().reshape(()))
    elif isinstance(threshold, numbers.Real) and not isinstance(threshold, bool):
        value = float(threshold)
    else:
        raise TypeError(f"{name} must be {accepted}, got {type(threshold).__name__} {threshold!r}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be {accepted}, got {value!r}")
    return float(torch.tensor(value, dtype=torch.float32))


def exit_decision(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """True where a sample leaves: ``score > threshold`` in float32 (NaN scores never leave).

    ``threshold`` is a number from :func:`check_threshold` (or a float32 tensor of them).
    """
    return scores.float() > threshold


class ThresholdRule:
    """Leave at exit k when exit k's score is above ``thresholds[k]``; the last exit takes everyone left.

    ``thresholds`` is one number (the same at every exit) or one per exit but the last.
    """

    def __init__(self, thresholds: float | Sequence[float], criterion: str = "max_softmax") -> None:
        self.criterion = check_criterion(criterion)
        if isinstance(thresholds, (list, tuple)):
            if len(thresholds) == 0:
                raise ValueError("thresholds must hold one threshold per exit but the last, got none")
            self.thresholds = tuple(check_threshold(t, f"thresholds[{i}]") for i, t in enumerate(thresholds))
            self.shared = False
        else:
            self.thresholds = (check_threshold(thresholds),)
            self.shared = True

    def check(self, num_exits: int) -> None:
        """Raise a ValueError unless the rule fits a model with ``num_exits`` exits."""
        if not self.shared and len(self.thresholds) != num_exits - 1:
            raise ValueError(f"a model with {num_exits} exits needs {num_exits - 1} thresholds "
                             f"(one per exit but the last), got {len(self.thresholds)}")

    def threshold_at(self, exit_index: int) -> float:
        return self.thresholds[0] if self.shared else self.thresholds[exit_index]

    def initial_state(self, batch_size: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch_size, 0, dtype=torch.long, device=device)

    def decide(self, exit_index: int, logits: torch.Tensor, confidence_logit: torch.Tensor | None,
               state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Who leaves at exit ``exit_index`` (0-based), and the state carried to the next exit."""
        scores = exit_scores(self.criterion, logits, confidence_logit)
        return exit_decision(scores, self.threshold_at(exit_index)), state

    def __repr__(self) -> str:
        shown = self.thresholds[0] if self.shared else self.thresholds
        return f"ThresholdRule({shown!r}, criterion={self.criterion!r})"


class PatienceRule:
    """PABEE's patience rule, per sample: leave at the first exit where the last ``consecutive`` exits agree.

    ``consecutive=2`` leaves as soon as two exits in a row predict the same class (PABEE's
    patience t corresponds to ``consecutive = t + 1``). No score, no threshold. The state
    carried between exits is each sample's last prediction and how many exits in a row made it.
    """

    criterion = None

    def __init__(self, consecutive: int = 2) -> None:
        self.consecutive = check_int("consecutive", consecutive, 2)

    def check(self, num_exits: int) -> None:
        if self.consecutive > num_exits:
            raise ValueError(f"{self.consecutive} exits can never agree in a model with {num_exits} exits")

    def initial_state(self, batch_size: int, device: torch.device) -> torch.Tensor:
        state = torch.zeros(batch_size, 2, dtype=torch.long, device=device)
        state[:, 0] = -1  # no prediction yet
        return state

    def decide(self, exit_index: int, logits: torch.Tensor, confidence_logit: torch.Tensor | None,
               state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prediction = logits.argmax(dim=1)
        streak = torch.where(prediction == state[:, 0], state[:, 1] + 1, torch.ones_like(prediction))
        return streak >= self.consecutive, torch.stack([prediction, streak], dim=1)

    def __repr__(self) -> str:
        return f"PatienceRule(consecutive={self.consecutive})"


ExitRule = ThresholdRule | PatienceRule


def as_rule(rule: float | Sequence[float] | ExitRule, criterion: str | None = None) -> ExitRule:
    """A rule object from a threshold, a sequence of thresholds or a rule (then ``criterion`` must be None)."""
    if isinstance(rule, (ThresholdRule, PatienceRule)):
        if criterion is not None:
            raise ValueError(f"give the criterion inside the rule, not beside it ({rule!r} and {criterion!r})")
        return rule
    return ThresholdRule(rule, "max_softmax" if criterion is None else criterion)
