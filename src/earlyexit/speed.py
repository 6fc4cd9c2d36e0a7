"""Early exit on the clock: the implementations cut into stages, and their timings (Chapters 7-9).

:func:`measure_speed` times, in one interleaved run (:mod:`earlyexit.timing`), the full
network, early exit with routing, early exit computing everything then masking, and each
stage of the network on its own. From the stage times it forms the **stage-sum estimate**:
every stage's time per image weighted by the share of images that reach it, i.e. what
early exit would cost if gathering and scattering survivors were free. It is an estimate,
not a bound: the deep stages are timed on full batches, while routing runs them on the
smaller batch of survivors, whose per-image cost can be lower or higher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .exits import ExitRule
from .fast import FastEarlyExit
from .inference import EarlyExitResult, compute_all_then_mask, model_stages, route_batch
from .models import EarlyExitCNN
from .report import Table, table
from .timing import Ratio, Timing, speedup, time_interleaved
from .utils import check_int

BATCH_SIZES = (1, 16, 256, 1024)  # one image, a small server batch, a large one, beyond the cache
MIN_TIMED_IMAGES = 256  # fewer images per round give an unstable exit share


def timing_images(images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The images one timed round uses at ``batch_size``: at least 256, and one whole batch."""
    check_int("batch_size", batch_size)
    return images[:max(batch_size, MIN_TIMED_IMAGES)]


