"""The book's figures. Each function draws on a matplotlib Axes and returns it."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from .exits import OperatingPoint, Sweep


def _axes(ax: Axes | None) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=(6, 4))[1]


def training_curves(histories: dict[str, list[dict[str, float]]], key: str, ax: Axes | None = None,
                    ylabel: str | None = None) -> Axes:
    """One line per run: ``history[epoch][key]`` against the epoch."""
    ax = _axes(ax)
    for label, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h[key] for h in history], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel or key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def tradeoff_band(sweeps: Sequence[Sweep], x: str = "exit_fraction", label: str = "", ax: Axes | None = None,
                  scale_x: float = 1.0, color: str | None = None) -> Axes:
    """Accuracy against ``x`` ("exit_fraction" or "expected_flops") for several seeds:
    the mean curve and a band from the lowest to the highest seed."""
    ax = _axes(ax)
    curves = []
    for sweep in sweeps:
        xs = getattr(sweep, x).numpy() * scale_x
        order = np.argsort(xs, kind="stable")
        curves.append((xs[order], sweep.accuracy.numpy()[order] * 100))
    lo = max(c[0].min() for c in curves)
    hi = min(c[0].max() for c in curves)
    grid = np.linspace(lo, hi, 200)
    ys = np.stack([np.interp(grid, cx, cy) for cx, cy in curves])
    line, = ax.plot(grid, ys.mean(0), label=label, color=color)
    ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.25, color=line.get_color())
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    return ax


def mark_point(point: OperatingPoint, x: str = "exit_fraction", ax: Axes | None = None, scale_x: float = 1.0,
               label: str = "chosen on validation", **style) -> Axes:
    """Mark one operating point on a trade-off plot."""
    ax = _axes(ax)
    ax.plot(getattr(point, x) * scale_x, point.accuracy * 100, marker=style.pop("marker", "*"),
            markersize=style.pop("markersize", 14), linestyle="none", label=label, **style)
    return ax


def exit_by_class(fractions: dict[str, torch.Tensor], classes: Sequence[str], ax: Axes | None = None) -> Axes:
    """Grouped bars: share of each class leaving at exit 1, one group member per model."""
    ax = _axes(ax)
    width = 0.8 / len(fractions)
    positions = np.arange(len(classes))
    for i, (label, values) in enumerate(fractions.items()):
        ax.bar(positions + i * width - 0.4 + width / 2, np.asarray(values) * 100, width, label=label)
    ax.set_xticks(positions, classes, rotation=40, ha="right")
    ax.set_ylabel("leave at exit 1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small", ncols=len(fractions), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def confidence_histogram(scores: torch.Tensor, correct: torch.Tensor, ax: Axes | None = None,
                         title: str = "", bins: int = 40) -> Axes:
    """Histograms of an exit score for the samples the exit gets right and wrong."""
    ax = _axes(ax)
    edges = np.linspace(0, 1, bins + 1)
    ax.hist(scores[correct].numpy(), bins=edges, alpha=0.6, label="exit 1 right", density=True)
    ax.hist(scores[~correct].numpy(), bins=edges, alpha=0.6, label="exit 1 wrong", density=True)
    ax.set_xlabel("exit-1 score")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def per_exit_accuracy(accuracies: dict[str, Sequence[Sequence[float]]], ax: Axes | None = None) -> Axes:
    """Bars of each exit's accuracy per training regime: mean over seeds, with min-max whiskers.

    ``accuracies[regime]`` holds one ``(exit 1, exit 2)`` pair per seed.
    """
    ax = _axes(ax)
    names = list(accuracies)
    width = 0.38
    for exit_index in range(2):
        values = np.array([[pair[exit_index] * 100 for pair in accuracies[name]] for name in names])
        mean = values.mean(1)
        positions = np.arange(len(names)) + (exit_index - 0.5) * width
        ax.bar(positions, mean, width, label=f"exit {exit_index + 1}",
               yerr=[mean - values.min(1), values.max(1) - mean], capsize=4)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("test accuracy (%)")
    low = min(min(min(p) for p in runs) for runs in accuracies.values()) * 100
    ax.set_ylim(low - 1.5, None)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return ax
