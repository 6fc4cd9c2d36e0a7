"""The multi-exit CNN: the forum's two conv blocks with an exit after each, bugs fixed.

Fixes relative to the forum post (Chapter 2 explains each):
* ``conv1`` gets ``padding=2`` so a 28x28 image stays 28x28 before pooling (16x14x14 features);
* activations stay 4-D between blocks; flattening happens inside the heads only;
* every exit returns logits; softmax is applied only where an exit decision is made;
* the confidence head returns a logit too (use ``torch.sigmoid`` to read it as a probability).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
BLOCK1_FEATURES = 16 * 14 * 14
BLOCK2_FEATURES = 32 * 7 * 7


class MultiExitOutput(NamedTuple):
    """Training-time output: the logits of every exit and the confidence logit of exit 1."""

    exit_logits: tuple[torch.Tensor, torch.Tensor]
    confidence_logit: torch.Tensor


def check_image_batch(images: torch.Tensor, shape: tuple[int, int, int] = IMAGE_SHAPE) -> None:
    """Raise a ValueError saying what was expected if ``images`` is not an (N, 1, 28, 28) batch."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor of shape (N, {', '.join(map(str, shape))}), got {type(images).__name__}")
    if images.ndim != 4:
        hint = " (add a batch dimension with images.unsqueeze(0))" if images.ndim == 3 else ""
        raise ValueError(f"expected a 4-D batch (N, C, H, W) = (N, {', '.join(map(str, shape))}), "
                         f"got a {images.ndim}-D tensor of shape {tuple(images.shape)}{hint}")
    if images.shape[1] != shape[0]:
        raise ValueError(f"expected {shape[0]} input channel(s), got {images.shape[1]} (shape {tuple(images.shape)})")
    if tuple(images.shape[2:]) != shape[1:]:
        raise ValueError(f"expected {shape[1]}x{shape[2]} images, got {images.shape[2]}x{images.shape[3]} "
                         f"(shape {tuple(images.shape)})")


class EarlyExitCNN(nn.Module):
    """Two conv blocks; after block 1 a classifier (exit 1) and a confidence head; after block 2 exit 2."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 16, kernel_size=5, stride=1, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(16, 32, kernel_size=5, stride=1, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.exit1 = nn.Sequential(nn.Flatten(), nn.Linear(BLOCK1_FEATURES, num_classes))
        self.confidence1 = nn.Sequential(nn.Flatten(), nn.Linear(BLOCK1_FEATURES, 1))
        self.exit2 = nn.Sequential(nn.Flatten(), nn.Linear(BLOCK2_FEATURES, num_classes))

    @property
    def num_exits(self) -> int:
        return 2

    def forward(self, images: torch.Tensor) -> MultiExitOutput:
        """Run every sample through every exit (training and analysis)."""
        check_image_batch(images)
        features1 = self.block1(images)
        return MultiExitOutput(
            (self.exit1(features1), self.exit2(self.block2(features1))),
            self.confidence1(features1).squeeze(1),
        )
