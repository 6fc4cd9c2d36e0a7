"""The skeptic's alternatives: static networks on the accuracy-cost plane (Chapter 6).

A static network runs the same layers for every image, so its cost is one number: the FLOPs
of its plain path (:func:`static_cost`). Trained with the book's recipe over several seeds,
each one is a point with a spread. Early exit is worth its complexity only where it beats the
**best** of them at the same cost, not a weakened one, so:

* :func:`pareto_front` keeps the networks no other network beats on both cost and accuracy;
* :func:`best_within` picks the strongest network a budget allows, by *validation*
  accuracy, so that the comparison on test does not judge a choice made on test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .checks import check_finite, check_number, check_type
from .flops import exit_costs, full_network_flops
from .models import EarlyExitCNN
from .training import TrainConfig


def static_cost(config: TrainConfig) -> int:
    """FLOPs per image of the static network ``config`` trains: its plain path up to the last exit
    with a loss (a one-block network, exit weights ``(1, 0)``, stops at exit 1)."""
    check_type("config", config, TrainConfig, "a TrainConfig")
    last = max(k for k, w in enumerate(config.exit_weights) if w > 0)
    model = EarlyExitCNN(config.channels)
    if last == model.num_exits - 1:
        return full_network_flops(model)
    return exit_costs(model, None)[last]


@dataclass(frozen=True)
class StaticNetwork:
    """One static architecture: its name, its cost, and its accuracy per seed on validation and test."""

    name: str
    flops: int
    val: tuple[float, ...]
    test: tuple[float, ...]

    def __post_init__(self) -> None:
        check_number("flops", self.flops, open_low=True)
        for split in ("val", "test"):
            values = check_finite(split, list(getattr(self, split)))
            if len(values) == 0 or ((values < 0) | (values > 1)).any():
                raise ValueError(f"{self.name}: {split} must hold one accuracy in [0, 1] per seed")
        if len(self.val) != len(self.test):
            raise ValueError(f"{self.name}: {len(self.val)} validation and {len(self.test)} test accuracies")

    @property
    def val_mean(self) -> float:
        return float(torch.tensor(self.val, dtype=torch.float64).mean())

    @property
    def test_mean(self) -> float:
        return float(torch.tensor(self.test, dtype=torch.float64).mean())


def pareto_front(networks: Sequence[StaticNetwork], split: str = "val") -> list[StaticNetwork]:
    """The networks that no other is at least as cheap *and* more accurate than (mean over seeds on
    ``split``), from the cheapest."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    mean = (lambda n: n.val_mean) if split == "val" else (lambda n: n.test_mean)  # noqa: E731
    front, best = [], -1.0
    for network in sorted(networks, key=lambda n: (n.flops, -mean(n))):
        if mean(network) > best:
            front.append(network)
            best = mean(network)
    return front


def best_within(networks: Sequence[StaticNetwork], budget: float) -> StaticNetwork:
    """The static network with the highest mean validation accuracy among those costing at most
    ``budget`` FLOPs (ties: the cheaper); a ValueError when none fits."""
    budget = check_number("budget", budget)
    fitting = [n for n in networks if n.flops <= budget]
    if not fitting:
        cheapest = min((n.flops for n in networks), default=None)
        raise ValueError(f"no static network costs at most {budget:,.0f} FLOPs (the cheapest: {cheapest})")
    return max(fitting, key=lambda n: (n.val_mean, -n.flops))
