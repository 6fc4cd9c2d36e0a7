"""The timing protocol: interleaving, intervals and verdicts (no timed assertions here)."""

import math
import random
import statistics

import pytest

from earlyexit.stats import Interval
from earlyexit.timing import (
    BETWEEN_CPUS,
    Timing,
    format_seconds,
    median_interval,
    ratio_factor,
    speedup,
    time_interleaved,
)


def test_the_median_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = random.Random(0)
    trials, hits = 2000, 0
    for _ in range(trials):
        samples = [rng.expovariate(1.0) for _ in range(21)]  # skewed, like timings; median ln 2
        low, high = median_interval(samples)
        hits += low <= 0.6931 <= high
    assert 0.94 <= hits / trials <= 0.99  # order statistics guarantee >= 95%, a little more in practice


def test_tiny_samples_get_the_full_range():
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)
    with pytest.raises(ValueError):
        median_interval([])


def test_time_interleaved_rotates_the_order_and_takes_one_sample_per_round():
    calls = []
    candidates = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timings = time_interleaved(candidates, repeats=3, warmup=1, blocks=1)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(t.samples) == 3 for t in timings.values())
    calls.clear()  # in three blocks, each block after the first starts with one unclocked call each
    timings = time_interleaved(candidates, repeats=3, warmup=0)
    assert calls == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "a", "b", "c", "c", "a", "b"]
    assert all(t.blocks == 3 and len(t.samples) == 3 for t in timings.values())
    for bad in ({"repeats": 0}, {"warmup": -1}, {"inner": 1.5}):
        with pytest.raises(ValueError):
            time_interleaved(candidates, **bad)


def test_speedups_are_per_round_ratios_and_only_called_so_when_the_interval_excludes_one():
    baseline = Timing(tuple(2.0 + 0.01 * i for i in range(15)))
    faster = Timing(tuple(1.0 + 0.005 * i for i in range(15)))
    ratio = speedup(baseline, faster)
    assert ratio.estimate == pytest.approx(2.0) and ratio.direction == 1 and ratio.verdict().startswith("2.00x faster")
    same = speedup(Timing(tuple(1.0 + (-1) ** i * 0.05 for i in range(15))), Timing((1.0,) * 15))
    assert same.direction == 0 and same.verdict().startswith("no measurable difference")
    slower = speedup(faster, baseline)
    low, high = 1 / slower.high, 1 / slower.low
    assert slower.verdict() == f"2.00x slower (95% CI {low:.2f}-{high:.2f}x)" and 1 < low <= 2 <= high
    with pytest.raises(ValueError, match="same interleaved run"):
        speedup(baseline, Timing((1.0,)))


def test_with_three_blocks_the_interval_spans_the_blocks_not_only_the_rounds():
    # doctored: the rounds alike within a block, the middle block slower (a slow spell of the machine)
    quiet, slow = [1.0, 1.01, 0.99, 1.0, 1.01], [1.5, 1.51, 1.49, 1.5, 1.51]
    drifting = Timing(tuple(quiet + slow + quiet), blocks=3)
    rounds_only = Timing(drifting.samples)  # the same samples as one block
    assert drifting.high / drifting.low > rounds_only.high / rounds_only.low
    assert drifting.low <= min(drifting.block_medians()) and drifting.high >= max(drifting.block_medians())
    steady = Timing(tuple(quiet * 3), blocks=3)
    assert steady.high / steady.low < 1.05
    # a speedup whose blocks disagree (2.4x, 1.6x, 2.4x) cannot meet a 2x target, though most rounds do
    baseline = Timing((2.4,) * 6 + (1.6,) * 3 + (2.4,) * 6, blocks=3)
    assert speedup(baseline, Timing((1.0,) * 15, blocks=3)).against(2.0) == "inside the noise"
    assert speedup(Timing(baseline.samples), Timing((1.0,) * 15)).against(2.0) == "met"  # one block: fooled


def test_timings_agree_when_their_intervals_overlap_and_scale_per_image():
    a = Timing(tuple(float(x) for x in range(10, 31)))
    assert a.agrees_with(Timing(tuple(float(x) for x in range(15, 36))))
    assert not a.agrees_with(Timing(tuple(float(x) for x in range(100, 121))))
    assert a.per(10).median == pytest.approx(statistics.median(a.samples) / 10)


def test_format_seconds_picks_a_unit():
    assert [format_seconds(s) for s in (2.5, 0.0123, 4.5e-6, 3e-9)] == ["2.5 s", "12.3 ms", "4.5 µs", "3 ns"]


def test_a_target_is_met_only_when_the_whole_interval_clears_it():
    assert Interval(2.2, 2.1, 2.3, 1.0).against(2.0) == "met"
    assert Interval(2.2, 1.9, 2.3, 1.0).against(2.0) == "inside the noise"
    assert Interval(1.6, 1.5, 1.9, 1.0).against(2.0) == "missed"
    assert [Interval(sum(s) / 2, *s, 1.0).direction for s in ((1.1, 1.2), (0.8, 0.9), (0.9, 1.1))] == [1, -1, 0]


def test_ratio_factors_come_from_the_interval_and_the_change_between_cpus():
    assert ratio_factor(1.8, 2.2) == BETWEEN_CPUS  # a tight interval: the CPU floor
    assert ratio_factor(1.0, 4.0) == pytest.approx(8.0)  # a wide one: (4 / 1) ** 1.5
    for low, high in ((0.0, 1.0), (2.0, 1.0), (1.0, math.inf)):
        with pytest.raises(ValueError, match="0 < low <= high"):
            ratio_factor(low, high)


