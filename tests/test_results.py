"""Recorded results: the checker catches what it should, a speedup may not turn into a slowdown,
and deliberately broken changes to the code fail it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from earlyexit.results import ChapterResults, Recorded, ResultOutOfTolerance, compare, load
from earlyexit.stats import Interval
from earlyexit.timing import BETWEEN_CPUS

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
    assert stored["seconds"] >= 0 and "code_hash" not in stored  # freshness lives in the notebooks' stamps

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


def test_a_measured_speedup_must_not_come_back_as_a_measured_slowdown():
    recorded = {"speedup": Recorded(1.65, 2.5, "timing", factor=True, low=1.51, high=1.84)}
    assert compare(recorded, {"speedup": (1.2, 1.05, 1.4)}) == []  # slower, still a speedup: within the factor
    assert compare(recorded, {"speedup": (0.95, 0.85, 1.1)}) == []  # inside the noise: not a measured flip
    problems = compare(recorded, {"speedup": (0.8, 0.72, 0.9)})  # 0.8 is inside x/÷ 2.5, but slower
    assert len(problems) == 1
    assert "recorded as measurably faster" in problems[0] and "now measurably slower" in problems[0]
    no_interval = {"speedup": Recorded(1.65, 2.5, "timing", factor=True)}
    assert compare(no_interval, {"speedup": (0.8, 0.72, 0.9)}) == []  # without a recorded interval: the factor only


def test_keep_ratio_records_the_interval_and_fails_a_flipped_direction(tmp_path):
    recorder = ChapterResults("97_test", mode="record", folder=tmp_path)
    recorder.keep_ratio("gain", Interval(2.0, 1.9, 2.1, 1.0))
    stored = json.loads((tmp_path / "97_test.json").read_text())["results"]["gain"]
    assert stored["factor"] is True and stored["tolerance"] == BETWEEN_CPUS and stored["value"] == 2.0
    assert (stored["low"], stored["high"]) == (1.9, 2.1)
    checker = ChapterResults("97_test", mode="check", folder=tmp_path)
    with pytest.raises(ResultOutOfTolerance, match="now measurably slower"):
        checker.keep_ratio("gain", Interval(0.88, 0.85, 0.9, 1.0))


def test_keep_seeds_records_the_mean_with_four_spreads(tmp_path):
    recorder = ChapterResults("96_test", mode="record", folder=tmp_path)
    recorder.keep_seeds("accuracy", [0.90, 0.91, 0.92], floor=0.003)
    stored = json.loads((tmp_path / "96_test.json").read_text())["results"]["accuracy"]
    assert stored["value"] == pytest.approx(0.91) and stored["tolerance"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="reason"):
        recorder.keep("x", 1.0, 0.1, " ")
    with pytest.raises(ValueError, match="finite number"):
        recorder.keep("y", float("nan"), 0.1, "why")


# What three deliberately broken changes to the package did to the recorded key results,
# when the affected chapters' computations were run with them (tests/make_doctored_results.py).
DOCTORED_FILE = ROOT / "tests" / "data" / "doctored_results.json"
DOCTORED = json.loads(DOCTORED_FILE.read_text()) if DOCTORED_FILE.exists() else {"(file missing)": None}


@pytest.mark.parametrize("change", sorted(DOCTORED))
def test_the_checker_catches_each_deliberately_broken_change(change):
    assert DOCTORED[change] is not None, f"{DOCTORED_FILE} is missing: run tests/make_doctored_results.py"
    assert len(DOCTORED) >= 4
    problems = []
    for chapter, values in DOCTORED[change]["results"].items():
        recorded = load(chapter, ROOT / "notebooks" / "results")
        assert recorded, f"no recorded results for {chapter}"
        problems += compare(recorded, values)
    assert problems, f"the broken change '{change}' passed every check"


# --- The check cannot be disarmed: a NaN or infinite number, or a damaged file, is refused.


def write_results(folder: Path, chapter: str, text: str) -> Path:
    path = folder / f"{chapter}.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("field, bad", [("tolerance", float("nan")), ("tolerance", float("inf")),
                                        ("value", float("nan")), ("value", float("-inf"))])
def test_a_nan_or_infinite_value_or_tolerance_is_refused_when_recorded_and_when_read(tmp_path, field, bad):
    entry = {"value": 0.9, "tolerance": 0.01, "why": "seeds", **{field: bad}}
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        Recorded(**entry)  # such a record would let 123 pass against 0.9
    with pytest.raises(ValueError, match=f"accuracy: {field} must be a finite number"):
        ChapterResults("95_test", mode="record", folder=tmp_path).keep("accuracy", entry["value"],
                                                                       entry["tolerance"], "seeds")
    write_results(tmp_path, "95_test", json.dumps({"chapter": "95_test", "results": {"accuracy": entry}}))
    with pytest.raises(ValueError, match=rf"95_test\.json: this results file .*'accuracy'.*{field} must be a finite"):
        load("95_test", tmp_path)
    with pytest.raises(ValueError, match=r"95_test\.json"):
        ChapterResults("95_test", mode="check", folder=tmp_path)


def test_a_non_finite_interval_is_refused_when_kept_and_reported_when_compared(tmp_path):
    recorder = ChapterResults("94_test", mode="record", folder=tmp_path)
    with pytest.raises(ValueError, match="gain: low must be a finite number"):
        recorder.keep("gain", 2.0, 2.5, "timing", factor=True, interval=(float("nan"), 2.2))
    with pytest.raises(ValueError, match="gain: an interval needs low <= high"):
        recorder.keep("gain", 2.0, 2.5, "timing", factor=True, interval=(2.2, 1.8))
    recorded = {"speedup": Recorded(1.65, 2.5, "timing", factor=True, low=1.51, high=1.84)}
    # a NaN interval would hide a flipped direction: it is a problem, not a pass
    assert "interval is not finite" in compare(recorded, {"speedup": (0.8, float("nan"), 0.9)})[0]
    with pytest.raises(TypeError, match=r"current\['speedup'\] must be a number or a \(median, low, high\)"):
        compare(recorded, {"speedup": "1.6"})


@pytest.mark.parametrize("text, problem", [
    ("", "is empty"),
    ('{"chapter": "93_test", "results": {"a": {"value": 0.9', "is not valid JSON"),
    ("<html>", "is not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"chapter": "93_test"}', 'needs a "results" object'),
    ('{"results": []}', 'needs a "results" object'),
    ('{"results": {"a": {"value": 0.9, "tolerance": 0.01}}}', "entry 'a' needs value, tolerance, why"),
    ('{"results": {"a": {"value": 0.9, "tolerance": 0.01, "why": "x", "note": 1}}}', "entry 'a' needs"),
    ('{"results": {"a": {"value": "0.9", "tolerance": 0.01, "why": "x"}}}', "entry 'a': value must be"),
    ('{"results": {"a": {"value": 0.9, "tolerance": 0.01, "why": ""}}}', "entry 'a': a tolerance needs"),
    ('{"results": {"a": {"value": 2.0, "tolerance": 0.5, "why": "x", "factor": true}}}', "tolerance must be"),
    ('{"results": {"a": {"value": 2.0, "tolerance": 2.5, "why": "x", "factor": "yes"}}}', "factor must be"),
    ('{"seconds": -3, "results": {}}', "seconds must be a finite number >= 0"),
])
def test_a_damaged_results_file_is_refused_with_its_name_and_what_is_wrong(tmp_path, text, problem):
    write_results(tmp_path, "93_test", text)
    with pytest.raises(ValueError, match=rf"93_test\.json: this results file {problem}|93_test\.json: .*{problem}"):
        load("93_test", tmp_path)
    # the total book time reads every other chapter's file: the damaged one is named there too
    with pytest.raises(ValueError, match=r"93_test\.json"):
        ChapterResults("92_test", mode="off", folder=tmp_path).book_seconds()


def test_a_chapter_name_and_the_shown_scale_are_checked(tmp_path):
    with pytest.raises(ValueError, match="chapter must be a chapter's name"):
        ChapterResults("../outside", mode="off", folder=tmp_path)
    recorder = ChapterResults("91_test", mode="off", folder=tmp_path)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        recorder.keep_seeds("a", [0.9, 0.91], 0.01, scale=float("nan"))  # would glue "nan ± nan"
    with pytest.raises(ValueError, match="digits must be an int >= 0"):
        recorder.keep_seeds("a", [0.9, 0.91], 0.01, digits=1.5)
    with pytest.raises(TypeError, match="ratio must be an Interval"):
        recorder.keep_ratio("b", (1.9, 2.1))


def test_a_kept_difference_is_glued_as_its_verdict_and_checked_within_twice_its_width(tmp_path):
    recorder = ChapterResults("99_test", mode="record", folder=tmp_path)
    recorder.keep_difference("gap", Interval(0.004, 0.001, 0.007))
    recorder.glue_text("words", "a sentence")
    recorded = load("99_test", tmp_path)["gap"]
    assert recorded.value == 0.004 and recorded.tolerance == pytest.approx(0.012)
    checker = ChapterResults("99_test", mode="check", folder=tmp_path)
    with pytest.raises(ResultOutOfTolerance):
        checker.keep_difference("gap", Interval(0.03, 0.02, 0.04))
    with pytest.raises(TypeError, match="difference must be an Interval"):
        checker.keep_difference("other", 0.004)


def test_a_target_verdict_fails_when_it_crosses_its_target_on_the_cpu_that_recorded_it(tmp_path):
    # doctored re-runs of a recorded "met" (2x target): "inside the noise" passes, "missed" fails;
    # on another CPU only a speedup turned slowdown fails (keep_ratio's check)
    recorder = ChapterResults("95_test", mode="record", folder=tmp_path)
    assert recorder.keep_target("target_1", Interval(2.3, 2.1, 2.5, 1.0), 2.0) == "met"
    recorded = load("95_test", tmp_path)["target_1"]
    here = recorded.cpu
    assert recorded.target == 2.0 and here
    assert compare({"target_1": recorded}, {"target_1": (2.0, 1.8, 2.2)}, cpu=here) == []
    crossed = compare({"target_1": recorded}, {"target_1": (1.7, 1.6, 1.9)}, cpu=here)
    assert len(crossed) == 1 and "was met" in crossed[0] and "now missed" in crossed[0]
    assert compare({"target_1": recorded}, {"target_1": (1.7, 1.6, 1.9)}, cpu="another CPU") == []
    slower = compare({"target_1": recorded}, {"target_1": (0.95, 0.93, 0.97)}, cpu="another CPU")
    assert len(slower) == 1 and "now measurably slower" in slower[0]
    checker = ChapterResults("95_test", mode="check", folder=tmp_path)
    with pytest.raises(ResultOutOfTolerance, match="now missed"):
        checker.keep_target("target_1", Interval(1.7, 1.6, 1.9, 1.0), 2.0)
    missed = ChapterResults("94_test", mode="record", folder=tmp_path)
    assert missed.keep_target("t", Interval(1.5, 1.4, 1.6, 1.0), 2.0) == "missed"
    back = load("94_test", tmp_path)["t"]
    assert "now met" in compare({"t": back}, {"t": (2.3, 2.1, 2.5)}, cpu=back.cpu)[0]  # and the other way round
    with pytest.raises(ValueError, match="needs a ratio"):
        missed.keep_target("d", Interval(0.01, 0.0, 0.02), 2.0)
    with pytest.raises(ValueError, match="CPU that measured it"):
        Recorded(2.0, 2.5, "timing", factor=True, target=2.0)
