"""The book's operating point, defined once: the standard model, with the max-softmax threshold
chosen on validation to spend :data:`~earlyexit.thresholds.BUDGET_SHARE` of the full
network's FLOPs (Chapter 5). Chapters 7-9 and both benchmarks start from it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_number, check_type
from .data import Splits
from .evaluation import ExitRecord, collect
from .exits import ThresholdRule
from .flops import exit_costs, full_network_flops
from .models import EarlyExitCNN
from .stats import Interval, mcnemar
from .thresholds import BUDGET_SHARE, ChosenPoint, choose_on_validation
from .training import TrainConfig, train_cached


@dataclass(frozen=True)
class BookOperatingPoint:
    """A trained model, its exit costs, its validation and test records, and the chosen threshold."""

    model: EarlyExitCNN
    exit_costs: tuple[int, ...]
    full_flops: int
    val: ExitRecord
    test: ExitRecord
    chosen: ChosenPoint

    @property
    def rule(self) -> ThresholdRule:
        return ThresholdRule(self.chosen.threshold, self.chosen.criterion)

    def accuracy_gap(self) -> Interval:
        """Early exit's test accuracy minus the full network's, paired on the same images (McNemar)."""
        leaves = self.test.scores(self.chosen.criterion) > self.chosen.threshold
        early_exit = torch.where(leaves, self.test.correct(1), self.test.correct(2))
        return mcnemar(early_exit, self.test.correct(2))


def book_operating_point(data: Splits, config: TrainConfig | None = None,
                         budget_share: float = BUDGET_SHARE, progress: bool | None = None) -> BookOperatingPoint:
    """Train (or load) ``config``'s two-exit model and choose its threshold on validation to spend
    ``budget_share`` of the full network's FLOPs."""
    config = TrainConfig() if config is None else check_type("config", config, TrainConfig, "a TrainConfig")
    budget_share = check_number("budget_share", budget_share, 0.0, 1.0, open_low=True)
    model = train_cached(config, data, progress).model
    if model.num_exits != 2:
        raise ValueError(f"the operating point is defined for two exits, got a model with {model.num_exits}")
    costs, full = exit_costs(model), full_network_flops(model)
    val = collect(model, data.val_images, data.val_labels)
    test = collect(model, data.test_images, data.test_labels)
    chosen = choose_on_validation(val, test, "max_softmax", *costs, target_flops=budget_share * full)
    return BookOperatingPoint(model, costs, full, val, test, chosen)
