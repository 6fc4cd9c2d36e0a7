"""Batched early-exit routing gives exactly what one-sample-at-a-time routing gives."""

import pytest
import torch

from earlyexit.exits import exit_scores
from earlyexit.inference import compute_all_then_mask, route_batch, route_one_by_one
from earlyexit.models import EarlyExitCNN


@pytest.fixture
def model_and_batch():
    torch.manual_seed(0)
    model = EarlyExitCNN().eval()
    with torch.no_grad():  # sharpen exit 1 so that its scores spread over [0.1, 1]
        model.exit1[1].weight.mul_(40)
    return model, torch.randn(64, 1, 28, 28)


@torch.no_grad()
def median_score(model, images, criterion):
    out = model(images)
    return float(exit_scores(criterion, out.exit_logits[0], out.confidence_logit).median())


def assert_same(a, b):
    assert torch.equal(a.predictions, b.predictions)
    assert torch.equal(a.exit_index, b.exit_index)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("criterion", ["max_softmax", "entropy", "learned"])
@pytest.mark.parametrize("which", ["none exit", "some exit", "all exit"])
def test_batched_routing_equals_one_by_one(model_and_batch, criterion, which):
    model, images = model_and_batch
    threshold = {"none exit": 1.0, "all exit": 0.0, "some exit": median_score(model, images, criterion)}[which]
    batched = route_batch(model, images, threshold, criterion)
    assert_same(batched, route_one_by_one(model, images, threshold, criterion))
    assert_same(batched, compute_all_then_mask(model, images, threshold, criterion))
    exited = int((batched.exit_index == 0).sum())
    assert {"none exit": exited == 0, "all exit": exited == 64, "some exit": 0 < exited < 64}[which]


def test_results_come_back_in_batch_order(model_and_batch):
    model, images = model_and_batch
    threshold = median_score(model, images, "max_softmax")
    out = model(images)
    result = route_batch(model, images, threshold)
    expected = torch.where(result.exit_index[:, None] == 0, out.exit_logits[0], out.exit_logits[1])
    torch.testing.assert_close(result.logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [0, 1])
def test_tiny_batches(model_and_batch, size):
    model, images = model_and_batch
    for threshold in (0.0, 1.0):
        batched = route_batch(model, images[:size], threshold)
        assert batched.predictions.shape == (size,) and batched.logits.shape == (size, 10)
        assert_same(batched, route_one_by_one(model, images[:size], threshold))


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "0.5"])
def test_threshold_outside_unit_interval_is_rejected(model_and_batch, threshold):
    model, images = model_and_batch
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\]"):
        route_batch(model, images, threshold)


def test_nan_input_is_rejected(model_and_batch):
    model, images = model_and_batch
    images = images.clone()
    images[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(1 of 64 samples\)"):
        route_batch(model, images, 0.5)


def test_wrong_shape_is_rejected(model_and_batch):
    model, images = model_and_batch
    with pytest.raises(ValueError, match="4-D batch"):
        route_batch(model, images[0], 0.5)
