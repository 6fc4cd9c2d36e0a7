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
and a measured speedup must not turn into a measured slowdown), and
:meth:`~ChapterResults.keep_target` for a ratio's verdict against a target (on the CPU that
recorded it, "met" must not come back "missed", nor the other way round).
Every timed ratio is also written to the chapter's runs file (``make repeats`` and ``make
notebooks``), and glued with the verdict of every run on this CPU with this code
(:mod:`earlyexit.runs`): a verdict is stated only where all the runs agree and the next is
predicted to, and
:meth:`~ChapterResults.runs_table` shows every repetition.
Whether the notebooks' outputs come from the current code is :mod:`earlyexit.freshness`'s job.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .checks import check_bool, check_int, check_number, check_type, damaged_file, read_json_file
from .report import Table, table
from .runs import (
    Run,
    across_runs,
    check_value,
    code_identity,
    read_runs,
    run_words,
    target_across,
    verdict_across,
    write_runs,
)
from .stats import Interval, mean_and_sd, seed_tolerance
from .timing import machine_info, ratio_factor
from .utils import atomic_write, repo_root

# record: write the results (and add this run to the runs file); repeat: only add this run;
# check: fail on a result out of tolerance; warn: print it; off: compare nothing.
MODES = ("record", "repeat", "check", "warn", "off")
SEEDS_WHY = "4 x the spread over the seeds"
DIFFERENCE_WHY = "a difference: twice its interval's width"
RATIO_WHY = ("timing: the runs' intervals on this CPU and the next run's predicted range, widened, "
             "and at least the change between CPUs")
TARGET_WHY = RATIO_WHY + "; on the CPU that recorded it, the verdict must not cross its target"


@dataclass(frozen=True)
class Recorded:
    """One key result: its value, how far a re-run may move it, and why that far.

    ``tolerance`` is an absolute difference, or, when ``factor`` is true, a factor >= 1 the
    value may be multiplied or divided by (timing ratios: another CPU scales them). A speed
    ratio also keeps its 95% interval (``low``, ``high``): one recorded as a measured speedup
    must not come back as a measured slowdown, whatever the factor allows, and vice versa.

    A ratio judged against a ``target`` also keeps the ``cpu`` that measured it. Re-checked on
    that CPU, a verdict that crosses the target (recorded "met", now "missed", or the other way
    round) fails; "inside the noise" on either side is allowed. On another CPU the target is not
    checked: another CPU is allowed another verdict, as long as a speedup stays one.
    """

    value: float
    tolerance: float
    why: str
    factor: bool = False
    low: float | None = None
    high: float | None = None
    target: float | None = None
    cpu: str | None = None

    def __post_init__(self) -> None:
        # A NaN or infinite value or tolerance would let every re-computed value pass: refused here,
        # whether the record is being kept or read back from a file.
        check_bool("factor", self.factor)
        check_number("value", self.value, -math.inf)
        check_number("tolerance", self.tolerance, 1.0 if self.factor else 0.0)
        if self.factor and not self.value > 0:
            raise ValueError(f"a value checked within a factor must be > 0, got {self.value!r}")
        if not isinstance(self.why, str) or not self.why.strip():
            raise ValueError(f"a tolerance needs its reason (why), got {self.why!r}")
        if (self.low is None) != (self.high is None):
            raise ValueError(f"an interval needs both ends, got low={self.low!r} and high={self.high!r}")
        if self.low is not None:
            low = check_number("low", self.low, 0.0 if self.factor else -math.inf, open_low=self.factor)
            if low > check_number("high", self.high, -math.inf):
                raise ValueError(f"an interval needs low <= high, got {self.low!r} and {self.high!r}")
        if self.target is not None:
            check_number("target", self.target, open_low=True)
            if self.low is None or not self.factor or not isinstance(self.cpu, str):
                raise ValueError("a target verdict needs a ratio's interval and the CPU that measured it")

    def problem(self, value: float, low: float | None = None, high: float | None = None,
                cpu: str | None = None) -> str | None:
        """Why a re-computed ``value`` (with its interval, for a ratio, measured on ``cpu``) is not
        accepted, or None."""
        if not math.isfinite(value):
            return "not a finite number"
        if any(end is not None and not math.isfinite(end) for end in (low, high)):
            return "its interval is not finite"
        if self.factor:
            if not (value > 0 and self.value / self.tolerance <= value <= self.value * self.tolerance):
                return f"allowed {self.value / self.tolerance:.3g} to {self.value * self.tolerance:.3g} " \
                       f"(x/÷ {self.tolerance:.2f})"
        elif abs(value - self.value) > self.tolerance:
            return f"allowed ±{self.tolerance:.3g}"
        if None not in (self.low, self.high, low, high):
            was, now = Interval(self.value, self.low, self.high, 1.0), Interval(value, low, high, 1.0)
            if was.direction * now.direction == -1:
                said = {1: "faster", -1: "slower"}
                return f"recorded as measurably {said[was.direction]} (95% CI {self.low:.3g}-{self.high:.3g}), " \
                       f"now measurably {said[now.direction]} (95% CI {low:.3g}-{high:.3g})"
            if self.target is not None and cpu == self.cpu:
                if {was.against(self.target), now.against(self.target)} == {"met", "missed"}:
                    return f"the {self.target:g}x target was {was.against(self.target)} " \
                           f"(95% CI {self.low:.3g}-{self.high:.3g}) and is now {now.against(self.target)} " \
                           f"(95% CI {low:.3g}-{high:.3g}) on the same CPU"
        return None


