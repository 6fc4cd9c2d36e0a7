"""The book's figures. Each function draws on a matplotlib Axes (or a new figure) and returns it.

Plotting boilerplate lives here so that the chapters show only what a figure is of.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch
from matplotlib.ticker import MaxNLocator

from .checks import check_flags, check_int, check_real, check_token_ids
from .models import IMAGE_SHAPE, EarlyExitCNN, feature_sizes
from .recipes import Ladder
from .thresholds import Sweep, ThresholdSearch


def _nonempty(name: str, values: object) -> None:
    """A ValueError naming ``name`` when there is nothing to draw (before a figure is made)."""
    if not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{name} must hold at least one thing to draw, got {values!r}")


def _axes(ax: Axes | None, size: tuple[float, float] = (6, 4)) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def image_grid(images: torch.Tensor, titles: Sequence[str], columns: int = 10, size: float = 1.1) -> Figure:
    """Grayscale images in a grid, each with a short title."""
    check_int("columns", columns)
    rows = (len(images) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * (size + 0.3)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image.squeeze().numpy(), cmap="gray_r")
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig


def examples_per_class(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                       per_class: int = 3) -> Figure:
    """The first ``per_class`` images of every class, one class per column."""
    check_int("per_class", per_class)
    labels = check_token_ids("labels", labels, len(classes), 1, "class indices")
    fewest = int(torch.bincount(labels, minlength=len(classes)).min())
    if fewest < per_class:
        raise ValueError(f"per_class is {per_class} but a class has only {fewest} image(s) among the labels")
    picks, titles = [], []
    for row in range(per_class):
        for c, name in enumerate(classes):
            picks.append(int(torch.nonzero(labels == c)[row]))
            titles.append(name if row == 0 else "")
    return image_grid(images[picks], titles, columns=len(classes))


def strip_compare(groups: dict[str, torch.Tensor], line: float | None = None, ax: Axes | None = None,
                  xlabel: str = "") -> Axes:
    """One row of jittered dots per group (e.g. the poster's confidences and ours), with a vertical line."""
    ax = _axes(ax, (7, 1 + 0.6 * len(groups)))
    rng = np.random.default_rng(0)
    for row, values in enumerate(groups.values()):
        v = values.flatten().numpy()
        ax.scatter(v, row + rng.uniform(-0.18, 0.18, len(v)), s=12, alpha=0.7)
    ax.set_yticks(range(len(groups)), list(groups))
    ax.set_ylim(-0.6, len(groups) - 0.4)
    if line is not None:
        ax.axvline(line, color="grey", linestyle=":")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return ax


def network_diagram(model: EarlyExitCNN, ax: Axes | None = None) -> Axes:
    """Boxes for the blocks along the main path and the exits branching off, with tensor shapes."""
    sizes = feature_sizes(model.channels)
    step, half = 3.0, 0.9  # distance between box centres, half a box's width
    ax = _axes(ax, (2.5 * (model.num_exits + 1), 3.0))
    ax.set_xlim(0, step * model.num_exits + 2 * half + 0.2)
    ax.set_ylim(-2.2, 0.7)
    ax.axis("off")

    def box(x, y, text, colour):
        ax.add_patch(FancyBboxPatch((x - half, y - 0.35), 2 * half, 0.7, boxstyle="round,pad=0.05",
                                    fc=colour, ec="black"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1.2))

    x = half + 0.1
    box(x, 0, "image", "white")
    shape = "x".join(map(str, IMAGE_SHAPE))
    for k, (c, h, w) in enumerate(sizes, start=1):
        nxt = x + step
        arrow(x + half + 0.05, 0, nxt - half - 0.05, 0)
        ax.text((x + nxt) / 2, 0.12, shape, ha="center", fontsize=7, color="dimgrey")
        box(nxt, 0, f"block {k}\nconv 5x5, ReLU,\nmax-pool 2x2", "#dbe9f6")
        shape = f"{c}x{h}x{w}"
        arrow(nxt, -0.42, nxt, -1.33)
        ax.text(nxt + 0.08, -0.9, shape, fontsize=7, color="dimgrey")
        last = k == model.num_exits
        box(nxt, -1.7, f"exit {k}" + ("" if last else "\n+ confidence"), "#d8f0d2" if last else "#fde2c8")
        x = nxt
    return ax


def training_curves(histories: dict[str, list[dict[str, float]]], key: str, ax: Axes | None = None,
                    ylabel: str | None = None) -> Axes:
    """One line per run: ``history[epoch][key]`` against the epoch."""
    _nonempty("histories", histories)
    for label, history in histories.items():
        if any(key not in h or "epoch" not in h for h in history):
            raise ValueError(f"histories[{label!r}] needs 'epoch' and {key!r} in every epoch's entry")
    ax = _axes(ax)
    for label, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h[key] for h in history], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    cut = ax.get_ylim()[0] > 0  # zoomed in on the data: say so on the axis
    ax.set_ylabel((ylabel or key) + (" (axis not from 0)" if cut else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def tradeoff_band(sweeps: Sequence[Sweep], x: str = "exit_fraction", label: str = "", ax: Axes | None = None,
                  scale_x: float = 1.0, color: str | None = None) -> Axes:
    """Accuracy (%) against ``x`` ("exit_fraction" or "expected_flops") for several seeds:
    the mean curve and a band from the lowest to the highest seed."""
    _nonempty("sweeps", sweeps)
    if x not in ("exit_fraction", "expected_flops"):
        raise ValueError(f"x must be 'exit_fraction' or 'expected_flops', got {x!r}")
    ax = _axes(ax)
    curves = []
    for sweep in sweeps:
        xs = getattr(sweep, x).numpy() * scale_x
        order = np.argsort(xs, kind="stable")
        curves.append((xs[order], sweep.accuracy.numpy()[order] * 100))
    grid = np.linspace(max(c[0].min() for c in curves), min(c[0].max() for c in curves), 200)
    ys = np.stack([np.interp(grid, cx, cy) for cx, cy in curves])
    line, = ax.plot(grid, ys.mean(0), label=label, color=color)
    if len(curves) > 1:
        ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.25, color=line.get_color())
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    return ax


def exit_by_class(fractions: dict[str, torch.Tensor], classes: Sequence[str], ax: Axes | None = None) -> Axes:
    """Grouped bars: share of each class leaving at exit 1, one group member per model."""
    _nonempty("fractions", fractions)
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


def score_histogram(scores: torch.Tensor, correct: torch.Tensor, ax: Axes | None = None, title: str = "",
                    bins: int = 40, xlabel: str = "exit-1 score") -> Axes:
    """Counts of an exit score for the samples the exit gets right and wrong (counts, not densities:
    the two groups keep their real sizes), on a log scale so that the small group stays visible."""
    check_int("bins", bins)
    correct = check_flags("correct", correct, ndim=1)  # 0/1 numbers would index, not mask
    scores = check_real("scores", scores, ndim=1)
    if len(scores) != len(correct):
        raise ValueError(f"{len(scores)} scores for {len(correct)} right/wrong flags")
    ax = _axes(ax)
    edges = np.linspace(0, 1, bins + 1)
    ax.hist(scores[correct].numpy(), bins=edges, alpha=0.6, label=f"right ({int(correct.sum())})")
    ax.hist(scores[~correct].numpy(), bins=edges, alpha=0.6, label=f"wrong ({int((~correct).sum())})")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images (log scale)")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def seed_points(values: dict[str, dict[str, Sequence[float]]], ax: Axes | None = None, ylabel: str = "") -> Axes:
    """A dot per seed and a bar for the mean, for each group and series (e.g. regime x exit).

    Points, not bars: the axis can then zoom on the range of the values without a bar's
    length misleading the eye (the axis does not start at 0, and says so).
    """
    _nonempty("values", values)
    ax = _axes(ax)
    groups = list(values)
    series = list(next(iter(values.values())))
    width = 0.7 / len(series)
    for i, name in enumerate(series):
        for g, group in enumerate(groups):
            ys = np.asarray(values[group][name]) * 100
            x = g + (i - (len(series) - 1) / 2) * width
            ax.scatter(np.full(len(ys), x), ys, color=f"C{i}", s=18, zorder=3, label=name if g == 0 else None)
            ax.hlines(ys.mean(), x - width / 3, x + width / 3, color=f"C{i}", lw=2.5)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(f"{ylabel} (axis not from 0)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def exit_gallery(images: torch.Tensor, scores: torch.Tensor, left_early: torch.Tensor, predictions: torch.Tensor,
                 labels: torch.Tensor, classes: Sequence[str], per_row: int = 8) -> Figure:
    """Two rows: images that left at exit 1 and images that went deep, with their exit-1 score.

    A red title marks a wrong final prediction.
    """
    check_int("per_row", per_row)
    left_early = check_flags("left_early", left_early, ndim=1)  # ~ of 0/1 numbers is not "went deep"
    early = torch.nonzero(left_early).flatten()[:per_row]
    deep = torch.nonzero(~left_early).flatten()[:per_row]
    fig, axes = plt.subplots(2, per_row, figsize=(per_row * 1.25, 3.6))
    for row, (picks, name) in enumerate(((early, "left at exit 1"), (deep, "went deep"))):
        for ax in axes[row]:
            ax.axis("off")
        for ax, i in zip(axes[row], picks.tolist()):
            ax.imshow(images[i].squeeze().numpy(), cmap="gray_r")
            right = bool(predictions[i] == labels[i])
            ax.set_title(f"{classes[int(labels[i])]}\nscore {float(scores[i]):.2f}", fontsize=7,
                         color="black" if right else "red")
        axes[row][0].text(-0.35, 0.5, name, transform=axes[row][0].transAxes, rotation=90, va="center", ha="right")
    fig.tight_layout()
    return fig


def stage_time_bars(layer_times: dict[int, dict[str, object]], ax: Axes | None = None) -> Axes:
    """Stacked bars: per-image time of each layer, one bar per batch size (times are Timing objects)."""
    _nonempty("layer_times", layer_times)
    ax = _axes(ax, (8, 4))
    batch_sizes = list(layer_times)
    names = list(layer_times[batch_sizes[0]])
    bottom = np.zeros(len(batch_sizes))
    for i, name in enumerate(names):
        heights = np.array([layer_times[b][name].median * 1e6 for b in batch_sizes])
        hatch = "//" if "pool" in name or "ReLU" in name else None
        ax.bar(range(len(batch_sizes)), heights, bottom=bottom, label=name, color=f"C{i % 10}", hatch=hatch,
               edgecolor="white")
        bottom += heights
    ax.set_xticks(range(len(batch_sizes)), [f"batch {b}" for b in batch_sizes])
    ax.set_ylabel("µs per image")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return ax


def speedup_vs_batch(series: dict[str, Sequence[tuple[int, object]]], ax: Axes | None = None,
                     ideal: Sequence[tuple[int, float]] | None = None) -> Axes:
    """Speedup against batch size, one line per series, with each point's 95% interval as an error bar.

    ``series[name]`` holds ``(batch size, Interval)`` pairs (speed ratios); ``ideal`` an optional dashed reference.
    """
    ax = _axes(ax, (7, 4))
    for i, (name, points) in enumerate(series.items()):
        xs = np.array([b for b, _ in points]) * (1 + 0.04 * (i - len(series) / 2))  # side by side
        med = np.array([r.estimate for _, r in points])
        err = np.array([[r.estimate - r.low for _, r in points], [r.high - r.estimate for _, r in points]])
        ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=name)
    if ideal:
        ax.plot([b for b, _ in ideal], [v for _, v in ideal], "k--", label="FLOPs-ideal")
    ax.axhline(1, color="grey", linewidth=0.8)
    ax.set_xscale("log", base=2)
    sizes = sorted({b for points in series.values() for b, _ in points})
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("speedup over the full network")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def threshold_search_map(search: ThresholdSearch, budget: float, ax: Axes | None = None) -> Axes:
    """Accuracy of every (exit-1, exit-2) threshold pair as a map; pairs over the FLOPs budget greyed out."""
    if len(search.grids) != 2:
        raise ValueError("the map shows a search over exactly two thresholds (a three-exit network)")
    ax = _axes(ax, (6, 5))
    accuracy = search.accuracy.numpy() * 100
    shown = np.where(search.expected_flops.numpy() <= budget, accuracy, np.nan)
    image = ax.imshow(shown.T, origin="lower", aspect="auto", cmap="viridis")
    ax.imshow(np.where(np.isnan(shown), 1.0, np.nan).T, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=3)
    chosen = search.best(budget)
    best = [int(torch.nonzero(g == torch.tensor(b, dtype=g.dtype))[0]) for g, b in zip(search.grids, chosen)]
    ax.plot(*best, marker="*", color="red", markersize=16, linestyle="none", label="best within budget")
    for axis, grid in (("x", search.grids[0]), ("y", search.grids[1])):
        ticks = np.unique(np.linspace(0, len(grid) - 1, 5).round().astype(int))
        # enough decimals that no two ticks read the same (quantile thresholds crowd near 1)
        digits = next(d for d in range(2, 7) if len({f"{float(grid[t]):.{d}f}" for t in ticks}) == len(ticks))
        getattr(ax, f"set_{axis}ticks")(ticks, [f"{float(grid[t]):.{digits}f}" for t in ticks])
    ax.set_xlabel("exit-1 threshold (grid position: quantiles of the scores)")
    ax.set_ylabel("exit-2 threshold")
    plt.colorbar(image, ax=ax, label="validation accuracy (%)")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor=plt.get_cmap("Greys")(1 / 3), label="over the FLOPs budget"))
    ax.legend(handles=handles, fontsize="small", loc="upper left")
    return ax


