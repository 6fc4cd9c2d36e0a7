"""Choosing thresholds: the sweep agrees with the exit decision, choices meet their requirement,
the bagged choice is stable, and the N-exit searches agree with routing."""

import itertools
import math

import pytest
import torch

from earlyexit.calibration import (
    calibrate,
    choose_threshold,
    evaluate_rule,
    evaluate_threshold,
    expected_calibration_error,
    fit_temperature,
    search_thresholds,
    sweep_shared_threshold,
    sweep_thresholds,
)
from earlyexit.evaluation import ExitRecord, collect
from earlyexit.exits import PatienceRule, ThresholdRule, check_threshold, exit_decision
from earlyexit.flops import exit_costs
from earlyexit.inference import route_batch
from helpers import sharpened_model


@pytest.fixture
def known_scores():
    # 10 samples: the 6 most confident are right at exit 1, the 4 least confident wrong there;
    # the final exit is right on all but sample 9.
    scores = torch.linspace(0.05, 0.95, 10)
    early = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], dtype=torch.bool)
    final = torch.ones(10, dtype=torch.bool)
    final[9] = False
    return scores, early, final


def test_sweep_counts_exits_accuracy_and_cost(known_scores):
    scores, early, final = known_scores
    sweep = sweep_thresholds(scores, early, final, early_flops=1.0, deep_flops=10.0,
                             thresholds=torch.tensor([0.0, 0.5, 1.0]))
    assert sweep.exit_fraction.tolist() == [1.0, 0.5, 0.0]
    assert sweep.accuracy.tolist() == pytest.approx([0.6, 1.0, 0.9])
    assert sweep.expected_flops.tolist() == pytest.approx([1.0, 5.5, 10.0])


def test_sweep_agrees_with_the_exit_decision_at_every_threshold():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(500, generator=g).round(decimals=2)  # ties on purpose
    scores[[3, 17]] = float("nan")  # NaN scores never exit
    scores[5] = check_threshold(0.1)  # a score equal to a float32 threshold
    early, final = torch.rand(500, generator=g) < 0.8, torch.rand(500, generator=g) < 0.9
    sweep = sweep_thresholds(scores, early, final, 1.0, 10.0)
    assert not torch.isnan(sweep.thresholds).any()
    for t, fraction, accuracy in zip(sweep.thresholds, sweep.exit_fraction, sweep.accuracy):
        exits = exit_decision(scores, float(t))
        assert float(fraction) == pytest.approx(float(exits.double().mean()))
        assert float(accuracy) == pytest.approx(float(torch.where(exits, early, final).double().mean()))


def test_sweep_refuses_mismatched_or_empty_inputs(known_scores):
    scores, early, final = known_scores
    with pytest.raises(ValueError, match="early_correct has 11 entries but there are 10 scores"):
        sweep_thresholds(scores, torch.cat([early, early[:1]]), final, 1.0, 10.0)
    with pytest.raises(ValueError, match="at least one sample"):
        sweep_thresholds(scores[:0], early[:0], final[:0], 1.0, 10.0)


def test_accuracy_floor_picks_the_cheapest_threshold_that_keeps_it(known_scores):
    scores, early, final = known_scores
    point = choose_threshold(sweep_thresholds(scores, early, final, 1.0, 10.0), min_accuracy=1.0)
    # samples 4..9 may exit (all right early), 0..3 must go on: 60% exit
    assert point.exit_fraction == pytest.approx(0.6) and point.accuracy == 1.0
    assert scores[3] <= point.threshold < scores[4]


def test_flops_budget_picks_the_most_accurate_threshold_that_fits(known_scores):
    scores, early, final = known_scores
    point = choose_threshold(sweep_thresholds(scores, early, final, 1.0, 10.0), max_flops=2.0)
    assert point.expected_flops <= 2.0
    assert point.exit_fraction == pytest.approx(0.9) and point.accuracy == pytest.approx(0.7)


def test_spending_a_budget_takes_the_fewest_exits_it_allows(known_scores):
    scores, early, final = known_scores
    sweep = sweep_thresholds(scores, early, final, 1.0, 10.0)
    point = choose_threshold(sweep, target_flops=5.5)  # half may go on: exactly 5 exit
    assert point.exit_fraction == pytest.approx(0.5) and point.expected_flops == pytest.approx(5.5)
    cheaper = choose_threshold(sweep, target_flops=5.4)  # a little less: one more must exit
    assert cheaper.exit_fraction == pytest.approx(0.6)


def test_a_spent_budget_pins_the_exit_share_whatever_the_accuracy_does():
    """The point of spending a budget: perturbing the model moves the accuracy, not the exit share."""
    val, test = synthetic_record(seed=1), synthetic_record(seed=2)
    shares = set()
    for jitter_seed in range(5):
        g = torch.Generator().manual_seed(jitter_seed)
        noisy = ExitRecord(tuple(x + 0.3 * torch.randn(x.shape, generator=g) for x in val.exit_logits),
                           val.confidence_logits, val.labels)
        shares.add(round(calibrate(noisy, test, "max_softmax", 1.0, 10.0, target_flops=4.0).val.exit_fraction, 6))
    assert len(shares) == 1