Measured = float | Sequence[float]  # a value, or a ratio's (median, low, high)


def compare(recorded: dict[str, Recorded], current: dict[str, Measured], cpu: str | None = None) -> list[str]:
    """Every way ``current`` (measured on ``cpu``, by default this machine's) disagrees with
    ``recorded``: a missing key, a value outside its tolerance, a speed ratio whose measured
    direction flipped, or a target verdict that crossed its target on the CPU that recorded it."""
    cpu = machine_info()["cpu"] if cpu is None else cpu
    problems = []
    for key, measured in current.items():
        if key not in recorded:
            problems.append(f"{key}: no recorded value (run `make notebooks`)")
            continue
        value, low, high = _measured(key, measured)
        expected = recorded[key]
        problem = expected.problem(float(value), low, high, cpu)
        if problem:
            problems.append(f"{key}: {value:.6g} now, {expected.value:.6g} recorded; {problem} ({expected.why})")
    return problems


def _measured(key: str, measured: object) -> tuple[float, float | None, float | None]:
    """A measured value as (value, low, high); a TypeError naming the key unless it is a number or a triple."""
    if isinstance(measured, numbers.Real) and not isinstance(measured, bool):
        return float(measured), None, None
    parts = tuple(measured) if isinstance(measured, (tuple, list)) else ()
    if len(parts) != 3 or not all(isinstance(p, numbers.Real) and not isinstance(p, bool) for p in parts):
        raise TypeError(f"current[{key!r}] must be a number or a (median, low, high) triple of numbers, "
                        f"got {measured!r}")
    return tuple(float(p) for p in parts)


class ResultOutOfTolerance(AssertionError):
    """A re-computed key result moved further from its recorded value than its tolerance allows."""


def results_dir() -> Path:
    return repo_root() / "notebooks" / "results"


def runs_path(chapter: str, folder: Path | None = None) -> Path:
    """Where a chapter's runs are recorded (:mod:`earlyexit.runs`)."""
    return (folder or results_dir()) / "runs" / f"{_check_chapter(chapter)}.json"


RESULTS_FILE = "results file"
REQUIRED, OPTIONAL = ("value", "tolerance", "why"), ("factor", "low", "high", "target", "cpu")