@dataclass(frozen=True)
class Implementation:
    """One implementation of an early-exit network, cut into the pieces the speed model needs."""

    name: str
    num_exits: int
    rule: ExitRule
    block: Callable[[int, torch.Tensor], torch.Tensor]  # (k, input) -> features after block k (0-based)
    head: Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]  # features -> logits, confidence
    full: Callable[[torch.Tensor], object]  # the plain network, no early exit
    route: Callable[[torch.Tensor], EarlyExitResult]  # early exit, survivors routed
    mask: Callable[[torch.Tensor], EarlyExitResult]  # early exit, everything computed then masked
    grad_mode: Callable[[], object]

    def stage(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Stage k: block k, its exit head and (before the last exit) the exit decision; returns the features."""
        features = self.block(k, x)
        logits, confidence = self.head(k, features)
        if k < self.num_exits - 1:
            self.rule.decide(k, logits, confidence, self.rule.initial_state(len(x), x.device))
        return features


def reference_implementation(model: EarlyExitCNN, rule: ExitRule) -> Implementation:
    """The straightforward implementation: the model's modules and :func:`~earlyexit.inference.route_batch`."""
    model.eval()
    blocks, heads = model_stages(model, rule.criterion)
    return Implementation("reference", model.num_exits, rule, lambda k, x: blocks[k](x), lambda k, f: heads[k](f),
                          model.final_logits, lambda x: route_batch(model, x, rule),
                          lambda x: compute_all_then_mask(model, x, rule), torch.no_grad)


def fast_implementation(fast: FastEarlyExit) -> Implementation:
    """The optimised implementation of :mod:`earlyexit.fast`."""
    return Implementation("fast", len(fast.stages), fast.rule, fast.block, fast.head, fast.full, fast,
                          fast.compute_all_then_mask, fast.grad_mode)


@dataclass(frozen=True)
class SpeedRow:
    """Per-image times at one batch size and the speedups they give (all from one interleaved run)."""

    batch_size: int
    reach: tuple[float, ...]  # share of images reaching each stage (reach[0] = 1)
    full: Timing
    early_exit: Timing
    masked: Timing
    stages: tuple[Timing, ...]
    flops_ideal: float  # full-network FLOPs over expected FLOPs per image

    @property
    def exit_fraction(self) -> float:
        """Share of images leaving before the last exit."""
        return 1.0 - self.reach[-1]

    @property
    def measured(self) -> Ratio:
        """Speedup of early exit (routing) over the full network, with its interval."""
        return speedup(self.full, self.early_exit)

    @property
    def masked_speedup(self) -> Ratio:
        return speedup(self.full, self.masked)

    @property
    def stage_sum(self) -> Timing:
        """Each round's stage-sum estimate, every stage's time weighted by the share reaching it."""
        rounds = zip(*(stage.samples for stage in self.stages))
        return Timing(tuple(sum(r * t for r, t in zip(self.reach, times)) for times in rounds))

    @property
    def stage_sum_speedup(self) -> Ratio:
        return speedup(self.full, self.stage_sum)

    @property
    def routing_overhead(self) -> Ratio:
        """Measured early-exit time over the stage-sum estimate (1.10 = 10% more), per round."""
        return speedup(self.early_exit, self.stage_sum)


def speed_table(rows: list[SpeedRow]) -> Table:
    """One row per batch size: exit share, times per image, the measured speedup with its verdict,
    the stage-sum estimate and the FLOPs-ideal."""
    return table(["batch", "exit early", "full, µs/image", "early exit, µs/image", "measured speedup",
                  "stage-sum estimate", "FLOPs-ideal"],
                 [[r.batch_size, f"{r.exit_fraction:.0%}", f"{r.full.median * 1e6:.1f}",
                   f"{r.early_exit.median * 1e6:.1f}", r.measured.verdict(),
                   f"{r.stage_sum_speedup.median:.2f}x", f"{r.flops_ideal:.2f}x"] for r in rows])


def _over(fn: Callable[[torch.Tensor], object], inputs: list[torch.Tensor], mode: Callable[[], object]):
    """A zero-argument callable applying ``fn`` to every input under a grad mode (for timing)."""
    def run():
        with mode():
            return [fn(x) for x in inputs]
    return run


def full_batches(images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``images`` cut into batches of exactly ``batch_size`` (a ragged last batch is dropped)."""
    if batch_size < 1 or batch_size > len(images):
        raise ValueError(f"batch_size must be between 1 and {len(images)}, got {batch_size}")
    return [images[i:i + batch_size] for i in range(0, len(images) - batch_size + 1, batch_size)]


def measure_speed(impl: Implementation, images: torch.Tensor, batch_size: int, exit_costs: tuple[float, ...],
                  full_flops: float, repeats: int = 15, warmup: int = 2) -> SpeedRow:
    """Time one pass over ``images`` in batches of ``batch_size``: every variant and stage, interleaved."""
    batches = full_batches(images, batch_size)
    n = sum(len(b) for b in batches)
    with impl.grad_mode():
        inputs = [batches]  # inputs[k]: what stage k receives, for every image
        for k in range(impl.num_exits - 1):
            inputs.append([impl.block(k, x) for x in inputs[-1]])
        exits = torch.cat([impl.route(b).exit_number for b in batches])
    shares = torch.bincount(exits - 1, minlength=impl.num_exits).double() / n
    reach = tuple(float(1 - shares[:k].sum()) for k in range(impl.num_exits))
    expected_flops = float(sum(float(s) * c for s, c in zip(shares, exit_costs)))

    mode = impl.grad_mode
    candidates = {"full": _over(impl.full, batches, mode), "route": _over(impl.route, batches, mode),
                  "mask": _over(impl.mask, batches, mode)}
    for k in range(impl.num_exits):
        candidates[f"stage {k + 1}"] = _over(lambda x, k=k: impl.stage(k, x), inputs[k], mode)
    timings = {name: t.per(n) for name, t in time_interleaved(candidates, repeats, warmup).items()}
    stages = tuple(timings[f"stage {k + 1}"] for k in range(impl.num_exits))
    return SpeedRow(batch_size, reach, timings["full"], timings["route"], timings["mask"], stages,
                    full_flops / expected_flops)


@torch.no_grad()
def time_layers(model: EarlyExitCNN, images: torch.Tensor, batch_size: int, rule: ExitRule,
                repeats: int = 15, warmup: int = 2) -> dict[str, Timing]:
    """Per-image time of every layer of the reference model at one batch size, interleaved.

    Names: "block k: conv", "block k: ReLU", "block k: max-pool", "exit k: head + decision"
    (the last exit: "exit k: head").
    """
    model.eval()
    _, heads = model_stages(model, rule.criterion)
    batches = full_batches(images, batch_size)
    candidates: dict[str, Callable[[], object]] = {}
    current = batches
    for k, block in enumerate(model.blocks):
        for name, layer in (("conv", block.conv), ("ReLU", block.relu), ("max-pool", block.pool)):
            candidates[f"block {k + 1}: {name}"] = _over(layer, current, torch.no_grad)
            current = [layer(x) for x in current]
        if k < model.num_exits - 1:
            def decide(f, k=k):
                logits, confidence = heads[k](f)
                return rule.decide(k, logits, confidence, rule.initial_state(len(f), f.device))
            candidates[f"exit {k + 1}: head + decision"] = _over(decide, current, torch.no_grad)
        else:
            candidates[f"exit {k + 1}: head"] = _over(heads[k], current, torch.no_grad)

    timings = time_interleaved(candidates, repeats, warmup)
    n = sum(len(b) for b in batches)
    return {name: t.per(n) for name, t in timings.items()}
