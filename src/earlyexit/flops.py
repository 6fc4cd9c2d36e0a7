"""FLOPs of each block and head, counted by ``torch.utils.flop_counter.FlopCounterMode``.

FlopCounterMode counts FLOPs, not MACs: one multiply-add is 2 FLOPs. It counts
convolutions and matrix products (the work that dominates); ReLU, pooling, softmax and
the exit comparison are not counted, so the clock (Chapter 7) can disagree with FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .exits import check_criterion
from .models import IMAGE_SHAPE, EarlyExitCNN, check_model


def count_flops(fn: Callable[..., object], *inputs: torch.Tensor) -> int:
    """FLOPs of one call of ``fn(*inputs)``."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    with FlopCounterMode(display=False) as counter:
        fn(*inputs)
    return int(counter.get_total_flops())


@torch.no_grad()
def stage_flops(model: EarlyExitCNN) -> dict[str, int]:
    """FLOPs per sample of every block and head, named "block 1", "exit 1", "confidence 1", ..."""
    check_model(model)
    features = torch.zeros(1, *IMAGE_SHAPE)
    stages: dict[str, int] = {}
    for k, (block, head) in enumerate(zip(model.blocks, model.exits), start=1):
        stages[f"block {k}"] = count_flops(block, features)
        features = block(features)
        stages[f"exit {k}"] = count_flops(head, features)
        if k <= len(model.confidence_heads):
            stages[f"confidence {k}"] = count_flops(model.confidence_heads[k - 1], features)
    return stages


def exit_costs(model: EarlyExitCNN, criterion: str | None = "max_softmax") -> tuple[int, ...]:
    """FLOPs per sample of leaving at each exit: every block up to it, and every head passed on the way.

    A sample leaving at exit k paid for blocks 1..k, exit heads 1..k and, when the rule is
    ``"learned"``, confidence heads 1..k (there is none at the last exit). For a two-exit
    network: ``early, deep = exit_costs(model)``. ``criterion=None`` for rules without a score
    (patience), which need only the exit heads.
    """
    if criterion is not None:
        check_criterion(criterion)
    stages = stage_flops(model)
    costs, total = [], 0
    for k in range(1, model.num_exits + 1):
        total += stages[f"block {k}"] + stages[f"exit {k}"]
        if criterion == "learned" and k < model.num_exits:
            total += stages[f"confidence {k}"]
        costs.append(total)
    return tuple(costs)


def full_network_flops(model: EarlyExitCNN) -> int:
    """FLOPs per sample of the plain network without early exit: every block, and the last exit's head only."""
    stages = stage_flops(model)
    return sum(stages[f"block {k}"] for k in range(1, model.num_exits + 1)) + stages[f"exit {model.num_exits}"]