def read_results(path: Path) -> dict:
    """A chapter's results file, checked: a ValueError names the file and what is wrong when it is
    damaged (empty, truncated, not JSON) or of another structure (no "results" object, an entry
    without its value, tolerance or why, a value that is not a finite number, a negative time)."""
    payload = read_json_file(path, RESULTS_FILE)
    entries = payload.get("results")
    if not isinstance(entries, dict):
        raise damaged_file(path, RESULTS_FILE, 'needs a "results" object (one entry per key result)')
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not set(REQUIRED) <= entry.keys() \
                or not entry.keys() <= set(REQUIRED + OPTIONAL):
            raise damaged_file(path, RESULTS_FILE, f"entry {key!r} needs {', '.join(REQUIRED)} "
                                                   f"(and may have {', '.join(OPTIONAL)}), got {entry!r}")
        try:
            Recorded(**entry)
        except (TypeError, ValueError) as error:
            raise damaged_file(path, RESULTS_FILE, f"entry {key!r}: {error}") from None
    try:
        check_number("seconds", payload.get("seconds", 0.0))
    except ValueError as error:
        raise damaged_file(path, RESULTS_FILE, str(error)) from None
    return payload


def load(chapter: str, folder: Path | None = None) -> dict[str, Recorded]:
    """The recorded results of a chapter (empty if there are none); a damaged file is refused (:func:`read_results`)."""
    path = (folder or results_dir()) / f"{_check_chapter(chapter)}.json"
    if not path.is_file():
        return {}
    return {key: Recorded(**entry) for key, entry in read_results(path)["results"].items()}


def _check_chapter(chapter: object) -> str:
    """A chapter's name: a file name in the results folder (no path separators)."""
    if not isinstance(chapter, str) or not chapter.strip() or Path(chapter).name != chapter:
        raise ValueError(f"chapter must be a chapter's name such as '05_thresholds', got {chapter!r}")
    return chapter


def _glue(key: str, shown: object) -> None:
    try:
        from myst_nb import glue  # installed with the book; a bare package install may lack it
    except ImportError:  # pragma: no cover - e.g. on Colab without the book's requirements
        return
    glue(key, shown, display=False)


