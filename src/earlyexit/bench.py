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
