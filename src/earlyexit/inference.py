"""Inference with early exit: a per-sample decision, made for a whole batch at once.

:func:`route_batch` runs block 1 and exit 1 for the batch, decides per sample with a boolean
mask (no ``.item()``), sends only the samples that did not exit through block 2, and
scatters their results back into batch order. :func:`route_one_by_one` is the plain
reference it is tested against; :func:`compute_all_then_mask` is the alternative that runs
every sample through everything and picks afterwards.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .exits import exit_scores
from .models import EarlyExitCNN, check_image_batch


class EarlyExitResult(NamedTuple):
    """Per sample: the predicted class, the exit it left at (0 = exit 1, 1 = exit 2) and that exit's logits."""

    predictions: torch.Tensor
    exit_index: torch.Tensor
    logits: torch.Tensor


def check_inputs(images: torch.Tensor, threshold: float) -> None:
    """Raise a clear ValueError for a bad threshold, a wrongly shaped batch or non-finite pixels."""
    if isinstance(threshold, torch.Tensor):
        threshold = float(threshold)
    if not isinstance(threshold, (int, float)) or math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    check_image_batch(images)
    if not torch.isfinite(images).all():
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise ValueError(f"images contain NaN or infinite values ({bad} of {len(images)} samples)")


def exit1_scores(model: EarlyExitCNN, features1: torch.Tensor, logits1: torch.Tensor, criterion: str) -> torch.Tensor:
    """Each sample's exit-1 score under ``criterion``, running the confidence head only when it is needed."""
    confidence_logit = model.confidence1(features1).squeeze(1) if criterion == "learned" else None
    return exit_scores(criterion, logits1, confidence_logit)


@torch.no_grad()
def route_batch(model: EarlyExitCNN, images: torch.Tensor, threshold: float,
                criterion: str = "max_softmax") -> EarlyExitResult:
    """Early-exit inference for a batch: samples whose exit-1 score is above ``threshold`` leave at exit 1."""
    check_inputs(images, threshold)
    features1 = model.block1(images)
    logits = model.exit1(features1)
    onward = torch.nonzero(exit1_scores(model, features1, logits, criterion) <= threshold).squeeze(1)
    exit_index = torch.zeros(len(images), dtype=torch.long, device=images.device)
    if len(onward):
        deep_logits = model.exit2(model.block2(features1.index_select(0, onward)))
        logits = logits.index_copy(0, onward, deep_logits)
        exit_index[onward] = 1
    return EarlyExitResult(logits.argmax(dim=1), exit_index, logits)


@torch.no_grad()
def route_one_by_one(model: EarlyExitCNN, images: torch.Tensor, threshold: float,
                     criterion: str = "max_softmax") -> EarlyExitResult:
    """Reference: one sample at a time with a plain Python ``if`` (the forum's idea, made correct)."""
    check_inputs(images, threshold)
    predictions, exit_index, all_logits = [], [], []
    for image in images:
        features1 = model.block1(image[None])
        logits = model.exit1(features1)
        if exit1_scores(model, features1, logits, criterion).item() > threshold:
            exit_index.append(0)
        else:
            logits = model.exit2(model.block2(features1))
            exit_index.append(1)
        predictions.append(int(logits.argmax(dim=1)))
        all_logits.append(logits[0])
    logits = torch.stack(all_logits) if all_logits else images.new_zeros((0, model.exit1[-1].out_features))
    return EarlyExitResult(torch.tensor(predictions, dtype=torch.long), torch.tensor(exit_index, dtype=torch.long), logits)


@torch.no_grad()
def compute_all_then_mask(model: EarlyExitCNN, images: torch.Tensor, threshold: float,
                          criterion: str = "max_softmax") -> EarlyExitResult:
    """Run every sample through both exits, then choose per sample: no routing, no saving."""
    check_inputs(images, threshold)
    features1 = model.block1(images)
    logits1 = model.exit1(features1)
    logits2 = model.exit2(model.block2(features1))
    exits = exit1_scores(model, features1, logits1, criterion) > threshold
    logits = torch.where(exits[:, None], logits1, logits2)
    return EarlyExitResult(logits.argmax(dim=1), (~exits).long(), logits)
