"""Choosing thresholds: the sweep agrees with the exit decision, choices meet their requirement,
the bagged choice is stable, the N-exit searches agree with routing, and bad input fails clearly."""

import itertools
import math

import pytest
import torch

from earlyexit.evaluation import ExitRecord, collect, evaluate_rule
from earlyexit.exits import PatienceRule, ThresholdRule, check_threshold, exit_decision
from earlyexit.flops import exit_costs
from earlyexit.inference import route_batch
from earlyexit.thresholds import (
    choose_on_validation,
    choose_threshold,
    evaluate_threshold,
    quantile_thresholds,
    search_thresholds,
    sweep_shared_threshold,
    sweep_thresholds,
)
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
        chosen = choose_on_validation(noisy, test, "max_softmax", 1.0, 10.0, target_flops=4.0)
        shares.add(round(chosen.val.exit_fraction, 6))
    assert len(shares) == 1


def test_impossible_or_ambiguous_requirements_fail_clearly(known_scores):
    scores, early, final = known_scores
    sweep = sweep_thresholds(scores, early, final, 1.0, 10.0)
    with pytest.raises(ValueError, match="no threshold reaches"):
        choose_threshold(sweep_thresholds(scores, early, final & False, 1.0, 10.0), min_accuracy=0.7)
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


def test_choose_on_validation_chooses_on_validation_and_evaluates_on_test():
    val, test = synthetic_record(seed=1), synthetic_record(seed=2)
    point = choose_on_validation(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.005)
    assert point.val.accuracy >= float(val.correct(2).float().mean()) - 0.005
    assert point.test == evaluate_threshold(point.threshold, test.scores("max_softmax"), test.correct(1),
                                            test.correct(2), 1.0, 10.0)
    with pytest.raises(ValueError, match="exactly one"):
        choose_on_validation(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.01, max_flops=5.0)
    with pytest.raises(ValueError, match="exactly one"):
        choose_on_validation(val, test, "max_softmax", 1.0, 10.0)
    with pytest.raises(ValueError, match="bootstrap must be"):
        choose_on_validation(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.01, bootstrap=-1)


def test_the_bagged_choice_moves_less_than_the_plain_one_when_the_model_barely_changes():
    """The knife edge: jitter the logits by a rounding-sized amount and see where each choice lands."""
    val, test = synthetic_record(seed=1), synthetic_record(seed=2)
    plain, bagged = [], []
    for jitter_seed in range(6):
        g = torch.Generator().manual_seed(100 + jitter_seed)
        noisy = ExitRecord(tuple(x + 1e-3 * torch.randn(x.shape, generator=g) for x in val.exit_logits),
                           val.confidence_logits, val.labels)
        floor = dict(max_accuracy_drop=0.002)
        plain.append(choose_on_validation(noisy, test, "max_softmax", 1.0, 10.0, **floor).val.exit_fraction)
        bagged.append(choose_on_validation(noisy, test, "max_softmax", 1.0, 10.0, **floor,
                                           bootstrap=100).val.exit_fraction)
    assert max(bagged) - min(bagged) < max(plain) - min(plain)
    bagging = dict(max_accuracy_drop=0.002, bootstrap=50, seed=3)
    again = choose_on_validation(val, test, "max_softmax", 1.0, 10.0, **bagging)
    assert again == choose_on_validation(val, test, "max_softmax", 1.0, 10.0, **bagging)
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
    # every max-softmax score is above 0, so threshold 0 (always the first candidate) lets all leave at exit 1
    assert float(sweep.thresholds[0]) == 0.0 and float(sweep.exit_fraction[0]) == 1.0
    assert float(sweep.expected_flops[0]) == pytest.approx(1.0)
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




