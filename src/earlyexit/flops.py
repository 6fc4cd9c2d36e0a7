"""FLOPs of each stage and head, counted by ``torch.utils.flop_counter.FlopCounterMode``.

FlopCounterMode counts FLOPs, not MACs: one multiply-add is 2 FLOPs. It counts
convolutions and matrix products (the work that dominates); ReLU, pooling, softmax and
the exit comparison are not counted, so the clock (Chapter 7) can disagree with FLOPs.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import IMAGE_SHAPE, EarlyExitCNN


def count_flops(fn: Callable[..., object], *inputs: torch.Tensor) -> int:
    """FLOPs of one call of ``fn(*inputs)``."""
    with FlopCounterMode(display=False) as counter:
        fn(*inputs)
    return int(counter.get_total_flops())


def stage_flops(model: EarlyExitCNN) -> dict[str, int]:
    """FLOPs per sample of every stage and head of the model."""
    image = torch.zeros(1, *IMAGE_SHAPE)
    features1 = model.block1(image)
    return {
        "block1": count_flops(model.block1, image),
        "exit1": count_flops(model.exit1, features1),
        "confidence1": count_flops(model.confidence1, features1),
        "block2": count_flops(model.block2, features1),
        "exit2": count_flops(model.exit2, model.block2(features1)),
    }


def path_flops(model: EarlyExitCNN, criterion: str = "max_softmax") -> dict[str, int]:
    """FLOPs per sample of the three paths a sample can take.

    ``early``: block 1 and the heads at exit 1 (the confidence head only for ``"learned"``);
    ``deep``: a sample that goes on pays the early path, block 2 and exit 2;
    ``full``: the plain network without early exit (block 1, block 2, exit 2).
    """
    stages = stage_flops(model)
    early = stages["block1"] + stages["exit1"] + (stages["confidence1"] if criterion == "learned" else 0)
    return {"early": early, "deep": early + stages["block2"] + stages["exit2"],
            "full": stages["block1"] + stages["block2"] + stages["exit2"]}
