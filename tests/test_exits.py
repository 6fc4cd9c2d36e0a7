"""Exit criteria and threshold calibration, on scores where the right answer is known."""

import math

import pytest
import torch

from earlyexit.exits import (choose_threshold, entropy_confidence, evaluate_threshold, exit_scores, max_softmax,
                             sweep_thresholds)


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


def test_learned_criterion_needs_the_confidence_head_and_names_are_checked():
    assert exit_scores("learned", torch.zeros(2, 3), torch.tensor([0.0, 100.0])).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="confidence head"):
        exit_scores("learned", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="unknown exit criterion"):
        exit_scores("margin", torch.zeros(2, 3))


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
    sweep = sweep_thresholds(scores, early, final, early_flops=1.0, full_flops=10.0, thresholds=torch.tensor([0.0, 0.5, 1.0]))
    assert sweep.exit_fraction.tolist() == [1.0, 0.5, 0.0]
    assert sweep.accuracy.tolist() == pytest.approx([0.6, 1.0, 0.9])
    assert sweep.expected_flops.tolist() == pytest.approx([1.0, 5.5, 10.0])


def test_accuracy_floor_picks_the_cheapest_threshold_that_keeps_it(known_scores):
    scores, early, final = known_scores
    sweep = sweep_thresholds(scores, early, final, 1.0, 10.0)
    point = choose_threshold(sweep, min_accuracy=1.0)
    # samples 4..9 may exit (all right early), 0..3 must go on: 60% exit
    assert point.exit_fraction == pytest.approx(0.6) and point.accuracy == 1.0
    assert scores[3] <= point.threshold < scores[4]


def test_flops_budget_picks_the_most_accurate_threshold_that_fits(known_scores):
    scores, early, final = known_scores
    sweep = sweep_thresholds(scores, early, final, 1.0, 10.0)
    point = choose_threshold(sweep, max_flops=2.0)  # at most ~1/9 may go on -> only 1 sample
    assert point.expected_flops <= 2.0
    assert point.exit_fraction == pytest.approx(0.9) and point.accuracy == pytest.approx(0.7)


def test_impossible_targets_fail_clearly(known_scores):
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


def test_markdown_table_and_mean_spread():
    from earlyexit.report import markdown_table, mean_spread

    table = markdown_table(["a", "b"], [[1, "**x**"], [2, "<y>"]])
    assert table._repr_markdown_().splitlines() == ["| a | b |", "|---|---|", "| 1 | **x** |", "| 2 | <y> |"]
    assert "<td><strong>x</strong></td>" in table._repr_html_() and "<td>&lt;y&gt;</td>" in table._repr_html_()
    assert mean_spread([0.90, 0.92]) == "91.00 ± 1.41"
    with pytest.raises(ValueError, match="2 cells"):
        markdown_table(["a", "b"], [[1]])


def test_fit_temperature_recovers_a_known_temperature():
    from earlyexit.exits import fit_temperature

    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 5, generator=g) * 2
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.05)


def test_expected_calibration_error_is_zero_when_calibrated_and_the_gap_otherwise():
    from earlyexit.metrics import expected_calibration_error

    correct = torch.tensor([True, True, True, False] * 25)
    assert expected_calibration_error(torch.full((100,), 0.75), correct) == pytest.approx(0.0, abs=1e-6)
    assert expected_calibration_error(torch.full((100,), 0.95), correct) == pytest.approx(0.2, abs=1e-6)


def test_sweep_agrees_with_counting_each_threshold_directly():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(500, generator=g).round(decimals=2)  # ties on purpose
    early, final = torch.rand(500, generator=g) < 0.8, torch.rand(500, generator=g) < 0.9
    sweep = sweep_thresholds(scores, early, final, 1.0, 10.0)
    for t, fraction, accuracy in zip(sweep.thresholds, sweep.exit_fraction, sweep.accuracy):
        exits = scores.double() > t
        assert float(fraction) == pytest.approx(float(exits.double().mean()))
        assert float(accuracy) == pytest.approx(float(torch.where(exits, early, final).double().mean()))
