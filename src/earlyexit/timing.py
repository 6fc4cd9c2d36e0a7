"""The book's timing protocol: warm up, interleave, repeat; a median with a 95% interval.

* **Warm-up**: every candidate runs ``warmup`` times before any clock is read (first calls
  allocate memory, pick kernels, fill caches).
* **Interleaving**: candidates run round-robin (A, B, C, then B, C, A, ...: the order rotates
  every round), so a slow spell of a shared machine hits all of them alike.
* **Repeats, blocks and intervals**: each candidate gets one sample per round, and the
  rounds run in blocks (:data:`BLOCKS`, three by default). A speedup is built from per-round
  ratios (the two calls of one round ran seconds apart, which cancels most of the machine's
  drift); each block's median ratio is one repetition, and the interval is a t interval over
  the blocks (on a log scale). A machine's slow spells last seconds to minutes, so one run's
  rounds are not independent: an interval from the rounds alone comes out narrower than the
  change between two runs of a chapter. The blocks' spread is part of the interval.
* **Verdicts** (:class:`~earlyexit.stats.Interval`): a speedup is called one only when its
  interval excludes 1.0; otherwise "no measurable difference". A target (say 2x) is met only
  when the whole interval lies above it (:meth:`~earlyexit.stats.Interval.against`).
* **Another machine**: a re-run elsewhere checks each recorded ratio within a factor
  (:func:`ratio_factor`), and fails when a measured speedup turns into a measured slowdown.

Why not ``torch.utils.benchmark``? Its ``Timer.blocked_autorange`` times one statement at a
time, so two candidates are measured minutes apart and a noisy machine biases their ratio;
it has no paired ratio with an interval. We borrow its habits (warm-up, many blocks,
medians, a stated thread count) and interleave.
"""

from __future__ import annotations

import contextlib
import gc
import math
import numbers
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from .allocator import allocator_policy
from .checks import check_finite, check_int, check_number, check_type
from .stats import LEVEL, Interval, t_interval

#: How many blocks of rounds a timing runs in. A t interval over three blocks' medians or
#: more spans the variation between blocks measured apart, not only the noise inside one.
BLOCKS = 3


