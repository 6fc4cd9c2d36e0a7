"""What a trained model does on a split: every exit's logits once, then accuracy per exit,
overthinking, the oracle, and which classes leave early."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .exits import exit_scores
from .models import EarlyExitCNN
from .utils import check_int


@dataclass
class ExitRecord:
    """Every exit's logits and every confidence head's logit for each sample of a split, with the labels."""

    exit_logits: tuple[torch.Tensor, ...]
    confidence_logits: tuple[torch.Tensor, ...]
    labels: torch.Tensor

    @property
    def num_exits(self) -> int:
        return len(self.exit_logits)

    def correct(self, exit_number: int) -> torch.Tensor:
        """Boolean per sample: is exit ``exit_number`` (1 = exit 1) right?"""
        return self.exit_logits[exit_number - 1].argmax(1) == self.labels

    @property
    def correct_all(self) -> torch.Tensor:
        """Which exit is right on which sample, as a boolean tensor of shape (exits, samples)."""
        return torch.stack([self.correct(k) for k in range(1, self.num_exits + 1)])

    def scores(self, criterion: str, exit_number: int = 1) -> torch.Tensor:
        """The score of every sample at one exit under an exit criterion."""
        confidence = self.confidence_logits[exit_number - 1] if exit_number <= len(self.confidence_logits) else None
        return exit_scores(criterion, self.exit_logits[exit_number - 1], confidence)


@torch.no_grad()
def collect(model: EarlyExitCNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> ExitRecord:
    """Run every sample through every exit once; later analysis needs no more forward passes."""
    check_int("batch_size", batch_size)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    model.eval()
    parts = [model(images[i:i + batch_size]) for i in range(0, len(labels), batch_size)]
    if not parts:
        raise ValueError("collect needs at least one sample")
    exits = tuple(torch.cat([p.exit_logits[k] for p in parts]) for k in range(len(parts[0].exit_logits)))
    confidence = tuple(torch.cat([p.confidence_logits[k] for p in parts])
                       for k in range(len(parts[0].confidence_logits)))
    return ExitRecord(exits, confidence, labels)


def exit_accuracies(record: ExitRecord) -> dict[int, float]:
    """Accuracy of every exit on every sample, keyed by exit number (1 = exit 1)."""
    return {k: float(record.correct(k).float().mean()) for k in range(1, record.num_exits + 1)}


def overthinking(record: ExitRecord) -> dict[str, float]:
    """How often an earlier exit is right where the last one is wrong, and the oracle's accuracy.

    The oracle leaves at the first exit that is right: no exit rule can beat it.
    """
    correct = record.correct_all
    earlier_right = correct[:-1].any(0)
    return {"earlier_right_final_wrong": float((earlier_right & ~correct[-1]).float().mean()),
            "final_right_all_earlier_wrong": float((~earlier_right & correct[-1]).float().mean()),
            "oracle_accuracy": float(correct.any(0).float().mean())}


def exit_fraction_by_class(exits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """For every class, the share of its samples for which ``exits`` (a boolean mask) is True."""
    if exits.shape != labels.shape:
        raise ValueError(f"exits {tuple(exits.shape)} and labels {tuple(labels.shape)} must have the same shape")
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1)
    return torch.bincount(labels, weights=exits.double(), minlength=num_classes) / counts
