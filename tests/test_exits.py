"""Exit criteria, the one exit decision, and the rules that apply it exit by exit."""

import math

import numpy as np
import pytest
import torch

from earlyexit.exits import (
    PatienceRule,
    ThresholdRule,
    as_rule,
    check_threshold,
    entropy_confidence,
    exit_decision,
    exit_scores,
    max_softmax,
)


def test_criteria_are_one_for_certain_and_low_for_uniform_predictions():
    certain = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    uniform = torch.zeros(1, 4)
    assert max_softmax(certain).item() == pytest.approx(1.0)
    assert max_softmax(uniform).item() == pytest.approx(0.25)
    assert entropy_confidence(certain).item() == pytest.approx(1.0)
    assert entropy_confidence(uniform).item() == pytest.approx(0.0, abs=1e-6)


def test_entropy_confidence_matches_the_formula():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    p = logits.softmax(1)[0]
    h = -(p * p.log()).sum()
    assert entropy_confidence(logits).item() == pytest.approx(1 - h.item() / math.log(3), rel=1e-5)


def test_entropy_of_logits_with_minus_infinity_is_a_number_in_the_unit_interval():
    logits = torch.tensor([[2.0, -math.inf, 0.0, -math.inf], [0.0, 0.0, -math.inf, -math.inf]])
    scores = entropy_confidence(logits)
    assert torch.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    # two equally likely classes out of four: H = log 2, score = 1 - log 2 / log 4 = 0.5
    assert scores[1].item() == pytest.approx(0.5, abs=1e-6)


def test_learned_criterion_needs_the_confidence_head_and_names_are_checked():
    assert exit_scores("learned", torch.zeros(2, 3), torch.tensor([0.0, 100.0])).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="confidence head"):
        exit_scores("learned", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="unknown exit criterion"):
        exit_scores("margin", torch.zeros(2, 3))


@pytest.mark.parametrize("good", [0, 1, 0.5, np.float32(0.25), np.float64(0.75), torch.tensor(0.3),
                                  torch.tensor([0.3], dtype=torch.float64)])
def test_real_numbers_in_the_unit_interval_are_thresholds_rounded_to_float32(good):
    value = check_threshold(good)
    assert isinstance(value, float) and value == float(np.float32(float(good if not torch.is_tensor(good)
                                                                         else good.item())))


@pytest.mark.parametrize("bad, error", [(-0.01, ValueError), (1.01, ValueError), (math.nan, ValueError),
                                        (math.inf, ValueError), (True, TypeError), (None, TypeError),
                                        ("0.5", TypeError), ([0.5], TypeError), (torch.tensor([0.1, 0.2]), TypeError),
                                        (1 + 2j, TypeError)])
def test_anything_else_is_refused_with_the_argument_named(bad, error):
    with pytest.raises(error, match="threshold must be a real number in \\[0, 1\\]"):
        check_threshold(bad)


def test_the_decision_is_made_in_float32_and_nan_never_exits():
    t = check_threshold(0.1)  # 0.10000000149011612: the float32 nearest to 0.1
    scores = torch.tensor([0.1, 0.1000001, float("nan"), 1.0], dtype=torch.float32)
    assert exit_decision(scores, t).tolist() == [False, True, False, True]
    # the same scores in float64 decide the same way (they are compared in float32)
    assert exit_decision(scores.double(), t).tolist() == [False, True, False, True]
    # ... and agree with a comparison after .item(), as one-by-one routing makes it
    assert [s.item() > t for s in scores] == [False, True, False, True]
    assert not exit_decision(torch.tensor([1.0]), check_threshold(1.0)).any()


def test_threshold_rule_shared_or_per_exit():
    shared, per_exit = ThresholdRule(0.5), ThresholdRule([0.5, 0.9])
    assert shared.threshold_at(0) == shared.threshold_at(5) == 0.5
    assert per_exit.threshold_at(1) == pytest.approx(0.9)
    shared.check(4)
    per_exit.check(3)
    with pytest.raises(ValueError, match="needs 3 thresholds"):
        per_exit.check(4)
    with pytest.raises(ValueError, match="one threshold per exit"):
        ThresholdRule([])
    with pytest.raises(ValueError, match=r"thresholds\[1\] must be"):
        ThresholdRule([0.5, 2.0])


def test_patience_leaves_when_consecutive_exits_agree():
    rule = PatienceRule(2)
    state = rule.initial_state(3, torch.device("cpu"))
    first = torch.tensor([[9.0, 0], [0, 9.0], [9.0, 0]])
    leave, state = rule.decide(0, first, None, state)
    assert not leave.any()  # one exit cannot agree with anything yet
    second = torch.tensor([[9.0, 0], [9.0, 0], [9.0, 0]])
    leave, state = rule.decide(1, second, None, state)
    assert leave.tolist() == [True, False, True]
    assert state[:, 1].tolist() == [2, 1, 2]
    with pytest.raises(ValueError, match="consecutive must be an int >= 2"):
        PatienceRule(1)


def test_as_rule_builds_a_threshold_rule_or_passes_a_rule_through():
    assert isinstance(as_rule(0.4, "entropy"), ThresholdRule) and as_rule(0.4, "entropy").criterion == "entropy"
    patience = PatienceRule(2)
    assert as_rule(patience) is patience
    with pytest.raises(ValueError, match="criterion inside the rule"):
        as_rule(patience, "max_softmax")


def test_a_score_needs_a_batch_of_logits():
    with pytest.raises(ValueError, match=r"logits must be a floating-point tensor of \(N, classes\) logits, got shape"):
        max_softmax(torch.randn(10))  # it failed with torch's "Dimension out of range"
    with pytest.raises(ValueError, match="logits must have at least 2 classes"):
        entropy_confidence(torch.randn(4, 1))  # 0 / log(1): NaN
    with pytest.raises(ValueError, match=r"confidence_logit must be a floating-point tensor of one logit per sample"):
        exit_scores("learned", torch.randn(4, 10), torch.randn(4, 1))
