"""Timing helpers for benchmarks and Chapter 7: warm-up, many repetitions, medians, interleaving.

Candidates are timed round-robin (A, B, C, A, B, C, ...) in one run, so that a slow spell of a
noisy machine hits all of them alike and their ratios stay meaningful.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .fast import FastEarlyExit
from .inference import EarlyExitResult, compute_all_then_mask, exit1_scores, route_batch
from .models import EarlyExitCNN


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median and interquartile range over the repetitions."""

    median: float
    q25: float
    q75: float
    repeats: int

    @property
    def spread(self) -> float:
        return self.q75 - self.q25


def _sync_for(device: torch.device | str | None) -> Callable[[], None]:
    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_interleaved(candidates: dict[str, Callable[[], object]], repeats: int = 50, warmup: int = 5,
                     inner: int = 1, device: torch.device | str | None = None) -> dict[str, Timing]:
    """Time each zero-argument callable ``repeats`` times, round-robin, after ``warmup`` calls each.

    ``inner`` calls are made per measurement (for calls too short to time one by one); on CUDA the
    device is synchronised before the clock is read, so queued work is counted.
    """
    sync = _sync_for(device)
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            sync()
            samples[name].append((time.perf_counter() - start) / inner)
    timings = {}
    for name, values in samples.items():
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        timings[name] = Timing(statistics.median(values), q[0], q[2], len(values))
    return timings


def machine_info() -> dict[str, str]:
    """CPU model, threads, torch version and accelerator: to print beside every timing."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "torch threads": str(torch.get_num_threads()), "torch": torch.__version__,
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


@dataclass(frozen=True)
class Pipeline:
    """One implementation of the network, cut into the stages the speed model needs."""

    name: str
    early: Callable[[torch.Tensor], object]  # images -> block 1, exit-1 head and the exit decision
    block1: Callable[[torch.Tensor], torch.Tensor]  # images -> block-1 features
    deep: Callable[[torch.Tensor], object]  # block-1 features -> block 2 and exit 2
    full: Callable[[torch.Tensor], object]  # the plain network, no early exit
    route: Callable[[torch.Tensor], EarlyExitResult]  # early exit, survivors routed
    mask: Callable[[torch.Tensor], EarlyExitResult]  # early exit, everything computed then masked


def reference_pipeline(model: EarlyExitCNN, threshold: float, criterion: str = "max_softmax") -> Pipeline:
    """The straightforward implementation: the model's modules and :func:`~earlyexit.inference.route_batch`."""
    model.eval()

    @torch.no_grad()
    def early(x):
        return exit_decision(model, model.block1(x), threshold, criterion)

    @torch.no_grad()
    def block1(x):
        return model.block1(x)

    @torch.no_grad()
    def deep(features1):
        return model.exit2(model.block2(features1))

    return Pipeline("reference", early, block1, deep, lambda x: deep(block1(x)),
                    lambda x: route_batch(model, x, threshold, criterion),
                    lambda x: compute_all_then_mask(model, x, threshold, criterion))


def fast_pipeline(fast: FastEarlyExit) -> Pipeline:
    """The optimised implementation of :mod:`earlyexit.fast`."""

    def chunked(fn):
        def run(x):
            with fast.grad_mode():
                return [fn(chunk) for chunk in x.split(fast.chunk_size)]
        return run

    early = chunked(lambda x: fast.exit1(fast.block1(x))[1] > fast.threshold)
    block1 = lambda x: torch.cat(chunked(fast.block1)(x))  # noqa: E731 - only precomputes the deep stage's input
    deep = chunked(fast.exit2)

    return Pipeline("fast", early, block1, deep, fast.full, fast, fast.compute_all_then_mask)


@dataclass(frozen=True)
class SpeedRow:
    """Per-image times (seconds) at one batch size, and the speedups they give."""

    batch_size: int
    exit_fraction: float
    full: Timing
    early_exit: Timing
    masked: Timing
    early_stage: Timing
    deep_stage: Timing
    flops_ideal: float

    @property
    def measured_speedup(self) -> float:
        return self.full.median / self.early_exit.median

    @property
    def latency_ideal_time(self) -> float:
        """Stage times weighted by the exit fractions, i.e. early exit with zero routing overhead."""
        return self.early_stage.median + (1 - self.exit_fraction) * self.deep_stage.median

    @property
    def latency_ideal_speedup(self) -> float:
        return self.full.median / self.latency_ideal_time

    @property
    def routing_overhead(self) -> float:
        """How much slower the real early exit is than the latency-ideal one (0.1 = 10%)."""
        return self.early_exit.median / self.latency_ideal_time - 1


