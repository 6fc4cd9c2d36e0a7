"""The fast inference path changes the speed, never the answers."""

import pytest
import torch
import torch.nn.functional as F

from earlyexit.fast import FastEarlyExit, max_pool_2x2
from earlyexit.inference import route_batch
from earlyexit.models import EarlyExitCNN


def test_strided_maxima_equal_max_pool_and_commute_with_relu():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 28, 28)
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))
    assert torch.equal(max_pool_2x2(x).relu(), F.max_pool2d(x.relu(), 2))


@pytest.fixture
def model_and_images():
    torch.manual_seed(0)
    model = EarlyExitCNN().eval()
    with torch.no_grad():
        model.exit1[1].weight.mul_(40)
    return model, torch.randn(300, 1, 28, 28)


@pytest.mark.parametrize("criterion", ["max_softmax", "entropy", "learned"])
@pytest.mark.parametrize("threshold", [0.0, 0.6, 0.9, 1.0])
def test_fast_path_gives_the_reference_predictions_and_exits(model_and_images, criterion, threshold):
    model, images = model_and_images
    fast = FastEarlyExit(model, threshold, criterion)
    for batch in (images, images[:16], images[:1], images[7:8]):
        expected, got = route_batch(model, batch, threshold, criterion), fast(batch)
        assert torch.equal(got.predictions, expected.predictions)
        assert torch.equal(got.exit_index, expected.exit_index)
        torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=1e-4)


def test_fast_full_network_matches_the_model(model_and_images):
    model, images = model_and_images
    fast = FastEarlyExit(model, 0.5)
    with torch.no_grad():
        expected = model(images).exit_logits[1]
    torch.testing.assert_close(fast.full(images), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.full(images[:1]), expected[:1], rtol=1e-4, atol=1e-4)


def test_fast_path_rejects_bad_thresholds_and_shapes(model_and_images):
    model, images = model_and_images
    with pytest.raises(ValueError, match="threshold"):
        FastEarlyExit(model, 1.5)
    with pytest.raises(ValueError, match="4-D batch"):
        FastEarlyExit(model, 0.5)(images[0])


def test_large_batches_are_chunked_without_changing_results(model_and_images):
    model, images = model_and_images
    fast, chunked = FastEarlyExit(model, 0.9), FastEarlyExit(model, 0.9, chunk_size=64)
    whole, parts = fast(images), chunked(images)
    assert torch.equal(whole.predictions, parts.predictions) and torch.equal(whole.exit_index, parts.exit_index)
    assert torch.equal(chunked.compute_all_then_mask(images).predictions, whole.predictions)
    torch.testing.assert_close(chunked.full(images), fast.full(images))


@pytest.mark.parametrize("options", [
    dict(pool_before_relu=False, strided_max_pool=False, use_inference_mode=False, chunk_size=None),
    dict(strided_max_pool=False, channels_last=True),
    dict(pool_before_relu=False),
])
def test_every_optimisation_switch_keeps_the_answers(model_and_images, options):
    model, images = model_and_images
    expected = route_batch(model, images, 0.9)
    got = FastEarlyExit(model, 0.9, **options)(images)
    assert torch.equal(got.predictions, expected.predictions) and torch.equal(got.exit_index, expected.exit_index)
