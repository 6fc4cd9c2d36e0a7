"""The book's operating point: one model, its threshold chosen on validation to spend the budget,
and the accuracy gap judged on test."""

import pytest
import torch

from earlyexit.operating_point import book_operating_point
from earlyexit.training import TrainConfig

FAST = TrainConfig(epochs=1, batch_size=50)


def test_the_threshold_is_chosen_on_validation_to_spend_the_budget(tiny_splits, tmp_path, monkeypatch):
    monkeypatch.setenv("EARLYEXIT_HOME", str(tmp_path))
    point = book_operating_point(tiny_splits, FAST, budget_share=0.5, progress=False)
    early, deep = point.exit_costs
    assert point.val.num_exits == point.test.num_exits == 2
    assert point.chosen.val.expected_flops <= 0.5 * point.full_flops + 1e-6
    assert point.rule.thresholds == (point.chosen.threshold,)
    # the gap is early exit against the final exit on the same test images
    gap = point.accuracy_gap()
    leaves = point.test.scores("max_softmax") > point.chosen.threshold
    early_exit = torch.where(leaves, point.test.correct(1), point.test.correct(2))
    expected = float(early_exit.float().mean() - point.test.correct(2).float().mean())
    assert gap.estimate == pytest.approx(expected)


@pytest.mark.parametrize("settings, message", [
    (dict(budget_share=0.0), "budget_share"), (dict(budget_share=1.5), "budget_share"),
    (dict(config=TrainConfig(channels=(8, 8, 8), epochs=1)), "two exits"),
])
def test_an_operating_point_it_cannot_define_is_refused(tiny_splits, tmp_path, monkeypatch, settings, message):
    monkeypatch.setenv("EARLYEXIT_HOME", str(tmp_path))
    with pytest.raises((ValueError, TypeError), match=message):
        book_operating_point(tiny_splits, **{"config": FAST, "progress": False, **settings})
