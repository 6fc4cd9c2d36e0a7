"""Every figure function draws without error on small inputs (the notebooks show what they look like)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from earlyexit import plots  # noqa: E402
from earlyexit.calibration import search_thresholds, sweep_thresholds  # noqa: E402
from earlyexit.evaluation import collect  # noqa: E402
from earlyexit.models import EarlyExitCNN  # noqa: E402
from earlyexit.timing import Ratio, Timing  # noqa: E402
from helpers import sharpened_model  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_image_figures():
    images, labels = torch.rand(40, 1, 28, 28), torch.arange(40) % 10
    assert len(plots.examples_per_class(images, labels, [f"c{i}" for i in range(10)], per_class=2).axes) == 20
    scores, left = torch.rand(40), torch.arange(40) % 3 == 0
    plots.exit_gallery(images, scores, left, labels, labels, [f"c{i}" for i in range(10)], per_row=4)


def test_diagram_strips_and_histograms():
    plots.network_diagram(EarlyExitCNN((16, 32, 32)))
    plots.strip_compare({"poster": torch.rand(100), "ours": torch.rand(100)}, line=0.5)
    plots.score_histogram(torch.rand(100), torch.rand(100) < 0.9)
    plots.seed_points({"joint": {"exit 1": [0.9, 0.91], "exit 2": [0.92, 0.93]},
                       "masked": {"exit 1": [0.9, 0.9], "exit 2": [0.91, 0.92]}})
    plots.exit_by_class({"a": torch.rand(10)}, [f"c{i}" for i in range(10)])
    plots.training_curves({"run": [{"epoch": 1, "x": 0.5}, {"epoch": 2, "x": 0.6}]}, "x")


def test_tradeoff_and_timing_figures():
    sweep = sweep_thresholds(torch.rand(50), torch.rand(50) < 0.8, torch.rand(50) < 0.9, 1.0, 10.0)
    ax = plots.tradeoff_band([sweep, sweep], "expected_flops")
    plots.mark_point(sweep.point(3), "expected_flops", ax)
    timing = Timing((1e-5, 1.1e-5, 0.9e-5))
    plots.stage_time_bars({1: {"block 1: conv": timing, "block 1: max-pool": timing},
                           16: {"block 1: conv": timing, "block 1: max-pool": timing}})
    plots.speedup_vs_batch({"early exit": [(1, Ratio((1.1, 1.2, 1.3))), (16, Ratio((1.5, 1.6, 1.7)))]},
                           ideal=[(1, 3.0), (16, 3.0)])


def test_threshold_search_map():
    model = sharpened_model((8, 8, 8))
    record = collect(model, torch.randn(60, 1, 28, 28), torch.randint(0, 10, (60,)))
    search = search_thresholds(record, "max_softmax", (1.0, 2.0, 3.0), count=5)
    plots.threshold_search_map(search, 2.5)
