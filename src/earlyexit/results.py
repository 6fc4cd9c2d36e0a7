"""Every number true on any machine: key results glued into the prose, recorded, and re-checked.

A chapter keeps each key result with :meth:`ChapterResults.keep`, which

* glues its formatted text under a key, so the prose shows it with ``{glue:text}`key```
  (never a typed copy);
* records the value, with a tolerance and the reason for it, in
  ``notebooks/results/<chapter>.json`` when the notebooks are executed (``make notebooks``
  sets ``EARLYEXIT_RESULTS=record``);
* under nbval (``EARLYEXIT_RESULTS=check``), compares the freshly computed value with the
  recorded one and fails the cell if it is outside the tolerance. A reader's own run
  (the default, ``warn``) only warns; ``off`` skips the comparison.

Tolerances come from measured spreads, with the reason written next to each value:
:meth:`~ChapterResults.keep_seeds` for a mean over seeds (:func:`earlyexit.stats.seed_tolerance`),
:meth:`~ChapterResults.keep_ratio` for a speed ratio (:func:`earlyexit.timing.ratio_factor`,
and a measured speedup must not turn into a measured slowdown).
Whether the notebooks' outputs come from the current code is :mod:`earlyexit.freshness`'s job.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .stats import mean_and_sd, seed_tolerance
from .timing import Ratio, ratio_factor
from .utils import atomic_write, repo_root

MODES = ("record", "check", "warn", "off")
SEEDS_WHY = "4 x the spread over the seeds"


@dataclass(frozen=True)
class Recorded:
    """One key result: its value, how far a re-run may move it, and why that far.

    ``tolerance`` is an absolute difference, or, when ``factor`` is true, a factor >= 1 the
    value may be multiplied or divided by (timing ratios: another CPU scales them). A speed
    ratio also keeps its 95% interval (``low``, ``high``): one recorded as a measured speedup
    must not come back as a measured slowdown, whatever the factor allows, and vice versa.
    """

    value: float
    tolerance: float
    why: str
    factor: bool = False
    low: float | None = None
    high: float | None = None

    def problem(self, value: float, low: float | None = None, high: float | None = None) -> str | None:
        """Why a re-computed ``value`` (with its interval, for a ratio) is not accepted, or None."""
        if not math.isfinite(value):
            return "not a finite number"
        if self.factor:
            if not (value > 0 and self.value / self.tolerance <= value <= self.value * self.tolerance):
                return f"allowed {self.value / self.tolerance:.3g} to {self.value * self.tolerance:.3g} " \
                       f"(x/÷ {self.tolerance:.2f})"
        elif abs(value - self.value) > self.tolerance:
            return f"allowed ±{self.tolerance:.3g}"
        if None not in (self.low, self.high, low, high):
            was, now = _direction(self.low, self.high), _direction(low, high)
            if was * now == -1:
                said = {1: "faster", -1: "slower"}
                return f"recorded as measurably {said[was]} (95% CI {self.low:.3g}-{self.high:.3g}), " \
                       f"now measurably {said[now]} (95% CI {low:.3g}-{high:.3g})"
        return None


def _direction(low: float, high: float) -> int:
    return 1 if low > 1.0 else -1 if high < 1.0 else 0


Measured = float | Sequence[float]  # a value, or a ratio's (median, low, high)


def compare(recorded: dict[str, Recorded], current: dict[str, Measured]) -> list[str]:
    """Every way ``current`` disagrees with ``recorded``: a missing key, a value outside its
    tolerance, or a speed ratio whose measured direction flipped."""
    problems = []
    for key, measured in current.items():
        if key not in recorded:
            problems.append(f"{key}: no recorded value (run `make notebooks`)")
            continue
        value, low, high = (measured, None, None) if isinstance(measured, (int, float)) else tuple(measured)
        expected = recorded[key]
        problem = expected.problem(float(value), low, high)
        if problem:
            problems.append(f"{key}: {value:.6g} now, {expected.value:.6g} recorded; {problem} ({expected.why})")
    return problems


class ResultOutOfTolerance(AssertionError):
    """A re-computed key result moved further from its recorded value than its tolerance allows."""


def results_dir() -> Path:
    return repo_root() / "notebooks" / "results"


def load(chapter: str, folder: Path | None = None) -> dict[str, Recorded]:
    """The recorded results of a chapter (empty if there are none)."""
    path = (folder or results_dir()) / f"{chapter}.json"
    if not path.is_file():
        return {}
    payload = json.loads(path.read_text())
    return {key: Recorded(**entry) for key, entry in payload["results"].items()}


def _glue(key: str, shown: object) -> None:
    try:
        from myst_nb import glue  # installed with the book; a bare package install may lack it
    except ImportError:  # pragma: no cover - e.g. on Colab without the book's requirements
        return
    glue(key, shown, display=False)


class ChapterResults:
    """The key results of one chapter. Create it in the chapter's first cell; call :meth:`keep` for each result."""

    def __init__(self, chapter: str, mode: str | None = None, folder: Path | None = None) -> None:
        self.chapter = chapter
        self.mode = mode or os.environ.get("EARLYEXIT_RESULTS", "warn")
        if self.mode not in MODES:
            raise ValueError(f"EARLYEXIT_RESULTS must be one of {MODES}, got {self.mode!r}")
        self.path = (folder or results_dir()) / f"{chapter}.json"
        self.recorded = {} if self.mode == "record" else load(chapter, folder)
        self.kept: dict[str, Recorded] = {}
        self.started = time.perf_counter()
        if self.mode == "record":  # the chapter's whole run time, exercises included
            atexit.register(self._write_at_exit)
        if self.mode in ("check", "warn") and not self.recorded:
            warnings.warn(f"no recorded results in {self.path}: nothing to compare with", stacklevel=2)

    def keep(self, key: str, value: float, tolerance: float, why: str, text: str | None = None,
             factor: bool = False, interval: tuple[float, float] | None = None) -> None:
        """Glue ``text`` (default: the value) under ``key``; record or check ``value`` within ``tolerance``.

        With ``factor``, ``tolerance`` is a factor >= 1 rather than a difference (see :class:`Recorded`);
        ``interval`` is a ratio's 95% interval, checked for a flipped direction.
        """
        value = float(value.detach()) if hasattr(value, "detach") else float(value)
        lowest = 1 if factor else 0
        if isinstance(tolerance, bool) or not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance)
                                               and tolerance >= lowest):
            raise ValueError(f"tolerance must be a finite number >= {lowest}, got {tolerance!r}")
        if not math.isfinite(value):
            raise ValueError(f"{key}: a kept value must be a finite number, got {value!r}")
        if factor and not value > 0:
            raise ValueError(f"a value checked within a factor must be > 0, got {value!r}")
        if not isinstance(why, str) or not why.strip():
            raise ValueError(f"{key}: a tolerance needs its reason (why), got {why!r}")
        if key in self.kept:
            raise ValueError(f"{key!r} is kept twice in {self.chapter}")
        _glue(key, text if text is not None else f"{value:.4g}")
        low, high = interval if interval is not None else (None, None)
        self.kept[key] = Recorded(value, float(tolerance), why, factor, low, high)
        if self.mode == "record":
            self._write()
        elif self.mode in ("check", "warn") and self.recorded:
            problems = compare(self.recorded, {key: value if interval is None else (value, low, high)})
            if problems and self.mode == "check":
                raise ResultOutOfTolerance(f"{self.chapter}: " + "; ".join(problems))
            for problem in problems:
                print(f"note: {problem}", file=sys.stderr)

    def keep_ratio(self, key: str, ratio: Ratio, text: str | None = None,
                   why: str = "timing: this run's interval, widened, and at least the change between CPUs") -> None:
        """Keep a measured speed ratio, glued as its verdict, checked within :func:`~earlyexit.timing.ratio_factor`
        and for its direction."""
        self.keep(key, ratio.median, ratio_factor(ratio.low, ratio.high), why,
                  text=ratio.verdict() if text is None else text, factor=True, interval=(ratio.low, ratio.high))

    def keep_seeds(self, key: str, values: Sequence[float], floor: float, text: str | None = None,
                   scale: float = 100.0, digits: int = 2) -> None:
        """Keep the mean of a result over seeds, glued as "mean ± sd" (``scale``d, by default to percent),
        checked within :func:`~earlyexit.stats.seed_tolerance` (at least ``floor``)."""
        mean, sd = mean_and_sd(values)
        shown = f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}" if text is None else text
        self.keep(key, mean, seed_tolerance(values, floor=floor), SEEDS_WHY, text=shown)

    def glue_table(self, key: str, shown: object) -> object:
        """Glue a table (or any displayable object) under ``key`` for other pages; return it for display."""
        _glue(key, shown)
        return shown

    def elapsed(self) -> float:
        """Seconds since this chapter's results were opened (its first cell)."""
        return time.perf_counter() - self.started

    def book_seconds(self) -> float:
        """How long the whole book took to execute: every other chapter's recorded time, and this one's so far."""
        total = self.elapsed()
        for path in sorted(self.path.parent.glob("*.json")):
            recorded = json.loads(path.read_text())
            if path.stem != self.chapter:
                total += recorded.get("seconds", 0.0)
        return total

    def _write_at_exit(self) -> None:
        if self.kept:
            with contextlib.suppress(OSError):  # e.g. a temporary folder already removed
                self._write()

    def _write(self) -> None:
        payload = {"chapter": self.chapter, "seconds": round(self.elapsed(), 1),
                   "results": {k: {f: v for f, v in asdict(r).items() if v is not None}
                               for k, r in self.kept.items()}}
        atomic_write(self.path, json.dumps(payload, indent=1, sort_keys=True) + "\n")
