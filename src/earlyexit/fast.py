"""A faster inference path for a trained :class:`~earlyexit.models.EarlyExitCNN`.

Same weights, same exit rule, same predictions as :func:`earlyexit.inference.route_batch`
(``tests/test_fast.py``); Chapter 7 measures each change on its own:

* **2x2 max-pool as two element-wise maxima** of strided views: PyTorch's ``max_pool2d`` on
  an NCHW CPU tensor is several times slower than the convolution before it; the maxima give
  bit-identical results.
* **Pool before ReLU**: ``relu(maxpool(x)) == maxpool(relu(x))`` exactly (ReLU is monotone),
  and the ReLU then touches a quarter of the values.
* **``torch.inference_mode``** instead of ``no_grad``: no version counters or view tracking.
* **Channels-last memory** (optional, an alternative to the strided maxima): ``max_pool2d`` is
  fast on an NHWC tensor, at the price of one layout conversion per block.
* **Chunks of at most 256 images**: a batch of 1024 makes activations (50 MB after block 1)
  that no longer fit in the CPU's caches; chunks that do are faster per image.
* **A plain Python branch at batch size 1**: on a CPU, ``.item()`` costs a microsecond; masks,
  ``nonzero`` and ``index_copy`` cost more than they save for one image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .exits import exit_scores
from .inference import EarlyExitResult
from .models import EarlyExitCNN, check_image_batch


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2, stride-2 max-pooling of an (N, C, H, W) tensor with even H and W, bit-identical to ``max_pool2d``.

    Two element-wise maxima of strided views: neighbouring rows first (each row is contiguous
    in memory), then neighbouring columns of the half-height result.
    """
    rows = torch.maximum(x[:, :, 0::2, :], x[:, :, 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class FastEarlyExit:
    """Inference-only early exit: ``FastEarlyExit(model, threshold)(images) -> EarlyExitResult``.

    Every optimisation can be switched off, so that Chapter 7 can measure each one; batches
    larger than ``chunk_size`` (``None``: no limit) are processed in chunks of that size.
    """

    def __init__(self, model: EarlyExitCNN, threshold: float, criterion: str = "max_softmax", *,
                 pool_before_relu: bool = True, strided_max_pool: bool = True, channels_last: bool = False,
                 use_inference_mode: bool = True, chunk_size: int | None = 256) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        self.model, self.threshold, self.criterion = model.eval(), float(threshold), criterion
        self.pool_before_relu, self.strided_max_pool, self.channels_last = pool_before_relu, strided_max_pool, channels_last
        self.use_inference_mode = use_inference_mode
        self.chunk_size = chunk_size or 2**62
        detach = lambda t: t.detach().clone()  # noqa: E731 - a snapshot: later training does not leak in
        self.w1, self.b1 = detach(model.block1[0].weight), detach(model.block1[0].bias)
        self.w2, self.b2 = detach(model.block2[0].weight), detach(model.block2[0].bias)
        self.head1 = (detach(model.exit1[1].weight), detach(model.exit1[1].bias))
        self.head2 = (detach(model.exit2[1].weight), detach(model.exit2[1].bias))
        self.confidence = (detach(model.confidence1[1].weight), detach(model.confidence1[1].bias))

    def _conv_relu_pool(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, weight, bias, padding=2)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        pool = max_pool_2x2 if self.strided_max_pool else lambda t: F.max_pool2d(t, 2)
        return pool(x).relu_() if self.pool_before_relu else pool(x.relu())

    def block1(self, images: torch.Tensor) -> torch.Tensor:
        return self._conv_relu_pool(images, self.w1, self.b1)

    def block2(self, features1: torch.Tensor) -> torch.Tensor:
        return self._conv_relu_pool(features1, self.w2, self.b2)

    def grad_mode(self):
        """``torch.inference_mode()``, or ``torch.no_grad()`` when that optimisation is off."""
        return torch.inference_mode() if self.use_inference_mode else torch.no_grad()

    def exit1(self, features1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exit-1 logits and each sample's score under the exit rule."""
        flat = features1.flatten(1)
        logits = F.linear(flat, *self.head1)
        confidence = F.linear(flat, *self.confidence).squeeze(1) if self.criterion == "learned" else None
        return logits, exit_scores(self.criterion, logits, confidence)

    def exit2(self, features1: torch.Tensor) -> torch.Tensor:
        return F.linear(self.block2(features1).flatten(1), *self.head2)

    def full(self, images: torch.Tensor) -> torch.Tensor:
        """The whole network without early exit (the baseline), with the same optimisations."""
        check_image_batch(images)
        with self.grad_mode():
            return torch.cat([self.exit2(self.block1(chunk)) for chunk in images.split(self.chunk_size)])

    def _in_chunks(self, step, images: torch.Tensor) -> EarlyExitResult:
        check_image_batch(images)
        with self.grad_mode():
            if len(images) <= self.chunk_size:
                return step(images)
            return _concat([step(chunk) for chunk in images.split(self.chunk_size)])

    def compute_all_then_mask(self, images: torch.Tensor) -> EarlyExitResult:
        """Every sample through both exits, then a per-sample choice: no routing at all."""
        return self._in_chunks(self._mask, images)

    def _mask(self, images: torch.Tensor) -> EarlyExitResult:
        features1 = self.block1(images)
        logits1, scores = self.exit1(features1)
        exits = scores > self.threshold
        logits = torch.where(exits[:, None], logits1, self.exit2(features1))
        return EarlyExitResult(logits.argmax(1), (~exits).long(), logits)

    def __call__(self, images: torch.Tensor) -> EarlyExitResult:
        """Early exit with the survivors routed through block 2 (a Python branch for one image)."""
        return self._in_chunks(self._route, images)

    def _route(self, images: torch.Tensor) -> EarlyExitResult:
        features1 = self.block1(images)
        logits, scores = self.exit1(features1)
        if len(images) == 1:
            if scores.item() > self.threshold:
                return EarlyExitResult(logits.argmax(1), torch.zeros(1, dtype=torch.long), logits)
            logits = self.exit2(features1)
            return EarlyExitResult(logits.argmax(1), torch.ones(1, dtype=torch.long), logits)
        onward = torch.nonzero(scores <= self.threshold).squeeze(1)
        exit_index = torch.zeros(len(images), dtype=torch.long)
        if len(onward):
            logits = logits.index_copy(0, onward, self.exit2(features1.index_select(0, onward)))
            exit_index[onward] = 1
        return EarlyExitResult(logits.argmax(1), exit_index, logits)


def _concat(parts: list[EarlyExitResult]) -> EarlyExitResult:
    return EarlyExitResult(*(torch.cat(field) for field in zip(*parts)))