class ChapterResults:
    """The key results of one chapter. Create it in the chapter's first cell; call :meth:`keep` for each result."""

    def __init__(self, chapter: str, mode: str | None = None, folder: Path | None = None) -> None:
        self.chapter = _check_chapter(chapter)
        self.mode = mode or os.environ.get("EARLYEXIT_RESULTS", "warn")
        if self.mode not in MODES:
            raise ValueError(f"EARLYEXIT_RESULTS must be one of {MODES}, got {self.mode!r}")
        self.path = (folder or results_dir()) / f"{chapter}.json"
        self.recorded = {} if self.mode == "record" else load(chapter, folder)
        self.kept: dict[str, Recorded] = {}
        self.started = time.perf_counter()
        # This run, and the earlier runs on this CPU with this code: the runs a verdict is judged over.
        self.runs_path = runs_path(chapter, folder)
        self.run = Run(machine_info()["cpu"], code_identity(chapter, self.path.parent.parent))
        # Runs of other code are stale: a run that records drops them; runs on other CPUs stay.
        self.others = [run for run in read_runs(self.runs_path) if run.code == self.run.code]
        self.earlier = [run for run in self.others if run.cpu == self.run.cpu]
        self._words: dict[str, tuple[str, str]] = {}
        if self.mode == "record":  # the chapter's whole run time, exercises included
            atexit.register(self._write_at_exit)
        if self.mode in ("check", "warn", "repeat") and not self.recorded:
            warnings.warn(f"no recorded results in {self.path}: nothing to compare with", stacklevel=2)

    def keep(self, key: str, value: float, tolerance: float, why: str, text: str | None = None,
             factor: bool = False, interval: tuple[float, float] | None = None,
             target: float | None = None) -> None:
        """Glue ``text`` (default: the value) under ``key``; record or check ``value`` within ``tolerance``.

        With ``factor``, ``tolerance`` is a factor >= 1 rather than a difference (see :class:`Recorded`);
        ``interval`` is a ratio's 95% interval, checked for a flipped direction; with ``target``, its
        verdict against the target is checked too, on the CPU that recorded it (see :class:`Recorded`).
        """
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        if interval is not None and (not isinstance(interval, (tuple, list)) or len(interval) != 2):
            raise ValueError(f"{key}: interval must be a (low, high) pair, got {interval!r}")
        low, high = interval if interval is not None else (None, None)
        try:
            kept = Recorded(check_number("value", value, -math.inf), check_number("tolerance", tolerance, -math.inf),
                            why, factor, low, high, target, None if target is None else machine_info()["cpu"])
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
        if key in self.kept:
            raise ValueError(f"{key!r} is kept twice in {self.chapter}")
        value = kept.value
        _glue(key, text if text is not None else f"{value:.4g}")
        self.kept[key] = kept
        if self.mode == "record":
            self._write()
        elif self.mode in ("check", "warn", "repeat") and self.recorded:
            problems = compare(self.recorded, {key: value if interval is None else (value, low, high)})
            if problems and self.mode == "check":
                raise ResultOutOfTolerance(f"{self.chapter}: " + "; ".join(problems))
            for problem in problems:
                print(f"note: {problem}", file=sys.stderr)

    def keep_ratio(self, key: str, ratio: Interval, text: str | None = None, why: str = RATIO_WHY,
                   above: str = "faster", below: str = "slower", direction_checked: bool = True,
                   at_least: float = 1.0) -> Interval:
        """Keep a measured ratio, checked within :func:`~earlyexit.timing.ratio_factor` (or the factor
        ``at_least``, if larger) and, unless ``direction_checked`` is false, for its direction;
        glued as its verdict across this CPU's runs (:func:`earlyexit.runs.verdict_across`, in
        ``above`` and ``below`` words), unless ``text`` is given. Returns the interval across the
        runs: words chosen from it hold in every run."""
        self._add_run(key, ratio, "keep_ratio")
        runs = self.runs_of(key)
        across = across_runs(runs)
        self._words[key] = (above, below)
        factor = max(ratio_factor(across.low, across.high), check_number("at_least", at_least, 1.0))
        self.keep(key, ratio.estimate, factor, why,
                  text=verdict_across(ratio, runs, above, below) if text is None else text, factor=True,
                  interval=self._checked_interval(across, ratio) if direction_checked else None)
        return across

    def keep_target(self, key: str, ratio: Interval, target: float) -> str:
        """Keep whether a speed ratio meets ``target`` in every run on this CPU (and in the next run's
        predicted range, :func:`earlyexit.runs.across_runs`): glued as "met in all
        N runs", "missed in all N runs" or "inside the noise across N runs"
        (:func:`earlyexit.runs.target_across`), and returned as "met", "missed" or "inside the
        noise". A re-check on the CPU that recorded it fails when this run's verdict crosses the
        target; on any CPU, when the speedup turns into a slowdown."""
        target = check_number("target", target, open_low=True)
        self._add_run(key, ratio, "keep_target", target)
        runs = self.runs_of(key)
        across = across_runs(runs)
        self.keep(key, ratio.estimate, ratio_factor(across.low, across.high), TARGET_WHY,
                  text=target_across(runs, target), factor=True,
                  interval=self._checked_interval(across, ratio), target=target)
        return across.against(target)

    def _add_run(self, key: str, ratio: Interval, method: str, target: float | None = None) -> None:
        check_type("ratio", ratio, Interval, "an Interval (earlyexit.timing.speedup)")
        if not ratio.is_ratio:
            raise ValueError(f"{key}: {method} needs a ratio (an Interval with null 1), got a difference")
        if key in self.run.ratios:
            raise ValueError(f"{key!r} is kept twice in {self.chapter}")
        self.run.ratios[key] = (ratio.estimate, ratio.low, ratio.high)
        if target is not None:
            self.run.targets[key] = target
        self._save_run()

    def _save_run(self) -> None:
        """Write this run's entry into the runs file, when recording or repeating."""
        if self.mode in ("record", "repeat"):
            write_runs(self.runs_path, self.chapter, self.others + [self.run])

    def _checked_interval(self, across: Interval, ratio: Interval) -> tuple[float, float]:
        """Recorded: the span of every run's interval on this CPU and of the next run's predicted
        range (``across``), so that a direction or target verdict is held against re-runs only
        where all the runs gave it and the next was predicted to. Checked: this
        run's own. (The tolerance, :func:`~earlyexit.timing.ratio_factor` of the same span, lets
        a re-run land at the other end of the runs from the recorded one.)"""
        return (ratio.low, ratio.high) if self.mode != "record" else (across.low, across.high)

    def note_run(self, key: str, value: float | str) -> list[float | str]:
        """Write what this run measured without an interval (a simulated rate) or chose (the
        setting it picked) to its entry in the runs file; return ``key``'s value in every run on
        this CPU with this code, this run last, so that the chapter reports every repetition."""
        value = check_value(key, value)
        if key in self.run.values:
            raise ValueError(f"{key!r} is noted twice in {self.chapter}")
        self.run.values[key] = value
        self._save_run()
        return [run.values[key] for run in self.earlier + [self.run] if key in run.values]

    def runs_of(self, key: str) -> list[Interval]:
        """``key``'s interval in every earlier run on this CPU with this code, and in this run (last)."""
        runs = [run.interval(key) for run in self.earlier + [self.run]]
        return [interval for interval in runs if interval is not None]

    def across(self, key: str) -> Interval:
        """The interval that spans ``key``'s intervals in every run and the next run's predicted range
        (:func:`earlyexit.runs.across_runs`)."""
        if key not in self.run.ratios:
            raise KeyError(f"{key!r} is not a ratio this run kept")
        return across_runs(self.runs_of(key))

    def runs_table(self) -> Table:
        """Every timed verdict this chapter kept, in every run on this CPU with this code (this run
        last), and the verdict across them: every repetition reported."""
        runs = self.earlier + [self.run]
        rows = []
        for key in self.run.ratios:
            target = self.run.targets.get(key)
            above, below = self._words.get(key, ("faster", "slower"))
            cells = [run_words(run.interval(key), target, above, below) if key in run.ratios else "-"
                     for run in runs]
            across = self.across(key)  # with one run, its own verdict
            rows.append([key, *cells, run_words(across, target, above, below, size=False)])
        headers = ["result", *(f"run {i + 1}" for i in range(len(runs) - 1)), "this run", "all runs"]
        _glue("timing_runs", str(len(runs)))  # for the prose beside the table
        return table(headers, rows)

    def keep_seeds(self, key: str, values: Sequence[float], floor: float, text: str | None = None,
                   scale: float = 100.0, digits: int = 2) -> None:
        """Keep the mean of a result over seeds, glued as "mean ± sd" (``scale``d, by default to percent),
        checked within :func:`~earlyexit.stats.seed_tolerance` (at least ``floor``)."""
        scale, digits = check_number("scale", scale, -math.inf), check_int("digits", digits, 0)
        mean, sd = mean_and_sd(values)
        shown = f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}" if text is None else text
        self.keep(key, mean, seed_tolerance(values, floor=floor), SEEDS_WHY, text=shown)

    def keep_difference(self, key: str, difference: Interval, floor: float = 0.01, scale: float = 100.0,
                        unit: str = " points") -> None:
        """Keep a difference, glued as its verdict (``difference.verdict(scale, unit)``), checked within
        twice its interval's width (at least ``floor``): a re-run moves the estimate by less than that."""
        check_type("difference", difference, Interval, "an Interval (earlyexit.stats)")
        if difference.is_ratio:
            raise ValueError(f"{key}: keep_difference needs a difference (an Interval with null 0), got a ratio")
        floor = check_number("floor", floor)
        self.keep(key, difference.estimate, max(2 * (difference.high - difference.low), floor),
                  DIFFERENCE_WHY, text=difference.verdict(scale, unit))

    def glue_table(self, key: str, shown: object) -> object:
        """Glue a table (or any displayable object) under ``key`` for other pages; return it for display."""
        _glue(key, shown)
        return shown

    def glue_text(self, key: str, text: str) -> None:
        """Glue a sentence (words chosen from a verdict) under ``key``; it displays nothing in the cell."""
        check_type("text", text, str, "a str")
        _glue(key, text)

    def elapsed(self) -> float:
        """Seconds since this chapter's results were opened (its first cell)."""
        return time.perf_counter() - self.started

    def book_seconds(self) -> float:
        """How long the whole book took to execute: every other chapter's recorded time, and this one's so far."""
        total = self.elapsed()
        for path in sorted(self.path.parent.glob("*.json")):
            if path.stem != self.chapter:
                total += read_results(path).get("seconds", 0.0)
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