def _per_image(timing: Timing, images: int) -> Timing:
    return Timing(timing.median / images, timing.q25 / images, timing.q75 / images, timing.repeats)


def measure_speed(pipeline: Pipeline, images: torch.Tensor, batch_size: int, early_flops: float, deep_flops: float,
                  full_flops: float, repeats: int = 15, warmup: int = 2) -> SpeedRow:
    """Time one pass over ``images`` in batches of ``batch_size``, every variant and stage interleaved.

    The latency-ideal time is ``early + (1 - f) * deep``: the early stage (block 1, exit 1 and
    the decision) for every image, and block 2 with exit 2 for the share ``1 - f`` that goes on,
    each at its measured per-image cost, with nothing paid for gathering and scattering.
    """
    batches = full_batches(images, batch_size)
    features = [pipeline.block1(b) for b in batches]
    n = sum(len(b) for b in batches)
    exit_fraction = float(sum(int((pipeline.route(b).exit_index == 0).sum()) for b in batches)) / n

    def over(fn, inputs):
        return lambda: [fn(x) for x in inputs]

    timings = time_interleaved({"full": over(pipeline.full, batches), "route": over(pipeline.route, batches),
                                "mask": over(pipeline.mask, batches), "early": over(pipeline.early, batches),
                                "deep": over(pipeline.deep, features)}, repeats=repeats, warmup=warmup)
    per = {name: _per_image(t, n) for name, t in timings.items()}
    flops_ideal = full_flops / (exit_fraction * early_flops + (1 - exit_fraction) * deep_flops)
    return SpeedRow(batch_size, exit_fraction, per["full"], per["route"], per["mask"], per["early"], per["deep"],
                    flops_ideal)


def time_stages(model: EarlyExitCNN, images: torch.Tensor, batch_size: int, threshold: float = 0.5,
                repeats: int = 15, warmup: int = 2) -> dict[str, Timing]:
    """Per-image time of every layer of the reference model at one batch size, interleaved."""
    model.eval()
    batches = full_batches(images, batch_size)
    conv1, relu1, pool1 = model.block1
    conv2, relu2, pool2 = model.block2
    with torch.no_grad():
        inputs = {"images": batches}
        inputs["conv1"] = [conv1(b) for b in batches]
        inputs["relu1"] = [relu1(x) for x in inputs["conv1"]]
        inputs["features1"] = [pool1(x) for x in inputs["relu1"]]
        inputs["conv2"] = [conv2(x) for x in inputs["features1"]]
        inputs["relu2"] = [relu2(x) for x in inputs["conv2"]]
        inputs["features2"] = [pool2(x) for x in inputs["relu2"]]
    stages = {
        "block1: conv": (conv1, "images"), "block1: ReLU": (relu1, "conv1"), "block1: max-pool": (pool1, "relu1"),
        "exit 1: head + decision": (lambda h: exit_decision(model, h, threshold), "features1"),
        "block2: conv": (conv2, "features1"), "block2: ReLU": (relu2, "conv2"), "block2: max-pool": (pool2, "relu2"),
        "exit 2: head": (model.exit2, "features2"),
    }

    def over(fn, xs):
        def run():
            with torch.no_grad():
                return [fn(x) for x in xs]
        return run

    timings = time_interleaved({name: over(fn, inputs[key]) for name, (fn, key) in stages.items()},
                               repeats=repeats, warmup=warmup)
    n = sum(len(b) for b in batches)
    return {name: _per_image(t, n) for name, t in timings.items()}


def exit_decision(model: EarlyExitCNN, features1: torch.Tensor, threshold: float,
                  criterion: str = "max_softmax") -> torch.Tensor:
    """Exit 1's head and the exit decision, as the reference routing computes them."""
    return exit1_scores(model, features1, model.exit1(features1), criterion) > threshold


def full_batches(images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``images`` cut into batches of exactly ``batch_size`` (a ragged last batch is dropped)."""
    return [images[i:i + batch_size] for i in range(0, len(images) - batch_size + 1, batch_size)]
