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

Tolerances come from measured spreads (seeds, repeated timings), written next to each value.

Executed notebooks also carry the hash of the package code they ran with (printed by
``ChapterResults``, stamped in their metadata by ``make notebooks``), so that
``make test`` fails when the package changes after the notebooks were executed.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from .timing import Ratio
from .utils import repo_root

MODES = ("record", "check", "warn", "off")
PACKAGE_DIR = Path(__file__).resolve().parent


def _normalised_source(path: Path) -> str:
    """The code of a module without docstrings and comments, so that editing prose alone keeps the hash."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def code_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """A short hash of the package's code (its modules without docstrings, and its data files)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(_normalised_source(path).encode() if path.suffix == ".py" else path.read_bytes())
    return digest.hexdigest()[:12]


def notebook_code_hash(notebook: dict) -> str:
    """A short hash of a notebook's code cells (their source, in order)."""
    digest = hashlib.sha256()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            digest.update("".join(cell["source"]).encode() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Recorded:
    """One key result: its value, how far a re-run may move it, and why that far.

    ``tolerance`` is an absolute difference, or, when ``factor`` is true, a factor >= 1 the
    value may be multiplied or divided by (timing ratios: another CPU scales them).
    """

    value: float
    tolerance: float
    why: str
    factor: bool = False

    def accepts(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.factor:
            return value > 0 and self.value / self.tolerance <= value <= self.value * self.tolerance
        return abs(value - self.value) <= self.tolerance

    def allowed(self) -> str:
        if self.factor:
            return f"{self.value / self.tolerance:.3g} to {self.value * self.tolerance:.3g} (x/÷ {self.tolerance:.2f})"
        return f"±{self.tolerance:.3g}"


def compare(recorded: dict[str, Recorded], current: dict[str, float]) -> list[str]:
    """Every way ``current`` disagrees with ``recorded``: a missing key or a value outside its tolerance."""
    problems = []
    for key, value in current.items():
        if key not in recorded:
            problems.append(f"{key}: no recorded value (run `make notebooks`)")
            continue
        expected = recorded[key]
        if not expected.accepts(value):
            problems.append(f"{key}: {value:.6g} now, {expected.value:.6g} recorded; allowed {expected.allowed()} "
                            f"({expected.why})")
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
        print(f"earlyexit code {code_hash()}")

    def keep(self, key: str, value: float, tolerance: float, why: str, text: str | None = None,
             factor: bool = False) -> None:
        """Glue ``text`` (default: the value) under ``key``; record or check ``value`` within ``tolerance``.

        With ``factor``, ``tolerance`` is a factor >= 1 rather than a difference (see :class:`Recorded`).
        """
        try:
            from myst_nb import glue  # installed with the book; a bare package install may lack it
        except ImportError:  # pragma: no cover - e.g. on Colab without the book's requirements
            glue = None

        value = float(value.detach()) if hasattr(value, "detach") else float(value)
        lowest = 1 if factor else 0
        if not (isinstance(tolerance, (int, float)) and tolerance >= lowest and math.isfinite(tolerance)):
            raise ValueError(f"tolerance must be a finite number >= {lowest}, got {tolerance!r}")
        if factor and not value > 0:
            raise ValueError(f"a value checked within a factor must be > 0, got {value!r}")
        if key in self.kept:
            raise ValueError(f"{key!r} is kept twice in {self.chapter}")
        if glue is not None:
            glue(key, text if text is not None else f"{value:.4g}", display=False)
        self.kept[key] = Recorded(value, float(tolerance), why, factor)
        if self.mode == "record":
            self._write()
        elif self.mode in ("check", "warn") and self.recorded:
            problems = compare(self.recorded, {key: value})
            if problems and self.mode == "check":
                raise ResultOutOfTolerance(f"{self.chapter}: " + "; ".join(problems))
            for problem in problems:
                print(f"note: {problem}", file=sys.stderr)

    def keep_ratio(self, key: str, ratio: Ratio, text: str | None = None,
                   why: str = "timing: this run's interval, widened, and at least the change between CPUs") -> None:
        """Keep a measured speed ratio, glued as its verdict, checked within :func:`ratio_factor`."""
        self.keep(key, ratio.median, ratio_factor(ratio.low, ratio.high), why,
                  text=ratio.verdict() if text is None else text, factor=True)

    def elapsed(self) -> float:
        """Seconds since this chapter's results were opened (its first cell)."""
        return time.perf_counter() - self.started

    def book_seconds(self) -> float:
        """How long the whole book took to execute: every other chapter's recorded time, and this one's so far."""
        total = self.elapsed()
        for path in sorted(self.path.parent.glob("*.json")):
            if path.stem != self.chapter:
                total += json.loads(path.read_text()).get("seconds", 0.0)
        return total

    def table(self, key: str, shown: object) -> object:
        """Glue a table (or any displayable object) under ``key`` for other pages; return it for display."""
        try:
            from myst_nb import glue
        except ImportError:  # pragma: no cover
            return shown
        glue(key, shown, display=False)
        return shown

    def _write_at_exit(self) -> None:
        if self.kept:
            with contextlib.suppress(OSError):  # e.g. a temporary folder already removed
                self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"chapter": self.chapter, "code_hash": code_hash(),
                   "seconds": round(self.elapsed(), 1),
                   "results": {k: asdict(v) for k, v in self.kept.items()}}
        handle, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(handle, "w") as file:
            json.dump(payload, file, indent=1, sort_keys=True)
            file.write("\n")
        os.replace(tmp, self.path)


def seed_tolerance(values: list[float], factor: float = 4.0, floor: float = 0.0) -> float:
    """``factor`` times the standard deviation over seeds, and at least ``floor``.

    A re-run on another machine trains slightly different models (its rounding differs), so
    a recorded value may move about as much as one seed differs from another. The sample
    standard deviation of a few seeds is itself uncertain, hence a generous factor.
    """
    if len(values) < 2:
        raise ValueError("a seed tolerance needs at least two seeds")
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return max(factor * sd, floor)


# Timing ratios measured on two CPUs, same code and weights: Chapter 2's "loop vs batch"
# was 6.1x on the 2-core Xeon that recorded the book and 4.1x on CI's 2-core machine with
# AVX-512 (a factor 1.49); an earlier Chapter 7 timed one configuration four times on one
# machine, 17.0 to 29.5 µs per image (a factor 1.74). Both together, with margin: 2.5.
BETWEEN_CPUS = 2.5


def ratio_factor(low: float, high: float, widen: float = 3.0, floor: float = BETWEEN_CPUS) -> float:
    """How far (a factor) a measured speed ratio may move on another machine.

    Its 95% interval's half-width on a log scale (this machine's own noise), widened
    ``widen`` times, and at least ``floor``: another CPU has other caches, vector units and
    per-call overheads, which scale a ratio rather than shift it.
    """
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got {low!r}, {high!r}")
    return max((high / low) ** (widen / 2), floor)


def stamp(paths: list[Path]) -> None:
    """Write the package's and each notebook's code hash into the notebooks' metadata (after executing them)."""
    package = code_hash()
    for path in paths:
        notebook = json.loads(path.read_text())
        notebook["metadata"]["earlyexit"] = {"package_code": package, "notebook_code": notebook_code_hash(notebook)}
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m earlyexit.results stamp notebooks/*.ipynb``: stamp executed notebooks."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "stamp":
        print("usage: python -m earlyexit.results stamp NOTEBOOK...", file=sys.stderr)
        return 2
    stamp([Path(p) for p in args[1:]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