def seed_errorbar(ax: Axes, xs: Sequence[float], ys: Sequence[float], label: str, marker: str = "o") -> Axes:
    """One point at the mean of several seeds' (x, y), with bars from the lowest to the highest seed."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if xs.shape != ys.shape or xs.size == 0:
        raise ValueError(f"need as many x as y values (at least one), got {xs.size} and {ys.size}")
    x, y = xs.mean(), ys.mean()
    spread = lambda v, m: [[max(m - v.min(), 0.0)], [max(v.max() - m, 0.0)]]  # noqa: E731 - rounding
    ax.errorbar([x], [y], xerr=spread(xs, x), yerr=spread(ys, y),
                marker=marker, markersize=9, linestyle="none", capsize=3, label=label)
    return ax


def ladder(ladder: Ladder, chosen: int, ax: Axes | None = None, scale: float = 100.0,
           ylabel: str = "validation accuracy (%)") -> Axes:
    """A recipe's training-length ladder: each metric's seeds as dots, their mean as a line, the
    mean over metrics dashed, and the chosen length marked."""
    ax = _axes(ax, (6.5, 3.8))
    lengths = ladder.lengths
    metrics = list(ladder.scores[lengths[0]])
    for metric in metrics:
        line, = ax.plot(lengths, [np.mean(ladder.scores[n][metric]) * scale for n in lengths], marker="o",
                        label=metric)
        for n in lengths:
            values = np.asarray(ladder.scores[n][metric]) * scale
            ax.scatter([n] * len(values), values, s=12, color=line.get_color(), alpha=0.5)
    ax.plot(lengths, [ladder.mean(n) * scale for n in lengths], linestyle="--", color="grey",
            label="mean of the exits")
    ax.axvline(chosen, color="black", linewidth=1)
    ax.text(chosen, 0.97, f" chosen: {chosen} {ladder.unit}", transform=ax.get_xaxis_transform(), va="top",
            fontsize="small")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.set_xlabel(f"training length ({ladder.unit}, one run each)")
    ax.set_ylabel(ylabel + " (axis not from 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    return ax
