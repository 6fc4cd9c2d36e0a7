"""Verdicts across repeated runs: stated only where every run agrees, every run reported, runs of
other CPUs and other code kept out; doctored runs prove each way a verdict must give way."""

from __future__ import annotations

import json

import pytest
import torch

from earlyexit.results import ChapterResults, runs_path
from earlyexit.runs import Run, across_runs, code_identity, read_runs, target_across, verdict_across, write_runs
from earlyexit.stats import Interval, prediction_range
from earlyexit.timing import machine_info


def ratio(low: float, high: float, estimate: float | None = None) -> Interval:
    return Interval((low * high) ** 0.5 if estimate is None else estimate, low, high, 1.0)


def test_a_verdict_stands_only_where_every_run_gives_it():
    faster = [ratio(1.1, 1.5, 1.3), ratio(1.2, 1.6, 1.32), ratio(1.15, 1.4, 1.28)]
    assert across_runs(faster).direction == 1
    assert verdict_across(faster[-1], faster).endswith("; faster in all 3 runs)")
    # One run inside the noise, or runs on both sides: no verdict.
    for doctored in ([*faster[:2], ratio(0.97, 1.4)], [ratio(1.1, 1.3), ratio(0.7, 0.9)]):
        assert across_runs(doctored).direction == 0
        assert verdict_across(doctored[-1], doctored).startswith(
            f"no measurable difference across {len(doctored)} runs (their 95% CIs and the next run's")
    slower = [ratio(0.6, 0.8, 0.7), ratio(0.65, 0.85, 0.71)]
    assert verdict_across(slower[-1], slower, "shorter", "longer").endswith("; longer in all 2 runs)")
    # One run says what it says, as before.
    assert verdict_across(faster[0], faster[:1]) == faster[0].verdict()


def test_a_verdict_gives_way_where_the_runs_spread_more_than_each_run_knows():
    # Chapter 7's pool-before-ReLU step at batch 1024, as three runs recorded it: each run's
    # interval narrow and above 1, their estimates apart. A fourth run (a clean clone's) then
    # measured 0.91x (0.90-0.92x), measurably slower. From the runs' spread, the next run may
    # land at 1 or below: no verdict, where the runs' intervals alone said "faster".
    recorded = [ratio(1.089, 1.181, 1.134), ratio(1.048, 1.153, 1.099), ratio(1.064, 1.117, 1.090)]
    assert min(r.low for r in recorded) > 1
    assert across_runs(recorded).direction == 0
    assert verdict_across(recorded[-1], recorded).startswith("no measurable difference across 3 runs")
    # More runs with the same spread narrow the prediction, and the verdict comes back.
    assert across_runs(recorded * 3).direction == 1
    # The prediction is the t interval for one more value: about 95% of new runs drawn like the
    # recorded ones fall inside it.
    low, high = prediction_range([1.0, 1.1, 0.95, 1.05], null=1.0)
    assert low < 0.95 and high > 1.1
    draws = torch.exp(0.1 * torch.randn(2000, 5, generator=torch.Generator().manual_seed(0)))
    ranges = [prediction_range(row[:4].tolist(), null=1.0) for row in draws]
    covered = sum(low <= float(row[4]) <= high for (low, high), row in zip(ranges, draws)) / len(draws)
    assert 0.93 < covered < 0.97


def test_a_target_is_met_only_when_every_run_meets_it():
    met = [ratio(2.1, 2.5, 2.3), ratio(2.05, 2.5, 2.25), ratio(2.2, 2.6, 2.32)]
    assert target_across(met, 2.0) == "met in all 3 runs"
    assert target_across([ratio(1.5, 1.9)] * 2, 2.0) == "missed in all 2 runs"
    for doctored in ([*met[:2], ratio(1.9, 2.4)], [ratio(2.1, 2.4), ratio(1.6, 1.9)]):
        assert target_across(doctored, 2.0) == f"inside the noise across {len(doctored)} runs"
    # Every run met it, but the estimates lie so far apart that the next may not.
    spread = [ratio(2.05, 2.2, 2.1), ratio(3.0, 3.4, 3.2), ratio(2.4, 2.6, 2.5)]
    assert target_across(spread, 2.0) == "inside the noise across 3 runs"
    assert target_across(met[:1], 2.0) == "met"


def test_runs_must_be_of_one_kind():
    with pytest.raises(ValueError, match="at least one run"):
        across_runs([])
    with pytest.raises(ValueError, match="mix differences and ratios"):
        across_runs([ratio(1.1, 1.2), Interval(0.1, 0.0, 0.2)])
    with pytest.raises(TypeError, match=r"runs\[0\]"):
        across_runs([(1.1, 1.2)])


