"""Inference with early exit: a per-sample decision, made for a whole batch at once.

:func:`route_batch` runs block 1 and exit 1 for the batch, decides per sample with a boolean
mask (no ``.item()``), sends only the samples that did not exit through the next block,
and so on through every exit; results are scattered back into batch order.
:func:`route_one_by_one` is the plain reference it is tested against (a Python ``if`` per
image, per exit); :func:`compute_all_then_mask` runs every sample through everything and
picks afterwards. All three take the same rule (a threshold, one threshold per exit, or an
:mod:`~earlyexit.exits` rule object) and decide with the same code.

The routing core, :func:`route_stages`, is written with tensor operations only (no Python
branch on data), so that ``torch.export`` can capture it (Chapter 8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from .exits import ExitRule, as_rule
from .models import EarlyExitCNN, check_image_batch, check_model

Stage = Callable[[torch.Tensor], torch.Tensor]
Head = Callable[[torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


class EarlyExitResult(NamedTuple):
    """Per sample: the predicted class, the exit it left at (1 = exit 1, 2 = exit 2, ...) and that exit's logits."""

    predictions: torch.Tensor
    exit_number: torch.Tensor
    logits: torch.Tensor


def check_finite_images(images: torch.Tensor) -> None:
    """The shape checks of :func:`~earlyexit.models.check_image_batch`, and no NaN or infinite pixel."""
    check_image_batch(images)
    if not torch.isfinite(images).all():
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise ValueError(f"images contain NaN or infinite values ({bad} of {len(images)} samples)")


def model_stages(model: EarlyExitCNN, criterion: str | None) -> tuple[list[Stage], list[Head]]:
    """The model cut into blocks and exit heads; a head returns the exit's logits and, only when
    the criterion needs it, the confidence head's logit."""
    check_model(model)
    heads = []
    for k, exit_head in enumerate(model.exits):
        confidence = model.confidence_heads[k] if criterion == "learned" and k < len(model.confidence_heads) else None

        def head(features, exit_head=exit_head, confidence=confidence):
            return exit_head(features), None if confidence is None else confidence(features).squeeze(1)

        heads.append(head)
    return list(model.blocks), heads


def route_stages(stages: Sequence[Stage], heads: Sequence[Head],
                 images: torch.Tensor, rule: ExitRule) -> EarlyExitResult:
    """Route each sample through the stages until its rule lets it leave.

    Every sample starts with exit 1's answer; at each later exit, the samples
    still running overwrite their row. Tensor operations only: an empty set
    of survivors flows through the remaining stages, so the same code runs
    eagerly and under ``torch.export``.
    """
    n, last = images.shape[0], len(stages) - 1
    alive = torch.arange(n, device=images.device)  # positions still running
    state = rule.initial_state(n, images.device)
    features = stages[0](images)
    logits_out, confidence = heads[0](features)
    exit_number = torch.ones(n, dtype=torch.long, device=images.device)
    logits = logits_out
    for k in range(last + 1):
        if k > 0:
            features = stages[k](features)
            logits, confidence = heads[k](features)
            logits_out = logits_out.index_copy(0, alive, logits)
            exit_number = exit_number.index_fill(0, alive, k + 1)
        if k == last:
            break
        leave, state = rule.decide(k, logits, confidence, state)
        stay = torch.nonzero(~leave).squeeze(1)  # NaN scores stay
        alive = alive.index_select(0, stay)
        features = features.index_select(0, stay)
        state = state.index_select(0, stay)
    return EarlyExitResult(logits_out.argmax(dim=1), exit_number, logits_out)


def route_single(stages: Sequence[Stage], heads: Sequence[Head], image: torch.Tensor,
                 rule: ExitRule) -> EarlyExitResult:
    """One image (a batch of 1) with a plain Python ``if`` at each exit: the forum's idea, made correct."""
    state = rule.initial_state(1, image.device)
    features, last = image, len(stages) - 1
    for k, (stage, head) in enumerate(zip(stages, heads)):
        features = stage(features)
        logits, confidence = head(features)
        if k < last:
            leave, state = rule.decide(k, logits, confidence, state)
            if not leave.item():
                continue
        exit_number = torch.full((1,), k + 1, dtype=torch.long, device=image.device)
        return EarlyExitResult(logits.argmax(dim=1), exit_number, logits)
    raise AssertionError("unreachable: the last exit takes every sample")


def _prepare(model: EarlyExitCNN, images: torch.Tensor, rule, criterion) -> ExitRule:
    rule = as_rule(rule, criterion)
    rule.check(check_model(model).num_exits)
    check_finite_images(images)
    return rule


