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


def test_a_timing_ratio_is_checked_within_a_factor_both_ways():
    recorded = {"speed": Recorded(2.0, 2.5, "timing", factor=True)}
    assert compare(recorded, {"speed": 0.81}) == compare(recorded, {"speed": 4.99}) == []
    for moved in (0.79, 5.01, 0.0, -2.0, float("inf")):
        assert compare(recorded, {"speed": moved}), moved
    assert "allowed 0.8 to 5 (x/÷ 2.50)" in compare(recorded, {"speed": 6.0})[0]


def test_record_then_check_then_warn(tmp_path, capsys):
    recorder = ChapterResults("99_test", mode="record", folder=tmp_path)
    recorder.keep("accuracy", 0.91, 0.01, "seeds", text="91%")
    recorder.keep("speed", 2.0, 0.6, "timing")
    stored = json.loads((tmp_path / "99_test.json").read_text())
    assert stored["results"]["accuracy"] == {"value": 0.91, "tolerance": 0.01, "why": "seeds", "factor": False}
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
    with pytest.raises(ValueError, match="tolerance must be a finite number >= 1"):
        recorder.keep("a", 1.0, 0.5, "why", factor=True)
    with pytest.raises(ValueError, match="must be > 0"):
        recorder.keep("a", 0.0, 2.0, "why", factor=True)
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
    assert results.ratio_factor(1.8, 2.2) == results.BETWEEN_CPUS  # a tight interval: the CPU floor
    assert results.ratio_factor(1.0, 4.0) == pytest.approx(8.0)  # a wide one: (4 / 1) ** 1.5
    with pytest.raises(ValueError, match="0 < low <= high"):
        results.ratio_factor(0.0, 1.0)


def test_keep_ratio_glues_the_verdict_and_records_a_factor(tmp_path):
    from earlyexit.timing import Ratio
    recorder = ChapterResults("98_test", mode="record", folder=tmp_path)
    recorder.keep_ratio("gain", Ratio((1.9, 2.0, 2.1, 2.0, 2.05, 1.95, 2.0)))
    stored = json.loads((tmp_path / "98_test.json").read_text())["results"]["gain"]
    assert stored["factor"] is True and stored["tolerance"] == results.BETWEEN_CPUS
    assert stored["value"] == 2.0
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
