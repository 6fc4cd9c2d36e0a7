"""A faster inference path for a trained :class:`~earlyexit.models.EarlyExitCNN`.

Same weights, same exit rule, same routing code (:func:`earlyexit.inference.route_stages`),
same predictions as :func:`earlyexit.inference.route_batch` (``tests/test_fast.py``); only
the blocks are computed differently. Chapter 7 measures each change on its own:

* **2x2 max-pool as two element-wise maxima** of strided views: PyTorch's ``max_pool2d`` on
  an NCHW CPU tensor is slow for what it does; the maxima give bit-identical results.
* **Pool before ReLU**: ``relu(maxpool(x)) == maxpool(relu(x))`` exactly (ReLU is monotone),
  and the ReLU then touches a quarter of the values.
* **``torch.inference_mode``** instead of ``no_grad``: no version counters or view tracking.
* **Channels-last memory** (optional, an alternative to the strided maxima): ``max_pool2d`` is
  fast on an NHWC tensor, at the price of one layout conversion per block.
* **Chunks** (off unless asked for, ``chunk_size=256``): a batch of 1024 makes buffers of
  51 MB after block 1, above the 32 MiB up to which glibc's default allocator comes to reuse
  freed memory (:mod:`earlyexit.allocator`); chunks of 256 make buffers a quarter of the size.
  Under the policy the book times with ("keep"), every buffer is reused anyway, and Chapter 7
  measures what chunking is still worth.
* **A plain Python branch at batch size 1**: on a CPU, ``.item()`` costs well under a
  microsecond; masks, ``nonzero`` and gathers cost more than they save for one image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .checks import check_bool, check_int
from .exits import ExitRule, as_rule
from .inference import EarlyExitResult, all_exits, check_finite_images, pick_exits, route_single, route_stages
from .models import EarlyExitCNN, check_model


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2, stride-2 max-pooling of an (N, C, H, W) tensor, bit-identical to ``F.max_pool2d(x, 2)``.

    Two element-wise maxima of strided views: neighbouring rows first (each row is contiguous
    in memory), then neighbouring columns of the half-height result. An odd last row or
    column is dropped, as ``max_pool2d`` does.
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    rows = torch.maximum(x[..., 0:h:2, :w], x[..., 1:h:2, :w])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def _joined(parts: list[EarlyExitResult]) -> EarlyExitResult:
    """The results of consecutive chunks as one result, in batch order."""
    return parts[0] if len(parts) == 1 else EarlyExitResult(*(torch.cat(field) for field in zip(*parts)))


class FastEarlyExit:
    """Inference-only early exit: ``FastEarlyExit(model, rule)(images) -> EarlyExitResult``.

    ``rule`` is what :func:`~earlyexit.inference.route_batch` takes. Every optimisation can
    be switched off, so that Chapter 7 can measure each one. The weights are copied: later
    training of ``model`` does not leak in, and ``model`` itself is left as it was.
    """

    def __init__(self, model: EarlyExitCNN, rule: float | Sequence[float] | ExitRule, criterion: str | None = None, *,
                 pool_before_relu: bool = True, strided_max_pool: bool = True, channels_last: bool = False,
                 use_inference_mode: bool = True, chunk_size: int | None = None) -> None:
        self.rule = as_rule(rule, criterion)
        self.rule.check(check_model(model).num_exits)
        self.pool_before_relu = check_bool("pool_before_relu", pool_before_relu)
        self.strided_max_pool = check_bool("strided_max_pool", strided_max_pool)
        self.channels_last = check_bool("channels_last", channels_last)
        self.use_inference_mode = check_bool("use_inference_mode", use_inference_mode)
        self.chunk_size = None if chunk_size is None else check_int("chunk_size", chunk_size)

        def snapshot(layer):
            return layer.weight.detach().clone(), layer.bias.detach().clone()

        self.convs = [snapshot(block.conv) for block in model.blocks]
        self.exit_heads = [snapshot(head.linear) for head in model.exits]
        self.confidence_heads = [snapshot(head.linear) for head in model.confidence_heads]
        self.stages = [lambda x, k=k: self.block(k, x) for k in range(len(self.convs))]
        self.heads = [lambda f, k=k: self.head(k, f) for k in range(len(self.exit_heads))]

    def block(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Block ``index`` (0-based): convolution, then ReLU and 2x2 max-pool in the configured order and way."""
        x = F.conv2d(x, *self.convs[index], padding=2)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        pool = max_pool_2x2 if self.strided_max_pool else (lambda t: F.max_pool2d(t, 2))
        return pool(x).relu_() if self.pool_before_relu else pool(x.relu())

    def head(self, index: int, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Exit ``index``'s logits, and its confidence logit when the rule needs it."""
        flat = features.flatten(1)
        logits = F.linear(flat, *self.exit_heads[index])
        needs_confidence = self.rule.criterion == "learned" and index < len(self.confidence_heads)
        return logits, F.linear(flat, *self.confidence_heads[index]).squeeze(1) if needs_confidence else None

    def grad_mode(self):
        """``torch.inference_mode()``, or ``torch.no_grad()`` when that optimisation is off."""
        return torch.inference_mode() if self.use_inference_mode else torch.no_grad()

    def chunks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``images`` cut into the chunks every path processes one after the other."""
        return list(images.split(self.chunk_size)) if self.chunk_size and len(images) > self.chunk_size else [images]

    def _check(self, images: torch.Tensor) -> None:
        check_finite_images(images)
        device = self.convs[0][0].device
        if images.device != device:
            raise ValueError(f"images are on {images.device} but the weights on {device}: "
                             f"call .to({str(images.device)!r}) first")

    def full(self, images: torch.Tensor) -> torch.Tensor:
        """The whole network without early exit (the baseline), with the same optimisations: last exit's logits."""
        self._check(images)
        with self.grad_mode():
            outputs = []
            for chunk in self.chunks(images):
                for stage in self.stages:
                    chunk = stage(chunk)
                outputs.append(self.head(len(self.stages) - 1, chunk)[0])
            return torch.cat(outputs)

    def __call__(self, images: torch.Tensor) -> EarlyExitResult:
        """Early exit with the survivors routed onwards (a Python branch for a single image)."""
        self._check(images)
        with self.grad_mode():
            if len(images) == 1:
                return route_single(self.stages, self.heads, images, self.rule)
            return _joined([route_stages(self.stages, self.heads, chunk, self.rule) for chunk in self.chunks(images)])

    def compute_all_then_mask(self, images: torch.Tensor) -> EarlyExitResult:
        """Every sample through every exit, then a per-sample choice: no routing at all."""
        self._check(images)
        with self.grad_mode():
            return _joined([pick_exits(*all_exits(self.stages, self.heads, chunk), self.rule)
                            for chunk in self.chunks(images)])

    def to(self, device: torch.device | str) -> FastEarlyExit:
        """Move the copied weights to ``device`` (returns self)."""
        move = lambda pairs: [(w.to(device), b.to(device)) for w, b in pairs]  # noqa: E731
        self.convs, self.exit_heads = move(self.convs), move(self.exit_heads)
        self.confidence_heads = move(self.confidence_heads)
        return self
