"""Honest comparisons: seed spreads, paired tests and their verdicts."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from earlyexit.stats import (
    Interval,
    auroc,
    binomial_se,
    compare_paired_seeds,
    compare_seeds,
    holm,
    mcnemar,
    mean_and_sd,
    prediction_range,
    proportion,
    seed_tolerance,
    t_interval,
)


def test_mean_and_sd_match_the_textbook_formula_and_a_single_value_has_no_spread():
    assert mean_and_sd([0.90, 0.92]) == pytest.approx((0.91, 0.0141421), rel=1e-5)
    assert mean_and_sd([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        mean_and_sd([])


def test_compare_seeds_is_welchs_t_interval():
    a, b = [0.912, 0.915, 0.910], [0.905, 0.907, 0.903]
    result = compare_seeds(a, b)
    expected = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6)
    assert result.low < result.estimate < result.high and result.measurable
    assert "no measurable difference" in compare_seeds([0.91, 0.92, 0.90], [0.915, 0.905, 0.91]).verdict()


def test_mcnemar_uses_only_the_disagreements():
    a = torch.tensor([1] * 90 + [1] * 8 + [0] * 2, dtype=torch.bool)
    b = torch.tensor([1] * 90 + [0] * 8 + [1] * 2, dtype=torch.bool)
    result = mcnemar(a, b)
    assert result.estimate == pytest.approx(0.06)
    assert result.p_value == pytest.approx(scipy_stats.binomtest(8, 10, 0.5).pvalue)
    same = mcnemar(a, a)
    assert same.estimate == 0 and same.p_value == 1.0 and not same.measurable
    with pytest.raises(ValueError, match="same samples"):
        mcnemar(a, b[:50])


def test_binomial_standard_error():
    assert binomial_se(0.9, 10_000) == pytest.approx(0.003)


def test_auroc_is_the_chance_that_a_right_sample_outscores_a_wrong_one():
    from earlyexit.stats import auroc

    assert auroc(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([1, 1, 0, 0])) == 1.0
    assert auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([1, 1, 0, 0])) == 0.0
    assert auroc(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == 0.5  # a tie counts one half
    g = torch.Generator().manual_seed(0)
    scores, right = torch.rand(400, generator=g), torch.rand(400, generator=g) < 0.7
    brute = sum(float(a > b) + 0.5 * float(a == b) for a in scores[right] for b in scores[~right])
    assert auroc(scores, right) == pytest.approx(brute / (int(right.sum()) * int((~right).sum())))
    with pytest.raises(ValueError, match="both right and wrong"):
        auroc(torch.rand(3), torch.ones(3))


def test_paired_seed_comparison_is_a_t_interval_on_the_differences():
    from earlyexit.stats import compare_paired_seeds

    a, b = [0.80, 0.85, 0.90], [0.78, 0.82, 0.88]
    result = compare_paired_seeds(a, b)
    expected = scipy_stats.ttest_rel(a, b)
    assert result.estimate == pytest.approx(0.07 / 3) and result.p_value == pytest.approx(expected.pvalue)
    with pytest.raises(ValueError, match="same seeds"):
        compare_paired_seeds(a, b[:2])


def test_verdicts_print_enough_digits_to_read_their_interval():
    tiny = Interval(-0.0004, -0.0011, 0.0003)
    assert tiny.verdict(scale=1, unit="") == "no measurable difference (95% CI -0.0011 to +0.0003)"
    assert Interval(0.0086, 0.0016, 0.0155).verdict() == "+0.86 points (95% CI +0.16 to +1.55 points)"


def test_a_seed_tolerance_is_a_multiple_of_the_spread_with_a_floor():
    assert seed_tolerance([0.90, 0.91, 0.92], factor=4) == pytest.approx(0.04)
    assert seed_tolerance([0.9, 0.9], floor=0.003) == 0.003
    with pytest.raises(ValueError, match="at least two seeds"):
        seed_tolerance([0.9])


@pytest.mark.parametrize("call, error, message", [
    (lambda: mcnemar(torch.tensor([3, 0, 1]), torch.tensor([1, 0, 1])), ValueError, "correct_a must hold one right"),
    (lambda: mcnemar(torch.ones(3), torch.tensor([2.0, 0, 1])), ValueError, "correct_b must hold one right"),
    (lambda: binomial_se(0.9, 0), ValueError, "n must be an int >= 1"),
    (lambda: binomial_se(1.2, 10), ValueError, r"p must be a finite number in \[0.0, 1.0\]"),
    (lambda: auroc(torch.tensor([0.1, math.nan]), torch.tensor([1, 0])), ValueError, "scores must hold finite numbers"),
    (lambda: mean_and_sd([0.9, math.inf]), ValueError, "values must hold finite numbers; 1 of 2"),
    (lambda: compare_seeds([0.9, math.nan], [0.9, 0.8]), ValueError, "a must hold finite numbers"),
    (lambda: compare_paired_seeds([0.9, 0.8], ["x", 0.8]), TypeError, "b must be a tensor"),
])
def test_bad_inputs_are_refused_by_name(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_words_follow_the_verdict_and_flip_with_it():
    above = Interval(0.02, 0.01, 0.03)
    below = Interval(-0.02, -0.03, -0.01)
    inside = Interval(0.01, -0.01, 0.03)
    say = ("better", "worse", "no difference")
    assert [d.words(*say) for d in (above, below, inside)] == list(say)
    assert [d.direction for d in (above, below, inside)] == [1, -1, 0]
    # a doctored result whose interval just reaches zero must not be told as a gain
    assert Interval(0.02, 0.0, 0.04).words(*say) == "no difference"


def test_in_words_refuses_a_direction_that_is_not_a_sign():
    from earlyexit.stats import in_words

    assert in_words(0, "a", "b", "c") == "c"
    with pytest.raises(ValueError, match="direction must be -1, 0 or \\+1"):
        in_words(2, "a", "b", "c")


def test_a_proportion_interval_never_leaves_zero_to_one():
    for successes, n in ((0, 3), (3, 3), (1, 10), (37, 100), (9990, 10000)):
        share = proportion(successes, n)
        assert 0.0 <= share.low <= share.estimate <= share.high <= 1.0
    assert proportion(0, 3).low == 0.0 and proportion(3, 3).high == 1.0
    flags = proportion(torch.tensor([True, False, True, True]))
    assert (flags.estimate, flags.n) == (0.75, 4) and "n = 4" in flags.text()


def test_wilson_intervals_cover_the_true_share_about_as_often_as_they_say():
    rng = np.random.default_rng(0)
    hits = [proportion(int(k), 200).low <= 0.9 <= proportion(int(k), 200).high
            for k in rng.binomial(200, 0.9, size=2000)]
    assert 0.93 <= np.mean(hits) <= 0.97


@pytest.mark.parametrize("args, message", [((5, 3), "cannot exceed"), ((-1, 3), "successes"), ((1, 0), "n must")])
def test_impossible_proportions_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        proportion(*args)


def seeds_shifted(by):
    base = [0.90, 0.91, 0.92, 0.905, 0.915]
    return lambda level: compare_seeds([x + by for x in base], base, level)


def test_holm_widens_each_interval_by_its_rank_and_stops_at_the_first_failure():
    family = holm({"large": seeds_shifted(0.03), "medium": seeds_shifted(0.02), "none": seeds_shifted(0.0),
                   "small": seeds_shifted(0.005)})
    assert family["large"].level == pytest.approx(1 - 0.05 / 4)  # smallest p: tested at alpha / m
    assert family["medium"].level == pytest.approx(1 - 0.05 / 3)
    assert family["small"].level == family["none"].level == pytest.approx(1 - 0.05 / 2)  # stopped there
    assert family["large"].direction == family["medium"].direction == 1
    assert family["none"].direction == family["small"].direction == 0
    assert "98.8% CI" in family["large"].verdict()


def test_holm_keeps_a_family_of_null_comparisons_from_claiming_differences():
    rng = np.random.default_rng(1)
    false_claims = 0
    for _ in range(200):
        draws = [rng.normal(0.9, 0.01, size=(2, 5)) for _ in range(6)]
        family = holm({str(i): (lambda lvl, d=d: compare_seeds(d[0], d[1], lvl)) for i, d in enumerate(draws)})
        false_claims += any(d.direction != 0 for d in family.values())
    assert false_claims / 200 <= 0.08  # about alpha for the whole family, not 1 - 0.95 ** 6 = 26%


@pytest.mark.parametrize("call, message", [
    (lambda: mean_and_sd(torch.zeros(2, 3)), "values must be 1-D"),
    (lambda: compare_seeds(torch.zeros(2, 2), [0.1, 0.2]), "a must be 1-D"),
    (lambda: mcnemar(torch.ones(2, 2), torch.ones(2, 2)), "correct_a must be 1-D"),
    (lambda: proportion(torch.ones(2, 2, dtype=torch.bool)), "successes must be 1-D"),
])
def test_shapes_and_seeds_that_cannot_be_meant_are_refused_by_name(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_one_interval_type_says_differences_and_ratios_and_where_a_value_lies():
    speedup = Interval(2.2, 2.1, 2.3, null=1.0)
    assert speedup.verdict() == "2.20x faster (95% CI 2.10-2.30x)" and str(speedup) == "2.20x (2.10-2.30)"
    latency = Interval(0.5, 0.4, 0.625, null=1.0)  # a / b below 1: said the other way up
    assert latency.verdict(above="longer", below="shorter") == "2.00x shorter (95% CI 1.60-2.50x)"
    assert Interval(1.0, 0.9, 1.2, null=1.0).verdict().startswith("no measurable difference")
    assert [speedup.where(v) for v in (2.5, 2.2, 1.0)] == ["above", "inside", "below"]
    assert [speedup.against(t) for t in (2.0, 2.2, 2.4)] == ["met", "inside the noise", "missed"]
    gap = Interval(0.004, 0.001, 0.007)
    assert gap.direction == 1 and gap.against(0.0) == "met" and gap.where(0.0) == "below"
    for bad, message in (((0.1, 0.2, 0.0), "low <= high"), ((1.0, 0.0, 2.0, 1.0), "above 0"),
                         ((1.0, 0.5, 2.0, 2.0), "null must be 0"), ((math.nan, 0.0, 1.0), "finite")):
        with pytest.raises(ValueError, match=message):
            Interval(*bad)


def test_a_t_interval_of_ratios_is_a_geometric_mean_and_matches_scipy():
    ratios = [2.0, 2.2, 1.9, 2.1]
    result = t_interval(ratios, null=1.0)
    logs = np.log(ratios)
    low, high = scipy_stats.t.interval(0.95, 3, loc=logs.mean(), scale=scipy_stats.sem(logs))
    assert result.estimate == pytest.approx(math.exp(logs.mean()))
    assert (result.low, result.high) == pytest.approx((math.exp(low), math.exp(high)))
    assert t_interval([1.5, 1.5, 1.5], null=1.0).low == pytest.approx(1.5)  # no spread: zero width
    with pytest.raises(ValueError, match="at least two"):
        t_interval([1.0])
    with pytest.raises(ValueError, match="> 0"):
        t_interval([1.0, -1.0], null=1.0)


def test_a_prediction_interval_is_wider_than_the_means_and_refuses_what_it_cannot_use():
    values = [1.0, 1.2, 0.9, 1.1]
    mean = t_interval(values)
    low, high = prediction_range(values)
    # A new value has its own spread: sqrt(1 + n) times the mean's half-width.
    assert high - low == pytest.approx((mean.high - mean.low) * (1 + len(values)) ** 0.5)
    # Ratios on a log scale: symmetric around the geometric mean, as a factor.
    low, high = prediction_range([2.0, 2.2, 1.8], null=1.0)
    geometric = (2.0 * 2.2 * 1.8) ** (1 / 3)
    assert geometric / low == pytest.approx(high / geometric)
    assert prediction_range([1.5, 1.5], null=1.0) == pytest.approx((1.5, 1.5))
    with pytest.raises(ValueError, match="at least two values"):
        prediction_range([1.0])
    with pytest.raises(ValueError, match="must all be > 0"):
        prediction_range([1.0, 0.0], null=1.0)
    with pytest.raises(ValueError):
        prediction_range([1.0, float("nan")])
