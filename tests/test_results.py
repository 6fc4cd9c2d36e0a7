"""Recorded results: the checker catches what it should, and the code hash follows the code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from earlyexit import results
from earlyexit.results import ChapterResults, Recorded, ResultOutOfTolerance, code_hash, compare, load

ROOT = Path(__file__).resolve().parents[1]


def test_compare_reports_missing_and_out_of_tolerance_values_only():
    recorded = {"a": Recorded(0.90, 0.01, "seeds"), "b": Recorded(2.0, 0.5, "timing")}
    assert compare(recorded, {"a": 0.905, "b": 1.6}) == []
    problems = compare(recorded, {"a": 0.92, "b": float("nan"), "c": 1.0})
    assert len(problems) == 3
    assert problems[0].startswith("a: 0.92 now, 0.9 recorded; allowed ±0.01 (seeds)")
    assert "no recorded value" in problems[2]


def test_record_then_check_then_warn(tmp_path, capsys):
    recorder = ChapterResults("99_test", mode="record", folder=tmp_path)
    recorder.keep("accuracy", 0.91, 0.01, "seeds", text="91%")
    recorder.keep("speed", 2.0, 0.6, "timing")
    stored = json.loads((tmp_path / "99_test.json").read_text())
    assert stored["results"]["accuracy"] == {"value": 0.91, "tolerance": 0.01, "why": "seeds"}
    assert stored["code_hash"] == code_hash() and stored["seconds"] >= 0

    checker = ChapterResults("99_test", mode="check", folder=tmp_path)
    checker.keep("accuracy", 0.915, 0.01, "seeds")  # within tolerance
    checker.keep("speed", 2.5, 0.6, "timing")  # within tolerance
    strict = ChapterResults("99_test", mode="check", folder=tmp_path)
    with pytest.raises(ResultOutOfTolerance, match=r"accuracy: 0.93 now, 0.91 recorded; allowed ±0.01 \(seeds\)"):
        strict.keep("accuracy", 0.93, 0.01, "seeds")
    warner = ChapterResults("99_test", mode="warn", folder=tmp_path)
    warner.keep("accuracy", 0.95, 0.01, "seeds")
    assert "note: accuracy: 0.95 now" in capsys.readouterr().err
    with pytest.raises(ValueError, match="kept twice"):
        warner.keep("accuracy", 0.95, 0.01, "seeds")


def test_modes_and_tolerances_are_validated(tmp_path):
    with pytest.raises(ValueError, match="EARLYEXIT_RESULTS must be one of"):
        ChapterResults("x", mode="strict", folder=tmp_path)
    recorder = ChapterResults("x", mode="off", folder=tmp_path)
    with pytest.raises(ValueError, match="tolerance must be"):
        recorder.keep("a", 1.0, -0.1, "why")
    assert not (tmp_path / "x.json").exists()


def test_the_code_hash_ignores_docstrings_and_comments_but_not_code(tmp_path):
    package = tmp_path / "pkg"
    shutil.copytree(results.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_hash(package)
    module = package / "exits.py"
    text = module.read_text()
    module.write_text(text.replace('"""Highest class probability', '"""The highest class probability')
                      .replace("# ", "#  ", 1))
    assert code_hash(package) == before
    module.write_text(text.replace("return scores.float() > threshold", "return scores.float() >= threshold"))
    assert code_hash(package) != before


def test_seed_and_ratio_tolerances():
    assert results.seed_tolerance([0.90, 0.91, 0.92], factor=4) == pytest.approx(0.04)
    assert results.seed_tolerance([0.9, 0.9], floor=0.003) == 0.003
    assert results.ratio_tolerance(1.8, 2.2, 2.0) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        results.seed_tolerance([0.9])


# What three deliberately broken changes to the package did to the recorded key results,
# when the affected chapters' computations were run with them (tests/make_doctored_results.py).
DOCTORED_FILE = ROOT / "tests" / "data" / "doctored_results.json"
DOCTORED = json.loads(DOCTORED_FILE.read_text()) if DOCTORED_FILE.exists() else {"(file missing)": None}


@pytest.mark.parametrize("change", sorted(DOCTORED))
def test_the_checker_catches_each_deliberately_broken_change(change):
    assert DOCTORED[change] is not None, f"{DOCTORED_FILE} is missing: run tests/make_doctored_results.py"
    assert len(DOCTORED) >= 3
    problems = []
    for chapter, values in DOCTORED[change]["results"].items():
        recorded = load(chapter, ROOT / "notebooks" / "results")
        assert recorded, f"no recorded results for {chapter}"
        problems += compare(recorded, values)
    assert problems, f"the broken change '{change}' passed every check"