def test_runs_accumulate_and_the_chapter_glues_the_verdict_across_them(tmp_path):
    doctored = [ratio(1.1, 1.5), ratio(0.97, 1.4), ratio(1.2, 1.3)]
    for i, interval in enumerate(doctored):
        results = ChapterResults("99_test", mode="record" if i == 2 else "repeat", folder=tmp_path)
        across = results.keep_ratio("after_1", interval)
        status = results.keep_target("target_1", ratio(2.05, 2.3) if i != 1 else ratio(1.9, 2.3), 2.0)
    # This run alone says faster and met; the three runs together do not.
    assert doctored[-1].direction == 1 and across.direction == 0 and status == "inside the noise"
    assert len(read_runs(runs_path("99_test", tmp_path))) == 3
    # Repeat runs do not write the results file; only the recording run does.
    assert json.loads((tmp_path / "99_test.json").read_text())["results"]["after_1"]["value"] == doctored[-1].estimate
    shown = results.runs_table()
    assert shown.headers == ["result", "run 1", "run 2", "this run", "all runs"]
    assert shown.rows == [["after_1", f"{doctored[0].estimate:.2f}x faster", "no difference",
                           f"{doctored[2].estimate:.2f}x faster", "no difference"],
                          ["target_1", "met", "noise", "met", "noise"]]


def test_runs_on_another_cpu_or_with_other_code_do_not_count(tmp_path):
    code = code_identity("99_test", tmp_path.parent)
    path = runs_path("99_test", tmp_path)
    slower = {"after_1": (0.8, 0.7, 0.9)}
    write_runs(path, "99_test", [Run("Another CPU", code, slower), Run(machine_info()["cpu"], "old+code", slower)])
    results = ChapterResults("99_test", mode="record", folder=tmp_path)
    assert results.keep_ratio("after_1", ratio(1.1, 1.5)).direction == 1
    assert [r.interval("after_1") for r in results.earlier] == []
    # Recording keeps the other CPU's run of this code and drops the stale code's.
    assert [(r.cpu, r.code) for r in read_runs(path)] == [("Another CPU", code), (machine_info()["cpu"], code)]


@pytest.mark.parametrize("text, problem", [
    ("", "is empty"),
    ('{"runs": {}}', 'needs a "runs" list'),
    ('{"runs": [{"cpu": "x", "code": "y"}]}', "run 0: needs cpu, code and ratios"),
    ('{"runs": [{"cpu": "x", "code": "y", "ratios": {"a": [1.0, 2.0, 1.5]}}]}', "run 0: an interval needs low <= high"),
    ('{"runs": [{"cpu": "x", "code": "y", "ratios": {"a": [1.0, NaN, 1.5]}}]}', "run 0"),
    ('{"runs": [{"cpu": "x", "code": "y", "ratios": {}, "values": {"a": NaN}}]}', "run 0: value 'a' must be"),
])
def test_a_damaged_runs_file_is_refused_with_its_name(tmp_path, text, problem):
    path = runs_path("99_test", tmp_path)
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as error:
        ChapterResults("99_test", mode="check", folder=tmp_path)
    assert str(path) in str(error.value)


def test_a_recorded_run_at_one_end_of_the_runs_does_not_fail_a_re_run_at_the_other(tmp_path):
    # Doctored: two runs near 2x, then the recording run lands at 0.9x (as Chapter 7's chunking
    # step once did). A re-check back at 2.7x is within the runs' spread and passes; one
    # interval alone would have allowed only 0.36x to 2.26x.
    for i, interval in enumerate([ratio(1.6, 1.9), ratio(2.1, 2.5), ratio(0.85, 0.95)]):
        ChapterResults("99_test", mode="record" if i == 2 else "repeat", folder=tmp_path).keep_ratio("step", interval)
    checker = ChapterResults("99_test", mode="check", folder=tmp_path)
    checker.keep_ratio("step", ratio(2.6, 2.85))
    assert checker.recorded["step"].tolerance > 2.85 / 0.9


def test_values_without_an_interval_are_reported_for_every_run(tmp_path):
    # A simulated rate and a picked setting, in three runs: each run sees every earlier one.
    for i, (gain, pick) in enumerate([(1.84, "E=2, k=4"), (0.29, "E=1, k=4"), (1.1, "E=2, k=4")]):
        results = ChapterResults("99_test", mode="record" if i == 2 else "repeat", folder=tmp_path)
        gains = results.note_run("rate_gain", gain)
        picks = results.note_run("pick", pick)
    assert gains == [1.84, 0.29, 1.1] and picks == ["E=2, k=4", "E=1, k=4", "E=2, k=4"]
    assert [run.values for run in read_runs(runs_path("99_test", tmp_path))][0] == {"rate_gain": 1.84,
                                                                                  "pick": "E=2, k=4"}
    # A reader's run (warn) adds nothing to the file but still sees the recorded runs.
    with pytest.warns(UserWarning, match="no recorded results"):  # the runs noted, nothing kept
        reader = ChapterResults("99_test", mode="warn", folder=tmp_path)
    assert reader.note_run("rate_gain", 0.5) == [1.84, 0.29, 1.1, 0.5]
    assert len(read_runs(runs_path("99_test", tmp_path))) == 3
    with pytest.raises(ValueError, match="noted twice"):
        reader.note_run("rate_gain", 0.6)
    for bad in (float("nan"), float("inf"), "", None, True):
        with pytest.raises(ValueError, match="finite number or a non-empty name"):
            reader.note_run("other", bad)


def test_a_run_of_one_gives_its_own_direction_in_the_table(tmp_path):
    results = ChapterResults("99_test", mode="record", folder=tmp_path)
    results.keep_ratio("slower_1", ratio(0.6, 0.8), above="shorter", below="longer")
    assert results.runs_table().rows == [["slower_1", f"{1 / ratio(0.6, 0.8).estimate:.2f}x longer", "longer"]]
