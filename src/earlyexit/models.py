"""The multi-exit CNN: the forum's conv blocks with an exit after each, bugs fixed.

Fixes relative to the forum post (Chapter 2 explains each):

* every convolution gets ``padding=2``, so a 28x28 image stays 28x28 until the pool halves
  it (16 x 14 x 14 features after block 1, as the forum's heads expect);
* activations stay 4-D between blocks; flattening happens inside the heads only;
* every exit returns logits; softmax is applied only where an exit decision is made;
* the confidence head returns a logit too (``torch.sigmoid`` reads it as a probability).

The forum's network has two blocks (``channels=(16, 32)``, the default). Any number of
blocks works the same way, with an exit after each (Chapter 9).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .checks import check_int, check_type

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
FORUM_CHANNELS = (16, 32)


class ConvBlock(nn.Module):
    """5x5 convolution keeping the size, ReLU, 2x2 max-pool halving it."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=5,
                              stride=1, padding=2)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.conv(x)))


class ExitHead(nn.Module):
    """Flattens a feature map, maps it linearly to ``out_features`` logits."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.flatten(features))


class MultiExitOutput(NamedTuple):
    """Training-time output: every exit's logits, and every confidence head's logit."""

    exit_logits: tuple[torch.Tensor, ...]  # one (N, classes) tensor per exit
    confidence_logits: tuple[torch.Tensor, ...]  # one (N,) tensor per exit but the last


def check_image_batch(images: torch.Tensor, shape: tuple[int, int, int] = IMAGE_SHAPE) -> None:
    """Raise a TypeError or ValueError saying what was expected unless ``images`` is an (N, 1, 28, 28)
    float32 batch.

    float32 is the dtype of the weights, of every inference path and of the exported graph:
    float64 images are refused with the fix (``images.float()``) rather than converted behind
    the caller's back or left to fail inside a convolution.
    """
    expected = f"(N, {', '.join(map(str, shape))})"
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape {expected}, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor (normalised pixels), got {images.dtype}")
    if images.dtype != torch.float32:
        raise TypeError(f"images must be float32, the dtype of the model's weights, got {images.dtype}: "
                        "convert them with images.float()")
    if images.ndim != 4:
        hint = " (add a batch dimension with images.unsqueeze(0))" if images.ndim == 3 else ""
        raise ValueError(f"expected a 4-D batch (N, C, H, W) = {expected}, "
                         f"got a {images.ndim}-D tensor of shape {tuple(images.shape)}{hint}")
    if images.shape[1] != shape[0]:
        raise ValueError(f"expected {shape[0]} input channel(s), got {images.shape[1]} (shape {tuple(images.shape)})")
    if tuple(images.shape[2:]) != shape[1:]:
        raise ValueError(f"expected {shape[1]}x{shape[2]} images, got {images.shape[2]}x{images.shape[3]} "
                         f"(shape {tuple(images.shape)})")


def feature_sizes(channels: Sequence[int], image_size: int = IMAGE_SHAPE[1]) -> list[tuple[int, int, int]]:
    """(channels, height, width) after each block: every block keeps the size, then halves it (rounding down)."""
    check_int("image_size", image_size)
    sizes, side = [], image_size
    for c in channels:
        side //= 2
        sizes.append((c, side, side))
    return sizes


class EarlyExitCNN(nn.Module):
    """Conv blocks with an exit (a linear classifier) after each, and a confidence head beside every exit but the last.

    ``channels=(16, 32)`` is the forum's network: block 1, exit 1 and its confidence head,
    block 2, exit 2. The layers are created in that order, so a seed gives the same
    weights whatever else the model has.
    """

    def __init__(self, channels: Sequence[int] = FORUM_CHANNELS, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)  # one class leaves nothing to decide (and no entropy)
        channels = tuple(channels)
        if len(channels) < 2 or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in channels):
            raise ValueError(f"channels must list at least two positive ints (one per block), got {channels!r}")
        sizes = feature_sizes(channels)
        if sizes[-1][1] < 1:
            raise ValueError(f"{len(channels)} blocks halve a 28x28 image to nothing; use at most 4")
        self.channels = channels
        self.blocks = nn.ModuleList(ConvBlock(c_in, c_out)
                                    for c_in, c_out in zip((IMAGE_SHAPE[0],) + channels[:-1], channels))
        exits, confidence_heads = [], []
        for k, (c, h, w) in enumerate(sizes):
            exits.append(ExitHead(c * h * w, num_classes))
            if k < len(sizes) - 1:
                confidence_heads.append(ExitHead(c * h * w, 1))
        self.exits = nn.ModuleList(exits)
        self.confidence_heads = nn.ModuleList(confidence_heads)

    @property
    def num_exits(self) -> int:
        return len(self.exits)

    @property
    def num_classes(self) -> int:
        return self.exits[0].linear.out_features

    def forward(self, images: torch.Tensor) -> MultiExitOutput:
        """Run every sample through every exit (training and analysis)."""
        check_image_batch(images)
        exit_logits, confidence_logits = [], []
        features = images
        for k, block in enumerate(self.blocks):
            features = block(features)  # stays 4-D: (N, C, H, W)
            exit_logits.append(self.exits[k](features))
            if k < len(self.confidence_heads):
                confidence = self.confidence_heads[k](features)
                confidence_logits.append(confidence.squeeze(1))
        return MultiExitOutput(tuple(exit_logits), tuple(confidence_logits))

    def final_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The plain network, no early exit: every block, then the last exit's logits (no input checks)."""
        features = images
        for block in self.blocks:
            features = block(features)
        return self.exits[-1](features)


def check_model(model: object) -> EarlyExitCNN:
    """``model`` if it is an :class:`EarlyExitCNN`; a TypeError naming it otherwise (e.g. a TrainedModel: pass
    its ``.model``)."""
    return check_type("model", model, EarlyExitCNN, "an EarlyExitCNN (a TrainedModel's .model)")


@torch.no_grad()
def logits_tolerance(model: EarlyExitCNN, images: torch.Tensor) -> float:
    """How far two correct float32 computations of the same logits may differ, from the magnitudes involved.

    A float32 dot product of K terms is rounded by about sqrt(K) * u * sum|w x| (u = 2**-24;
    the worst case is K * u * sum|w x|, Higham's bound). Paths that run different kernels
    (other batch sizes, fused operations, another CPU) differ by that much in the features and
    again in the head. We allow 4 * sqrt(K) * u * max sum|w x| over the exits: safely above
    rounding, far below the size of a real mistake (a wrong exit's logits differ by units).
    """
    check_model(model)
    check_image_batch(images)
    bound, features = 0.0, images
    for block, head in zip(model.blocks, model.exits):
        features = block(features)
        flat = features.flatten(1).abs()
        terms = flat @ head.linear.weight.abs().T + head.linear.bias.abs()
        k = flat.shape[1]
        bound = max(bound, 4 * k**0.5 * 2**-24 * float(terms.max()) if len(terms) else 0.0)
    return max(bound, 1e-6)