def median_interval(samples: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """A distribution-free interval for the median: order statistics whose binomial coverage is at least ``level``.

    With fewer than 6 samples no pair reaches 95%; the full range is returned.
    """
    level = check_number("level", level, 0.0, 1.0, open_low=True, open_high=True)
    values = sorted(check_finite("samples", samples, ndim=1).tolist())
    n = len(values)
    if n == 0:
        raise ValueError("median_interval needs at least one sample")
    cdf = [sum(math.comb(n, i) for i in range(j + 1)) / 2**n for j in range(n + 1)]
    for j in range(n // 2, 0, -1):  # narrowest symmetric pair first
        k = n + 1 - j  # 1-based order statistics x_(j), x_(k)
        if cdf[k - 1] - cdf[j - 1] >= level:
            return values[j - 1], values[k - 1]
    return values[0], values[-1]


def _split(samples: Sequence[float], blocks: int) -> list[list[float]]:
    """Consecutive rounds in ``blocks`` blocks of (nearly) equal size."""
    n = len(samples)
    edges = [round(i * n / blocks) for i in range(blocks + 1)]
    return [list(samples[a:b]) for a, b in zip(edges, edges[1:])]


def _check_blocks(blocks: object, rounds: int) -> int:
    blocks = check_int("blocks", blocks)
    if blocks > rounds:
        raise ValueError(f"{blocks} blocks need at least as many rounds, got {rounds}")
    return blocks


@dataclass(frozen=True)
class Timing:
    """Seconds per call, one sample per round, the rounds in ``blocks`` consecutive blocks.

    Its interval (``low``, ``high``) is, with three blocks or more, a t interval over
    the blocks' medians (on a log scale): it spans the variation between blocks measured
    apart, not only the noise within one. With fewer, it is the distribution-free interval
    of the median of this run's samples (:func:`median_interval`).
    """

    samples: tuple[float, ...]
    blocks: int = 1

    def __post_init__(self) -> None:
        values = check_finite("samples", self.samples, ndim=1)
        if len(values) == 0 or not bool((values > 0).all()):
            raise ValueError(f"Timing needs at least one sample, every one > 0, got {self.samples!r}")
        _check_blocks(self.blocks, len(values))

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def block_medians(self) -> list[float]:
        return [statistics.median(block) for block in _split(self.samples, self.blocks)]

    @property
    def interval(self) -> Interval:
        return _median_of_blocks(self.samples, self.blocks)

    @property
    def low(self) -> float:
        return self.interval.low

    @property
    def high(self) -> float:
        return self.interval.high

    def per(self, count: int) -> Timing:
        """The same timing divided by ``count`` (e.g. per image of a pass)."""
        count = check_int("count", count)
        return Timing(tuple(s / count for s in self.samples), self.blocks)

    def agrees_with(self, other: Timing) -> bool:
        """Do the two 95% intervals overlap? (The same thing measured twice should.)"""
        return self.low <= other.high and other.low <= self.high

    def __str__(self) -> str:
        return f"{format_seconds(self.median)} ({format_seconds(self.low)}-{format_seconds(self.high)})"


def _median_of_blocks(samples: Sequence[float], blocks: int) -> Interval:
    """Positive samples in consecutive blocks: with three blocks or more, the t interval of the
    blocks' medians on a log scale; otherwise the median with its order-statistics interval."""
    if blocks >= 3:
        return t_interval([statistics.median(b) for b in _split(samples, blocks)], null=1.0)
    low, high = median_interval(samples)
    return Interval(statistics.median(samples), low, high, 1.0)


def speedup(baseline: Timing, candidate: Timing) -> Interval:
    """How many times faster ``candidate`` is than ``baseline``, from two timings of the same
    interleaved run: the per-round ratios baseline / candidate (the two calls of one round ran
    seconds apart, which cancels most of the machine's drift), summarised by block as
    :class:`Timing` is. With three blocks or more the interval spans the variation between
    blocks; with one, it covers this run's noise only."""
    if not (isinstance(baseline, Timing) and isinstance(candidate, Timing)):
        raise TypeError(f"speedup needs two Timing objects, got {type(baseline).__name__} "
                        f"and {type(candidate).__name__}")
    if len(baseline.samples) != len(candidate.samples) or baseline.blocks != candidate.blocks:
        raise ValueError("speedup needs two timings from the same interleaved run (same rounds and blocks)")
    ratios = [b / c for b, c in zip(baseline.samples, candidate.samples)]
    return _median_of_blocks(ratios, baseline.blocks)


def speedup_over_inputs(baseline: Sequence[Timing], candidate: Sequence[Timing]) -> Interval:
    """How many times faster ``candidate`` is than ``baseline`` over several inputs (prompts, say),
    each input timed on its own in the same interleaved run, paired by input: each input's
    :func:`speedup`, then their geometric mean with a t interval over the inputs (at least
    three). The interval spans how the speedup varies from one input to the next, so it says
    what other inputs of the kind may see, not only how precisely these were timed."""
    baseline, candidate = list(baseline), list(candidate)
    if len(baseline) != len(candidate) or len(baseline) < 3:
        raise ValueError(f"speedup_over_inputs needs the same inputs on both sides, at least three; "
                         f"got {len(baseline)} and {len(candidate)}")
    return t_interval([speedup(b, c).estimate for b, c in zip(baseline, candidate)], null=1.0)


def format_seconds(seconds: float) -> str:
    """A time with a sensible unit: 12.3 µs, 4.56 ms, 1.23 s.

    The unit is chosen for the value as shown (three significant digits): 0.99999 s shows as
    "1 s", not "1e+03 ms".
    """
    seconds = check_number("seconds", seconds)
    shown = float(f"{seconds:.3g}")
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if shown >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


# Timing ratios of the same code and weights measured on different CPUs: Chapter 2's loop
# against the batch was 6.1x on the 2-core Xeon that recorded an earlier run of the book and 4.1x on CI's
# 2-core machine with AVX-512 (a factor 1.49); Chapter 8's best early exit at batch sizes 1
# and 256, recorded as 1.65x and 2.92x, measured 1.46-1.61x and 2.37-2.69x on a reviewer's
# 2-core machine with AVX-512 and AMX (factors up to 1.23). On one machine, an earlier
# Chapter 7 timed one configuration four times at 17.0 to 29.5 µs per image (a factor 1.74).
# The largest between CPUs times the largest run to run, 1.49 x 1.74 = 2.6: rounded, 2.5.
BETWEEN_CPUS = 2.5


def ratio_factor(low: float, high: float, widen: float = 3.0, floor: float = BETWEEN_CPUS) -> float:
    """How far (a factor) a measured speed ratio may move on another machine.

    Its 95% interval's half-width on a log scale (this machine's own noise), widened
    ``widen`` times, and at least ``floor``: another CPU has other caches, vector units and
    per-call overheads, which scale a ratio rather than shift it.
    """
    ends = (low, high)
    if not all(isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) for x in ends) \
            or not 0 < low <= high:
        raise ValueError(f"low and high must be finite numbers with 0 < low <= high, got {low!r}, {high!r}")
    widen, floor = check_number("widen", widen, open_low=True), check_number("floor", floor, 1.0)
    return max((high / low) ** (widen / 2), floor)


def time_interleaved(candidates: dict[str, Callable[[], object]], repeats: int = 21, warmup: int = 3,
                     inner: int = 1, device: torch.device | str | None = None,
                     blocks: int = BLOCKS) -> dict[str, Timing]:
    """Time each zero-argument callable once per round for ``repeats`` rounds, after ``warmup`` calls each.

    The rounds run in ``blocks`` blocks; before each block after the first, the garbage
    collector runs and every candidate is called once more, unclocked, so that each block
    starts as the first did. ``inner`` calls are made per sample (for calls too short to time
    one by one); on CUDA the device is synchronised before the clock is read, so queued work is
    counted.
    """
    check_int("repeats", repeats)
    check_int("inner", inner)
    check_int("warmup", warmup, 0)
    check_type("candidates", candidates, dict, "a dict of name -> zero-argument callable")
    if not candidates:
        raise ValueError("nothing to time")
    for name, fn in candidates.items():
        if not callable(fn):
            raise TypeError(f"candidates[{name!r}] must be a callable taking no arguments, got {type(fn).__name__}")
    blocks = _check_blocks(blocks, repeats)
    cuda = device is not None and torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    sync()
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    starts = {round(i * repeats / blocks) for i in range(1, blocks)}
    for round_ in range(repeats):
        if round_ in starts:
            gc.collect()
            for fn in candidates.values():
                fn()
            sync()
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            fn = candidates[name]
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            sync()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: Timing(tuple(values), blocks) for name, values in samples.items()}


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(count)``, and restore the previous count after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(check_int("count", count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def threaded(fn: Callable[[], object], count: int) -> Callable[[], object]:
    """``fn`` run with ``count`` torch threads (the previous count restored after each call):
    to race one thread against two in the same interleaved run."""
    check_int("count", count)
    if not callable(fn):
        raise TypeError(f"fn must be a callable taking no arguments, got {type(fn).__name__}")

    def run() -> object:
        with torch_threads(count):
            return fn()
    return run


def machine_info() -> dict[str, str]:
    """CPU model, threads, torch version, the allocator's policy (:mod:`earlyexit.allocator`) and
    accelerator: to print beside every timing."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "torch threads": str(torch.get_num_threads()), "torch": torch.__version__,
            "python": platform.python_version(), "allocator": allocator_policy(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}
