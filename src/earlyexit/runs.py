"""Timed verdicts across repeated runs of a chapter: a verdict is stated only where every run, and
the run to come, agree.

One run's interval covers the noise inside that run (its blocks, :mod:`earlyexit.timing`);
running the chapter again can still move a verdict across a line ("1.3x faster" in one run,
"no measurable difference" in the next). So every timed ratio a chapter keeps is also written
to ``notebooks/results/runs/<chapter>.json``, one entry per run, with the CPU and the code
(package and notebook, :mod:`earlyexit.freshness`) that ran it. ``make repeats`` adds runs
without touching the notebooks; ``make notebooks`` adds one more and glues, for each ratio,
the verdict of all the runs on this CPU with this code together (:func:`across_runs`): the
span of their intervals, from the lowest low to the highest high, widened to where the
next run's estimate is predicted to fall (:func:`~earlyexit.stats.prediction_range` of the
runs' estimates). Each run's interval comes from one process, and what a process meets (its
threads' cores, a neighbour's load) can hold for a whole run: only the spread between runs
shows it, and a verdict is meant to survive the next one.

* Every run measurably faster, and the next one predicted faster: the span lies above 1, and
  the chapter says "faster".
* One run inside the noise, runs on both sides, or estimates so spread that the next run
  could land on the other side: the span holds 1, and the chapter says "no measurable
  difference".
* A target is "met" only when it is met in every run, and the next run is predicted to meet
  it; otherwise the span straddles the target: "inside the noise".

A run on another CPU, or with other code, does not count: a reader's re-run is judged by itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .checks import check_type, damaged_file, read_json_file
from .freshness import code_hash, notebook_code_hash, read_notebook
from .stats import Interval, level_text, prediction_range
from .utils import atomic_write

RUNS_FILE = "runs file"


def across_runs(runs: Sequence[Interval]) -> Interval:
    """The runs' intervals joined, from the lowest low to the highest high, and widened to the
    range where the next run's estimate is predicted to fall (two runs or more), around the last
    run's estimate. Its :attr:`~earlyexit.stats.Interval.direction` and
    :meth:`~earlyexit.stats.Interval.against` give a verdict only where every run gives it and
    the next one is predicted to."""
    runs = list(runs)
    if not runs:
        raise ValueError("across_runs needs at least one run")
    for i, run in enumerate(runs):
        check_type(f"runs[{i}]", run, Interval, "an Interval")
    if len({(run.null, run.level) for run in runs}) > 1:
        raise ValueError("the runs mix differences and ratios, or confidence levels")
    last = runs[-1]
    low, high = min(run.low for run in runs), max(run.high for run in runs)
    if len(runs) > 1:
        next_low, next_high = prediction_range([run.estimate for run in runs], last.level, last.null)
        low, high = min(low, next_low), max(high, next_high)
    return Interval(last.estimate, low, high, last.null, last.level)


def code_identity(chapter: str, notebooks: Path) -> str:
    """The code a chapter's run ran with: the package's hash, and the notebook's code cells' hash
    when ``notebooks`` holds the notebook (a damaged notebook is refused, naming the file)."""
    path = notebooks / f"{chapter}.ipynb"
    notebook = notebook_code_hash(read_notebook(path)) if path.is_file() else "none"
    return f"{code_hash()}+{notebook}"


@dataclass
class Run:
    """One run of a chapter: where it ran, with what code, the ratios it measured
    (key -> (estimate, low, high)) with their targets, and what it measured without an interval
    or chose (key -> a number or a name: a simulated rate, the setting a run picked)."""

    cpu: str
    code: str
    ratios: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    values: dict[str, float | str] = field(default_factory=dict)

    def interval(self, key: str) -> Interval | None:
        return Interval(*self.ratios[key], null=1.0) if key in self.ratios else None

    def to_json(self) -> dict:
        return {"cpu": self.cpu, "code": self.code, "ratios": {k: list(v) for k, v in self.ratios.items()},
                "targets": self.targets, "values": self.values}


def read_runs(path: Path) -> list[Run]:
    """The runs recorded in ``path`` (none when it does not exist); a damaged file is refused with
    a ValueError naming it."""
    if not path.is_file():
        return []
    payload = read_json_file(path, RUNS_FILE)
    entries = payload.get("runs")
    if not isinstance(entries, list):
        raise damaged_file(path, RUNS_FILE, 'needs a "runs" list (one entry per run)')
    runs = []
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict) or not {"cpu", "code", "ratios"} <= entry.keys():
                raise ValueError(f"needs cpu, code and ratios, got {entry!r}")
            run = Run(entry["cpu"], entry["code"],
                      {k: tuple(float(x) for x in v) for k, v in entry["ratios"].items()},
                      {k: float(v) for k, v in entry.get("targets", {}).items()},
                      {k: check_value(k, v) for k, v in entry.get("values", {}).items()})
            if not isinstance(run.cpu, str) or not isinstance(run.code, str):
                raise ValueError("cpu and code must be text")
            for key in run.ratios:
                if len(run.ratios[key]) != 3:
                    raise ValueError(f"ratio {key!r} needs (estimate, low, high)")
                run.interval(key)  # a ratio's checks: finite, low <= high, above 0
        except (TypeError, ValueError, AttributeError) as error:
            raise damaged_file(path, RUNS_FILE, f"run {i}: {error}") from None
        runs.append(run)
    return runs


def write_runs(path: Path, chapter: str, runs: Sequence[Run]) -> None:
    atomic_write(path, json.dumps({"chapter": chapter, "runs": [run.to_json() for run in runs]},
                                  indent=1, sort_keys=True) + "\n")


def check_value(key: str, value: object) -> float | str:
    """A run's value without an interval: a finite number or a non-empty name."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueError(f"value {key!r} must be a finite number or a non-empty name, got {value!r}")


def run_words(ratio: Interval, target: float | None = None, above: str = "faster", below: str = "slower",
              size: bool = True) -> str:
    """One run's verdict, short, for the table of every repetition: "1.33x faster" ("faster"
    without its ``size``), "no difference", or against a ``target``, "met", "missed" or "noise"."""
    if target is not None:
        return {"met": "met", "missed": "missed", "inside the noise": "noise"}[ratio.against(target)]
    if ratio.direction == 0:
        return "no difference"
    word, factor = (above, ratio.estimate) if ratio.direction > 0 else (below, 1 / ratio.estimate)
    return f"{factor:.2f}x {word}" if size else word


def verdict_across(this: Interval, runs: Sequence[Interval], above: str = "faster", below: str = "slower") -> str:
    """``this`` run's verdict (:meth:`~earlyexit.stats.Interval.verdict`) when every one of ``runs``
    (this one last) shares it, with how many did; "no measurable difference across N runs" with
    the span of their intervals when they do not."""
    across = across_runs(runs)
    if len(runs) == 1:
        return this.verdict(above=above, below=below)
    if across.direction == 0:
        return f"no measurable difference across {len(runs)} runs (their {level_text(this.level)} " \
               f"CIs and the next run's predicted range span {across.low:.2f}-{across.high:.2f}x)"
    return this.verdict(above=above, below=below, note=f"{above if across.direction > 0 else below} "
                                                       f"in all {len(runs)} runs")


def target_across(runs: Sequence[Interval], target: float) -> str:
    """"met in all N runs", "missed in all N runs", or "inside the noise across N runs" (also
    when the runs land on both sides); one run's own verdict when there is one run."""
    status = across_runs(runs).against(target)
    if len(runs) == 1:
        return status
    if status == "inside the noise":
        return f"inside the noise across {len(runs)} runs"
    return f"{status} in all {len(runs)} runs"
