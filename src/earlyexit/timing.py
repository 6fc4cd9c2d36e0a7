"""The book's timing protocol: warm up, interleave, repeat; a median with a 95% interval.

* **Warm-up**: every candidate runs ``warmup`` times before any clock is read (first calls
  allocate memory, pick kernels, fill caches).
* **Interleaving**: candidates run round-robin (A, B, C, then B, C, A, ...: the order rotates
  every round), so a slow spell of a shared machine hits all of them alike.
* **Repeats and intervals**: each candidate gets one sample per round. We report the median
  with a distribution-free 95% confidence interval (order statistics of the binomial), and a
  speedup as the median of the per-round ratios, with the same kind of interval: the two
  calls of one round ran seconds apart, so their ratio cancels most of the machine's drift.
* **Verdicts**: a speedup is called one only when its interval excludes 1.0; otherwise
  "no measurable difference".

Why not ``torch.utils.benchmark``? Its ``Timer.blocked_autorange`` times one statement at a
time, so two candidates are measured minutes apart and a noisy machine biases their ratio;
it has no paired ratio with an interval. We borrow its habits (warm-up, many blocks,
medians, a stated thread count) and interleave.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .utils import check_int

LEVEL = 0.95


def median_interval(samples: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """A distribution-free interval for the median: order statistics whose binomial coverage is at least ``level``.

    With fewer than 6 samples no pair reaches 95%; the full range is returned.
    """
    values = sorted(samples)
    n = len(values)
    if n == 0:
        raise ValueError("no samples")
    cdf = [sum(math.comb(n, i) for i in range(j + 1)) / 2**n for j in range(n + 1)]
    for j in range(n // 2, 0, -1):  # narrowest symmetric pair first
        k = n + 1 - j  # 1-based order statistics x_(j), x_(k)
        if cdf[k - 1] - cdf[j - 1] >= level:
            return values[j - 1], values[k - 1]
    return values[0], values[-1]


@dataclass(frozen=True)
class _Samples:
    """One sample per round, summarised by the median and its distribution-free 95% interval."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return median_interval(self.samples)[0]

    @property
    def high(self) -> float:
        return median_interval(self.samples)[1]


@dataclass(frozen=True)
class Timing(_Samples):
    """Seconds per call, one sample per round: the median and its 95% interval."""

    def per(self, count: int) -> Timing:
        """The same timing divided by ``count`` (e.g. per image of a pass)."""
        return Timing(tuple(s / count for s in self.samples))

    def agrees_with(self, other: Timing) -> bool:
        """Do the two 95% intervals overlap? (The same thing measured twice should.)"""
        return self.low <= other.high and other.low <= self.high

    def __str__(self) -> str:
        return f"{format_seconds(self.median)} ({format_seconds(self.low)}-{format_seconds(self.high)})"


@dataclass(frozen=True)
class Ratio(_Samples):
    """How many times faster ``candidate`` is than ``baseline``: median of per-round ratios, 95% interval."""

    @property
    def measurable(self) -> bool:
        """Does the interval exclude 1.0 (a real speedup or slowdown)?"""
        return self.low > 1.0 or self.high < 1.0

    def verdict(self) -> str:
        """"1.85x faster (95% CI 1.71-1.98x)", "1.30x slower (95% CI 1.10-1.50x)" or "no measurable difference"."""
        if self.low > 1.0:
            return f"{self.median:.2f}x faster (95% CI {self.low:.2f}-{self.high:.2f}x)"
        if self.high < 1.0:  # say it as a slowdown, interval included
            low, high = 1 / self.high, 1 / self.low
            return f"{1 / self.median:.2f}x slower (95% CI {low:.2f}-{high:.2f}x)"
        return f"no measurable difference (95% CI {self.low:.2f}-{self.high:.2f}x)"

    def __str__(self) -> str:
        return f"{self.median:.2f}x ({self.low:.2f}-{self.high:.2f})"


def speedup(baseline: Timing, candidate: Timing) -> Ratio:
    """Per-round ratios baseline / candidate of two timings from the same interleaved run."""
    if len(baseline.samples) != len(candidate.samples):
        raise ValueError("speedup needs two timings from the same interleaved run (same number of rounds)")
    return Ratio(tuple(b / c for b, c in zip(baseline.samples, candidate.samples)))


def format_seconds(seconds: float) -> str:
    """A time with a sensible unit: 12.3 µs, 4.56 ms, 1.23 s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def time_interleaved(candidates: dict[str, Callable[[], object]], repeats: int = 21, warmup: int = 3,
                     inner: int = 1, device: torch.device | str | None = None) -> dict[str, Timing]:
    """Time each zero-argument callable once per round for ``repeats`` rounds, after ``warmup`` calls each.

    ``inner`` calls are made per sample (for calls too short to time one by one); on CUDA the
    device is synchronised before the clock is read, so queued work is counted.
    """
    check_int("repeats", repeats)
    check_int("inner", inner)
    check_int("warmup", warmup, 0)
    if not candidates:
        raise ValueError("nothing to time")
    cuda = device is not None and torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    sync()
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            fn = candidates[name]
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            sync()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: Timing(tuple(values)) for name, values in samples.items()}


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