def test_impossible_or_ambiguous_requirements_fail_clearly(known_scores):
    scores, early, final = known_scores
    sweep = sweep_thresholds(scores, early, final, 1.0, 10.0)
    with pytest.raises(ValueError, match="no threshold reaches"):
        choose_threshold(sweep, min_accuracy=1.01)
    with pytest.raises(ValueError, match="no threshold fits"):
        choose_threshold(sweep, max_flops=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        choose_threshold(sweep)


def test_evaluate_threshold_reuses_the_same_rule(known_scores):
    scores, early, final = known_scores
    point = evaluate_threshold(0.5, scores, early, final, 1.0, 10.0)
    assert (point.exit_fraction, point.accuracy) == (0.5, 1.0)


def synthetic_record(n=4000, seed=0, exits=2):
    """Logits of a fake multi-exit model: later exits are right more often; confidence tracks correctness."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    logits = []
    for k in range(exits):
        noise = torch.randn(n, 10, generator=g) * 1.5
        logits.append(noise + torch.nn.functional.one_hot(labels, 10) * (2.0 + 0.8 * k))
    confidence = tuple(torch.randn(n, generator=g) for _ in range(exits - 1))
    return ExitRecord(tuple(logits), confidence, labels)


def test_calibrate_chooses_on_validation_and_evaluates_on_test():
    val, test = synthetic_record(seed=1), synthetic_record(seed=2)
    point = calibrate(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.005)
    assert point.val.accuracy >= float(val.correct(2).float().mean()) - 0.005
    assert point.test == evaluate_threshold(point.threshold, test.scores("max_softmax"), test.correct(1),
                                            test.correct(2), 1.0, 10.0)
    with pytest.raises(ValueError, match="exactly one"):
        calibrate(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.01, max_flops=5.0)
    with pytest.raises(ValueError, match="exactly one"):
        calibrate(val, test, "max_softmax", 1.0, 10.0)
    with pytest.raises(ValueError, match="bootstrap must be"):
        calibrate(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.01, bootstrap=-1)


def test_the_bagged_choice_moves_less_than_the_plain_one_when_the_model_barely_changes():
    """The knife edge: jitter the logits by a rounding-sized amount and see where each choice lands."""
    val, test = synthetic_record(seed=1), synthetic_record(seed=2)
    plain, bagged = [], []
    for jitter_seed in range(6):
        g = torch.Generator().manual_seed(100 + jitter_seed)
        noisy = ExitRecord(tuple(x + 1e-3 * torch.randn(x.shape, generator=g) for x in val.exit_logits),
                           val.confidence_logits, val.labels)
        plain.append(calibrate(noisy, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.002).val.exit_fraction)
        bagged.append(calibrate(noisy, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.002,
                                bootstrap=100).val.exit_fraction)
    assert max(bagged) - min(bagged) < max(plain) - min(plain)
    again = calibrate(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.002, bootstrap=50, seed=3)
    assert again == calibrate(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.002, bootstrap=50, seed=3)
    assert len(again.bootstrap_thresholds) == 50


def test_rules_evaluated_on_recorded_logits_make_the_decisions_routing_makes():
    model = sharpened_model((16, 32, 32))
    images = torch.randn(200, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    labels = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(5))
    record = collect(model, images, labels)
    costs = exit_costs(model)
    for rule in (ThresholdRule(0.6), ThresholdRule([0.9, 0.5], "entropy"), PatienceRule(2)):
        routed = route_batch(model, images, rule)
        outcome = evaluate_rule(record, rule, costs)
        shares = torch.bincount(routed.exit_number - 1, minlength=3).double() / 200
        assert outcome.exit_shares == pytest.approx(shares.tolist())
        assert outcome.accuracy == pytest.approx(float((routed.predictions == labels).double().mean()))
        assert outcome.expected_flops == pytest.approx(float((shares * torch.tensor(costs).double()).sum()))


def test_shared_threshold_sweep_spans_no_exit_to_all_exit():
    record = synthetic_record(exits=3)
    sweep = sweep_shared_threshold(record, "max_softmax", (1.0, 5.0, 10.0), count=21)
    assert float(sweep.exit_fraction[0]) == 1.0 or float(sweep.thresholds[0]) == 0.0
    assert float(sweep.exit_fraction[-1]) == 0.0 and float(sweep.expected_flops[-1]) == pytest.approx(10.0)


def test_budget_search_finds_the_best_combination_within_the_budget():
    record = synthetic_record(exits=3)
    costs = (1.0, 5.0, 10.0)
    search = search_thresholds(record, "max_softmax", costs, count=9)
    assert search.accuracy.shape == tuple(len(g) for g in search.grids)
    for budget in (2.0, 4.0, 7.0):
        outcomes = {c: evaluate_rule(record, ThresholdRule(list(c)), costs)
                    for c in itertools.product(*[g.tolist() for g in search.grids])}
        fitting = [o for o in outcomes.values() if o.expected_flops <= budget]
        best = evaluate_rule(record, ThresholdRule(list(search.best(budget))), costs)
        assert best.expected_flops <= budget
        assert best.accuracy == pytest.approx(max(o.accuracy for o in fitting))
    with pytest.raises(ValueError, match="no thresholds fit"):
        search.best(0.5)


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 5, generator=g) * 2
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="logits and N >= 1 labels"):
        fit_temperature(true_logits, labels[:10])


def test_expected_calibration_error_is_zero_when_calibrated_and_the_gap_otherwise():
    correct = torch.tensor([True, True, True, False] * 25)
    assert expected_calibration_error(torch.full((100,), 0.75), correct) == pytest.approx(0.0, abs=1e-6)
    assert expected_calibration_error(torch.full((100,), 0.95), correct) == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        expected_calibration_error(torch.tensor([0.5, math.nan]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="as many confidences as outcomes"):
        expected_calibration_error(torch.full((3,), 0.5), correct)