@torch.no_grad()
def route_batch(model: EarlyExitCNN, images: torch.Tensor, rule: float | Sequence[float] | ExitRule,
                criterion: str | None = None) -> EarlyExitResult:
    """Early-exit inference for a batch: each sample leaves at the first exit whose rule lets it.

    ``rule`` is a threshold (leave when the ``criterion`` score is above it; max-softmax by
    default), one threshold per exit but the last, or a rule object such as ``PatienceRule(2)``.
    """
    rule = _prepare(model, images, rule, criterion)
    stages, heads = model_stages(model, rule.criterion)
    return route_stages(stages, heads, images, rule)


@torch.no_grad()
def route_one_by_one(model: EarlyExitCNN, images: torch.Tensor, rule: float | Sequence[float] | ExitRule,
                     criterion: str | None = None) -> EarlyExitResult:
    """Reference: one image at a time, a Python ``if`` at each exit."""
    rule = _prepare(model, images, rule, criterion)
    stages, heads = model_stages(model, rule.criterion)
    parts = [route_single(stages, heads, image[None], rule) for image in images]
    if not parts:
        empty = torch.zeros(0, dtype=torch.long, device=images.device)
        return EarlyExitResult(empty, empty.clone(), images.new_zeros((0, model.num_classes)))
    return EarlyExitResult(*(torch.cat(field) for field in zip(*parts)))


def first_exits(exit_logits: Sequence[torch.Tensor], confidence_logits: Sequence[torch.Tensor] | None,
                rule: ExitRule) -> torch.Tensor:
    """The exit number (1-based) each sample leaves at, given every exit's logits for every sample.

    The same decisions as routing, made after the fact; used by :func:`compute_all_then_mask`
    and to evaluate rules on recorded logits without running the model again. ``rule`` is what
    :func:`route_batch` takes; ``confidence_logits`` may be None when its criterion needs none.
    """
    rule = as_rule(rule)
    if not isinstance(exit_logits, (list, tuple)) or not exit_logits \
            or not all(isinstance(x, torch.Tensor) and x.ndim == 2 for x in exit_logits):
        raise ValueError("exit_logits must be a sequence of each exit's (N, classes) logits, at least one")
    rule.check(len(exit_logits))
    if rule.criterion == "learned" and (confidence_logits is None or len(confidence_logits) < len(exit_logits) - 1):
        raise ValueError("the 'learned' criterion needs confidence_logits for every exit but the last")
    return _first_exits(exit_logits, confidence_logits, rule)


def _first_exits(exit_logits: Sequence[torch.Tensor], confidence_logits: Sequence[torch.Tensor] | None,
                 rule: ExitRule) -> torch.Tensor:
    """:func:`first_exits` without its checks, for callers that made them once (the timed paths)."""
    n, last = exit_logits[0].shape[0], len(exit_logits) - 1
    device = exit_logits[0].device
    exit_number = torch.full((n,), last + 1, dtype=torch.long, device=device)
    undecided = torch.ones(n, dtype=torch.bool, device=device)
    state = rule.initial_state(n, device)
    for k in range(last):
        confidence = confidence_logits[k] if rule.criterion == "learned" else None
        leave, state = rule.decide(k, exit_logits[k], confidence, state)
        now = leave & undecided
        exit_number[now] = k + 1
        undecided &= ~leave
    return exit_number


def all_exits(stages: Sequence[Stage], heads: Sequence[Head],
              images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Every sample through every stage and head: each exit's logits, and the confidence logits
    the heads return (only where the rule's criterion needs them, else None)."""
    features, exit_logits, confidence_logits = images, [], []
    for stage, head in zip(stages, heads):
        features = stage(features)
        logits, confidence = head(features)
        exit_logits.append(logits)
        confidence_logits.append(confidence)
    return exit_logits, confidence_logits


def pick_exits(exit_logits: Sequence[torch.Tensor], confidence_logits: Sequence[torch.Tensor] | None,
               rule: ExitRule) -> EarlyExitResult:
    """Given every exit's logits for every sample: each sample's first exit under ``rule``, and its answer there."""
    exit_number = _first_exits(exit_logits, confidence_logits, rule)
    rows = torch.arange(len(exit_number), device=exit_number.device)
    logits = torch.stack(list(exit_logits))[exit_number - 1, rows]  # (exits, N, classes) -> (N, classes)
    return EarlyExitResult(logits.argmax(dim=1), exit_number, logits)


@torch.no_grad()
def compute_all_then_mask(model: EarlyExitCNN, images: torch.Tensor, rule: float | Sequence[float] | ExitRule,
                          criterion: str | None = None) -> EarlyExitResult:
    """Run every sample through every exit, then choose per sample: no routing, no saving.

    Confidence heads run only when the rule's criterion uses them, as in routing.
    """
    rule = _prepare(model, images, rule, criterion)
    stages, heads = model_stages(model, rule.criterion)
    return pick_exits(*all_exits(stages, heads, images), rule)
