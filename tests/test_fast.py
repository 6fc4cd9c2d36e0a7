"""The fast inference path changes the speed, never the answers, and validates like the reference."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from earlyexit.exits import PatienceRule, ThresholdRule, max_softmax
from earlyexit.fast import FastEarlyExit, max_pool_2x2
from earlyexit.inference import route_batch
from helpers import assert_same_result, logits_tolerance, on_every_device, sharpened_model, threshold_between


def test_strided_maxima_equal_max_pool_and_commute_with_relu():
    torch.manual_seed(0)
    for shape in [(3, 5, 28, 28), (2, 4, 7, 7), (1, 1, 3, 5)]:  # even and odd sides
        x = torch.randn(shape)
        assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))
        assert torch.equal(max_pool_2x2(x).relu(), F.max_pool2d(x.relu(), 2))


@pytest.fixture(scope="module")
def images():
    return torch.randn(300, 1, 28, 28, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("channels", [(16, 32), (16, 32, 32)], ids=["2 exits", "3 exits"])
@on_every_device
def test_fast_path_gives_the_reference_results_for_every_rule(images, channels, device):
    model = sharpened_model(channels).to(device)
    x = images.to(device)
    with torch.no_grad():
        out = model(x)
    middle = [threshold_between(max_softmax(out.exit_logits[k]), 0.4) for k in range(model.num_exits - 1)]
    atol = logits_tolerance(model, x)
    for rule in (ThresholdRule(0.0), ThresholdRule(1.0), ThresholdRule(middle), PatienceRule(2)):
        fast = FastEarlyExit(model, rule).to(device)
        for batch in (x, x[:16], x[:1], x[7:8], x[:0]):
            assert_same_result(fast(batch), route_batch(model, batch, rule), atol)
            assert_same_result(fast.compute_all_then_mask(batch), route_batch(model, batch, rule), atol)


def test_fast_full_network_matches_the_model(images):
    model = sharpened_model()
    fast = FastEarlyExit(model, 0.5)
    with torch.no_grad():
        expected = model(images).exit_logits[-1]
    atol = logits_tolerance(model, images)
    torch.testing.assert_close(fast.full(images), expected, rtol=0, atol=atol)
    torch.testing.assert_close(fast.full(images[:1]), expected[:1], rtol=0, atol=atol)


def test_fast_path_validates_like_the_reference(images):
    model = sharpened_model()
    bad = images[:4].clone()
    bad[1, 0, 3, 3] = float("inf")
    for call in (lambda x: FastEarlyExit(model, 0.5)(x), lambda x: route_batch(model, x, 0.5)):
        with pytest.raises(ValueError, match="NaN or infinite"):
            call(bad)
        with pytest.raises(ValueError, match="4-D batch"):
            call(images[0])
        with pytest.raises(TypeError, match="images must be float32"):
            call(images.double())
    for call in (FastEarlyExit(model, 0.5).full, FastEarlyExit(model, 0.5).compute_all_then_mask):
        with pytest.raises(TypeError, match="images must be float32"):
            call(images.double())
    assert torch.equal(FastEarlyExit(model, np.float32(0.5))(images).exit_number,
                       route_batch(model, images, 0.5).exit_number)
    for threshold, error in ((1.5, ValueError), ([0.2, 0.3, 0.4], ValueError), (None, TypeError),
                             (torch.tensor([0.1, 0.2]), TypeError)):
        with pytest.raises(error, match="threshold"):
            FastEarlyExit(model, threshold)


@pytest.mark.parametrize("chunk_size", [0, -3, 2.5, True])
def test_bad_chunk_sizes_are_refused(images, chunk_size):
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1"):
        FastEarlyExit(sharpened_model(), 0.5, chunk_size=chunk_size)


def test_the_callers_model_is_left_as_it_was(images):
    model = sharpened_model().train()
    FastEarlyExit(model, 0.5)
    assert model.training


def test_large_batches_are_chunked_without_changing_results(images):
    model = sharpened_model()
    threshold = threshold_between(max_softmax(model(images).exit_logits[0].detach()))
    whole, chunked = FastEarlyExit(model, threshold), FastEarlyExit(model, threshold, chunk_size=64)
    assert_same_result(whole(images), chunked(images), logits_tolerance(model, images))
    torch.testing.assert_close(chunked.full(images), whole.full(images))


@pytest.mark.parametrize("options", [
    dict(pool_before_relu=False, strided_max_pool=False, use_inference_mode=False, chunk_size=None),
    dict(strided_max_pool=False, channels_last=True),
    dict(pool_before_relu=False),
])
def test_every_optimisation_switch_keeps_the_answers(images, options):
    model = sharpened_model()
    threshold = threshold_between(max_softmax(model(images).exit_logits[0].detach()))
    expected = route_batch(model, images, threshold)
    assert_same_result(FastEarlyExit(model, threshold, **options)(images), expected, logits_tolerance(model, images))


def test_images_on_another_device_than_the_weights_fail_clearly(images):
    fast = FastEarlyExit(sharpened_model(), 0.5)
    fast.convs = [(w.to("meta"), b.to("meta")) for w, b in fast.convs]  # weights "elsewhere"
    with pytest.raises(ValueError, match=r"call \.to\('cpu'\) first"):
        fast(images)


def test_options_are_true_or_false_and_the_model_is_a_model():
    model = sharpened_model((8, 16))
    with pytest.raises(TypeError, match="pool_before_relu must be True or False, got 'no'"):
        FastEarlyExit(model, 0.5, pool_before_relu="no")  # a non-empty string read as True
    with pytest.raises(TypeError, match="model must be an EarlyExitCNN"):
        FastEarlyExit(FastEarlyExit(model, 0.5), 0.5)