@pytest.mark.parametrize("call, message", [
    (lambda: Timing((1.0, 2.0)).per(0), "count must be an int >= 1"),
    (lambda: Timing((1.0, 2.0)).per(-1), "count must be an int >= 1"),
    (lambda: Timing((1.0, 0.0)), "every one > 0"),
    (lambda: Timing((1.0, math.nan)), "samples must hold finite numbers"),
    (lambda: Timing(()), "at least one sample"),
    (lambda: Timing((1.0, 2.0), blocks=3), "3 blocks need at least as many rounds"),
    (lambda: format_seconds(math.nan), "seconds must be a finite number"),
    (lambda: format_seconds(-1e-3), "seconds must be a finite number >= 0"),
    (lambda: median_interval([1.0, 2.0], level=1.5), r"level must be a finite number in \(0.0, 1.0\)"),
    (lambda: Interval(2.05, 2.0, 2.1, 1.0).against(math.nan), "target must be a finite number"),
    (lambda: Interval(0.5, 0.0, 2.1, 1.0), "ratio's interval must lie above 0"),
])
def test_bad_timing_input_is_refused_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_speedup_needs_timings_and_time_interleaved_callables():
    with pytest.raises(TypeError, match="two Timing objects"):
        speedup([1.0], Timing((1.0,)))
    with pytest.raises(TypeError, match=r"candidates\['a'\] must be a callable"):
        time_interleaved({"a": 3}, repeats=1)


def test_torch_threads_sets_and_restores_the_count():
    import torch

    from earlyexit.timing import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        with torch_threads(0):
            pass


def test_ratio_words_follow_the_verdict_so_a_slowdown_is_never_told_as_a_speedup():
    say = ("faster", "slower", "no difference")
    assert Interval(2.2, 2.1, 2.3, 1.0).words(*say) == "faster"
    assert Interval(0.8, 0.7, 0.9, 1.0).words(*say) == "slower"  # a doctored slowdown
    assert Interval(1.0, 0.9, 1.2, 1.0).words(*say) == "no difference"


def test_a_time_is_shown_in_the_unit_of_its_rounded_value():
    assert format_seconds(0.99999) == "1 s"  # not "1e+03 ms"
    assert format_seconds(0.0009999) == "1 ms"
    assert format_seconds(9.9999e-7) == "1 µs"
    assert (format_seconds(0.5), format_seconds(12.3e-6), format_seconds(4.56e-3)) == ("500 ms", "12.3 µs", "4.56 ms")


@pytest.mark.parametrize("settings, message", [
    (dict(widen=math.nan), "widen must be a finite number > 0"),  # it returned NaN
    (dict(widen=-1.0), "widen must be a finite number > 0"),
    (dict(floor=math.nan), "floor must be a finite number >= 1"),
    (dict(floor=0.5), "floor must be a finite number >= 1"),  # a factor below 1 allows nothing
    (dict(low="1.8"), "low and high must be finite numbers"),
])
def test_a_ratio_factor_refuses_settings_that_are_not_factors(settings, message):
    arguments = {"low": 1.8, "high": 2.2, **settings}
    with pytest.raises(ValueError, match=message):
        ratio_factor(**arguments)


def test_candidates_must_be_named_and_samples_one_per_round():
    with pytest.raises(TypeError, match="candidates must be a dict of name -> zero-argument callable, got list"):
        time_interleaved([lambda: None], repeats=1, warmup=0)
    with pytest.raises(ValueError, match=r"samples must be 1-D, got shape \(2, 3\)"):
        median_interval([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with pytest.raises(ValueError, match=r"samples must be 1-D"):
        Timing(((1.0, 2.0), (3.0, 4.0)))


def test_threaded_runs_with_its_own_thread_count_and_restores_the_previous_one():
    import torch

    from earlyexit.timing import threaded

    before = torch.get_num_threads()
    seen = []
    run = threaded(lambda: seen.append(torch.get_num_threads()) or "done", 1)
    assert run() == "done" and seen == [1] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        threaded(lambda: None, 0)
    with pytest.raises(TypeError, match="fn must be a callable"):
        threaded(3, 1)


def test_a_speedup_over_inputs_spans_the_variation_between_inputs():
    from earlyexit.timing import speedup_over_inputs

    def timing(seconds):
        return Timing(tuple(seconds * (1 + 0.001 * i) for i in range(6)), blocks=3)

    baseline = [timing(1.0)] * 4
    # Each input timed precisely: 2x on two inputs, 1.2x on the other two. Every input's own
    # interval lies above 1.5x or below it; over the inputs, the target is inside the noise.
    doctored = [timing(0.5), timing(1 / 1.2), timing(0.5), timing(1 / 1.2)]
    over = speedup_over_inputs(baseline, doctored)
    assert over.is_ratio and abs(over.estimate - (2 * 1.2) ** 0.5) < 1e-9
    assert {speedup(b, c).against(1.5) for b, c in zip(baseline, doctored)} == {"met", "missed"}
    assert over.against(1.5) == "inside the noise"
    assert speedup_over_inputs(baseline, [timing(0.5)] * 4).against(1.5) == "met"
    with pytest.raises(ValueError, match="at least three"):
        speedup_over_inputs(baseline[:2], doctored[:2])
    with pytest.raises(ValueError, match="same inputs"):
        speedup_over_inputs(baseline, doctored[:3])