@pytest.mark.parametrize("call, error, message", [
    (lambda s, e, f: sweep_thresholds(s, e, f, math.nan, 10.0), ValueError, "early_flops must be a finite number"),
    (lambda s, e, f: sweep_thresholds(s, e, f, 1.0, -1.0), ValueError, "deep_flops must be a finite number >= 0"),
    (lambda s, e, f: sweep_thresholds(s * 10, e, f, 1.0, 10.0), ValueError, r"scores must lie in \[0, 1\]"),
    (lambda s, e, f: sweep_thresholds(s, e.long() * 3, f, 1.0, 10.0), ValueError, "early_correct must hold"),
    (lambda s, e, f: sweep_thresholds(s, e, "yes", 1.0, 10.0), TypeError, "final_correct must be a tensor"),
    (lambda s, e, f: choose_threshold(sweep_thresholds(s, e, f, 1.0, 10.0), min_accuracy=math.nan), ValueError,
     "min_accuracy must be a finite number in"),
    (lambda s, e, f: choose_threshold(sweep_thresholds(s, e, f, 1.0, 10.0), target_flops=math.inf), ValueError,
     "target_flops must be a finite number"),
    (lambda s, e, f: quantile_thresholds(s, 1), ValueError, "count must be an int >= 2"),
])
def test_bad_arguments_name_themselves(known_scores, call, error, message):
    with pytest.raises(error, match=message):
        call(*known_scores)


def test_a_nan_score_is_not_bad_input_it_never_exits(known_scores):
    scores, early, final = known_scores
    scores = scores.clone()
    scores[9] = math.nan
    assert sweep_thresholds(scores, early, final, 1.0, 10.0, torch.tensor([0.0])).exit_fraction.item() == 0.9


def test_choose_on_validation_checks_its_requirement_and_resampling():
    val, test = synthetic_record(seed=1), synthetic_record(seed=2)
    with pytest.raises(ValueError, match="max_accuracy_drop must be"):
        choose_on_validation(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=-0.1)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        choose_on_validation(val, test, "max_softmax", 1.0, 10.0, target_flops=4.0, bootstrap=2, seed=-1)
    with pytest.raises(ValueError, match="max_flops must be a finite number"):
        search_thresholds(val, "max_softmax", (1.0, 10.0), count=3).best(math.nan)


def test_choose_on_validation_takes_two_exit_records_only():
    val, test = synthetic_record(seed=1, exits=3), synthetic_record(seed=2, exits=3)
    with pytest.raises(ValueError, match="val must be the record of a two-exit network, got 3 exits"):
        choose_on_validation(val, test, "max_softmax", 1.0, 10.0, target_flops=4.0)  # exit 2 is not the final one
    with pytest.raises(TypeError, match=r"val must be an ExitRecord"):
        choose_on_validation({"exit_logits": ()}, test, "max_softmax", 1.0, 10.0, target_flops=4.0)
    with pytest.raises(TypeError, match=r"record must be an ExitRecord"):
        sweep_shared_threshold(val.exit_logits, "max_softmax", (1.0, 2.0, 3.0))
    with pytest.raises(TypeError, match=r"record must be an ExitRecord"):
        search_thresholds(None, "max_softmax", (1.0, 2.0, 3.0))
    with pytest.raises(TypeError, match="sweep must be a Sweep"):
        choose_threshold({"accuracy": [1.0]}, min_accuracy=0.5)


def test_an_accuracy_drop_larger_than_the_final_accuracy_means_no_floor():
    val, test = synthetic_record(seed=1), synthetic_record(seed=2)
    final = float(val.correct(2).float().mean())
    assert final < 0.9
    no_floor = choose_on_validation(val, test, "max_softmax", 1.0, 10.0, max_accuracy_drop=0.9)  # it raised
    sweep = sweep_thresholds(val.scores("max_softmax"), val.correct(1), val.correct(2), 1.0, 10.0)
    assert no_floor.val == choose_threshold(sweep, min_accuracy=0.0)


def test_scores_and_flags_are_one_per_sample_not_flattened(known_scores):
    scores, early, final = known_scores
    with pytest.raises(ValueError, match=r"scores must be 1-D, got shape \(1, "):
        sweep_thresholds(scores[None], early, final, 1.0, 10.0)
    with pytest.raises(ValueError, match=r"early_correct must be 1-D"):
        sweep_thresholds(scores, early[None], final, 1.0, 10.0)
    with pytest.raises(ValueError, match=r"thresholds\[1\] must be"):
        sweep_thresholds(scores, early, final, 1.0, 10.0, thresholds=[0.5, 1.5])


def test_the_book_operating_point_needs_a_cnn_configuration(tiny_splits):
    from earlyexit.operating_point import book_operating_point
    from earlyexit.transformer import LMConfig

    with pytest.raises(TypeError, match="config must be a TrainConfig, got LMConfig"):
        book_operating_point(tiny_splits, LMConfig())
