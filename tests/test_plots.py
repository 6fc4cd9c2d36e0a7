"""Every figure function draws what it says, from the data it is given (the notebooks show what they look like)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

from earlyexit import plots  # noqa: E402
from earlyexit.evaluation import ExitRecord, collect  # noqa: E402
from earlyexit.models import EarlyExitCNN  # noqa: E402
from earlyexit.stats import Interval  # noqa: E402
from earlyexit.thresholds import search_thresholds, sweep_thresholds  # noqa: E402
from earlyexit.timing import Timing  # noqa: E402
from helpers import sharpened_model  # noqa: E402

CLASSES = [f"c{i}" for i in range(10)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_image_figures_show_one_titled_image_per_pick():
    images, labels = torch.rand(40, 1, 28, 28), torch.arange(40) % 10
    fig = plots.examples_per_class(images, labels, CLASSES, per_class=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 20 and [ax.get_title() for ax in shown[:10]] == CLASSES
    np.testing.assert_allclose(shown[0].images[0].get_array(), images[0, 0].numpy())
    scores, left = torch.rand(40), torch.arange(40) % 3 == 0
    predictions = labels.clone()
    predictions[2] = (labels[2] + 1) % 10  # image 2 went deep (second in that row) and is wrong: a red title
    fig = plots.exit_gallery(images, scores, left, predictions, labels, CLASSES, per_row=4)
    titled = [ax for ax in fig.axes if ax.images]
    assert len(titled) == 8
    deep = [ax for ax in fig.axes[4:] if ax.images]
    assert deep[1].get_title() == f"c2\nscore {float(scores[2]):.2f}" and deep[1].title.get_color() == "red"
    assert deep[0].title.get_color() == "black"


def test_network_diagram_draws_a_block_and_an_exit_per_stage():
    ax = plots.network_diagram(EarlyExitCNN((16, 32, 32)))
    texts = [t.get_text() for t in ax.texts]
    assert sum(t.startswith("block ") for t in texts) == 3 and sum(t.startswith("exit ") for t in texts) == 3
    assert "16x14x14" in texts and "32x3x3" in texts


def test_strips_and_histograms_plot_every_value():
    groups = {"poster": torch.rand(100), "ours": torch.rand(30)}
    ax = plots.strip_compare(groups, line=0.5)
    assert [len(c.get_offsets()) for c in ax.collections] == [100, 30]
    np.testing.assert_allclose(ax.collections[1].get_offsets()[:, 0], groups["ours"].numpy())
    scores, right = torch.rand(100), torch.rand(100) < 0.9
    ax = plots.score_histogram(scores, right)
    heights = [sum(p.get_height() for p in container) for container in ax.containers]
    assert heights == [int(right.sum()), int((~right).sum())] and ax.get_yscale() == "log"


def test_seed_points_bars_and_curves_put_each_value_where_it_belongs():
    ax = plots.seed_points({"joint": {"exit 1": [0.9, 0.91], "exit 2": [0.92, 0.93]},
                            "masked": {"exit 1": [0.9, 0.9], "exit 2": [0.91, 0.92]}})
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    ys = sorted(float(y) for c in dots for y in c.get_offsets()[:, 1])
    assert ys == pytest.approx(sorted([90, 91, 92, 93, 90, 90, 91, 92]))
    ax = plots.exit_by_class({"a": torch.full((10,), 0.5), "b": torch.linspace(0, 1, 10)}, CLASSES)
    assert [round(p.get_height(), 6) for p in ax.containers[1]] == pytest.approx((torch.linspace(0, 1, 10) * 100)
                                                                                 .tolist())
    ax = plots.training_curves({"run": [{"epoch": 1, "x": 0.5}, {"epoch": 2, "x": 0.6}]}, "x")
    assert list(ax.lines[0].get_ydata()) == [0.5, 0.6] and list(ax.lines[0].get_xdata()) == [1, 2]


def test_tradeoff_band_spans_the_lowest_and_highest_seed():
    g = torch.Generator().manual_seed(0)
    sweeps = [sweep_thresholds(torch.rand(50, generator=g), torch.rand(50, generator=g) < 0.8,
                               torch.rand(50, generator=g) < 0.9, 1.0, 10.0) for _ in range(2)]
    ax = plots.tradeoff_band(sweeps, "expected_flops")
    assert len(ax.lines) == 1 and len(ax.collections) == 1  # the mean line and the band
    top = max(float(s.accuracy.max()) for s in sweeps) * 100
    assert ax.collections[0].get_paths()[0].vertices[:, 1].max() <= top + 1e-9


def test_timing_figures_stack_layers_and_draw_intervals():
    timing = Timing((1e-5, 1.1e-5, 0.9e-5))
    ax = plots.stage_time_bars({1: {"block 1: conv": timing, "block 1: max-pool": timing},
                                16: {"block 1: conv": timing, "block 1: max-pool": timing}})
    assert [p.get_height() for p in ax.containers[1]] == pytest.approx([10.0, 10.0])
    assert [p.get_y() for p in ax.containers[1]] == pytest.approx([10.0, 10.0])  # stacked on the conv
    ax = plots.speedup_vs_batch({"early exit": [(1, Interval(1.2, 1.1, 1.3, 1.0)), (16, Interval(1.6, 1.5, 1.7, 1.0))]},
                                ideal=[(1, 3.0), (16, 3.0)])
    assert list(ax.lines[0].get_ydata()) == pytest.approx([1.2, 1.6])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["FLOPs-ideal", "early exit"]


def test_threshold_search_map_marks_the_best_pair_within_the_budget():
    model = sharpened_model((8, 8, 8))
    record = collect(model, torch.randn(60, 1, 28, 28), torch.randint(0, 10, (60,)))
    search = search_thresholds(record, "max_softmax", (1.0, 2.0, 3.0), count=5)
    ax = plots.threshold_search_map(search, 2.5)
    best = search.best(2.5)
    x, y = ax.lines[0].get_xdata()[0], ax.lines[0].get_ydata()[0]
    assert (float(search.grids[0][int(x)]), float(search.grids[1][int(y)])) == pytest.approx(best)
    with pytest.raises(ValueError, match="exactly two thresholds"):
        two_exits = ExitRecord(record.exit_logits[:2], record.confidence_logits[:1], record.labels)
        plots.threshold_search_map(search_thresholds(two_exits, "max_softmax", (1.0, 2.0), count=5), 2.5)


def test_seed_errorbar_marks_the_mean_with_bars_to_the_extremes():
    fig, ax = plt.subplots()
    plots.seed_errorbar(ax, [1.0, 2.0, 3.0], [90.0, 91.0, 95.0], "static", marker="s")
    line = ax.lines[0]
    assert list(line.get_xdata()) == [2.0] and list(line.get_ydata()) == pytest.approx([92.0])
    bars = [segment for collection in ax.collections for segment in collection.get_segments()]
    spans = sorted((float(s[:, 0].min()), float(s[:, 0].max()), float(s[:, 1].min()), float(s[:, 1].max()))
                   for s in bars)
    assert (1.0, 3.0, 92.0, 92.0) in spans and (2.0, 2.0, 90.0, 95.0) in spans
    with pytest.raises(ValueError, match="as many x as y"):
        plots.seed_errorbar(ax, [1.0], [1.0, 2.0], "bad")


def test_seed_errorbar_takes_identical_values_whose_mean_rounds_off():
    fig, ax = plt.subplots()
    plots.seed_errorbar(ax, [1.424920] * 3, [0.1, 0.2, 0.7], "same cost")  # mean(x) may round below min(x)
    assert list(ax.lines[0].get_xdata()) == pytest.approx([1.424920])  # drawn, no negative-bar error


def test_right_wrong_flags_given_as_0_and_1_mask_the_samples_rather_than_index_them():
    scores, right = torch.linspace(0.05, 0.95, 10), torch.tensor([1, 1, 1, 0, 1, 1, 1, 1, 0, 1])
    ax = plots.score_histogram(scores, right)  # scores[right] picked samples 0 and 1, ten times over
    heights = [sum(p.get_height() for p in container) for container in ax.containers]
    assert heights == [8, 2]
    with pytest.raises(ValueError, match="correct must hold one right/wrong flag per sample"):
        plots.score_histogram(scores, torch.arange(10))
    images, labels = torch.rand(10, 1, 28, 28), torch.arange(10)
    left = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    fig = plots.exit_gallery(images, scores, left, labels, labels, CLASSES, per_row=4)
    deep = [ax.get_title() for ax in fig.axes[4:] if ax.images]  # ~1 is -2, not False: image 0 went deep too
    assert deep == [f"c{i}\nscore {float(scores[i]):.2f}" for i in (1, 2, 3, 4)]


def test_too_few_images_of_a_class_are_refused_by_name():
    images, labels = torch.rand(12, 1, 28, 28), torch.arange(12) % 10
    with pytest.raises(ValueError, match="per_class is 2 but a class has only 1 image"):
        plots.examples_per_class(images, labels, CLASSES, per_class=2)  # an IndexError inside


def test_nothing_to_draw_or_an_unknown_axis_is_refused_by_name():
    with pytest.raises(ValueError, match="sweeps must hold at least one thing to draw"):
        plots.tradeoff_band([])  # max() of an empty sequence
    sweep = sweep_thresholds(torch.rand(20), torch.rand(20) < 0.5, torch.rand(20) < 0.8, 1.0, 2.0)
    with pytest.raises(ValueError, match="x must be 'exit_fraction' or 'expected_flops', got 'accuracy'"):
        plots.tradeoff_band([sweep], x="accuracy")
    with pytest.raises(ValueError, match="values must hold at least one thing to draw"):
        plots.seed_points({})  # StopIteration
    with pytest.raises(ValueError, match=r"histories\['a'\] needs 'epoch' and 'loss'"):
        plots.training_curves({"a": [{"epoch": 1, "accuracy": 0.9}]}, "loss")
