"""Batched early-exit routing gives exactly what one-image-at-a-time routing gives, for every rule."""

import pytest
import torch

from earlyexit.exits import PatienceRule, ThresholdRule, exit_scores
from earlyexit.inference import compute_all_then_mask, first_exits, route_batch, route_one_by_one
from earlyexit.models import EarlyExitCNN
from helpers import assert_same_result, logits_tolerance, on_every_device, sharpened_model, threshold_between

SIZES = [0, 1, 2, 7, 64]


@pytest.fixture(scope="module")
def images():
    return torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def scores_at(model, images, criterion, exit_number=1):
    out = model(images)
    confidence = out.confidence_logits[exit_number - 1] if exit_number <= len(out.confidence_logits) else None
    return exit_scores(criterion, out.exit_logits[exit_number - 1], confidence)


def rules_for(model, images):
    """Every kind of rule, with thresholds at both extremes and between sample scores."""
    rules = {}
    for criterion in ("max_softmax", "entropy", "learned"):
        rules[f"{criterion}, none exit"] = ThresholdRule(1.0, criterion)
        rules[f"{criterion}, all exit"] = ThresholdRule(0.0, criterion)
        middle = [threshold_between(scores_at(model, images, criterion, k)) for k in range(1, model.num_exits)]
        rules[f"{criterion}, some exit"] = ThresholdRule(middle, criterion)
    rules["patience 2"] = PatienceRule(2)
    if model.num_exits >= 3:
        rules["patience 3"] = PatienceRule(3)
    return rules


@pytest.mark.parametrize("channels", [(16, 32), (16, 32, 32)], ids=["2 exits", "3 exits"])
@pytest.mark.parametrize("size", SIZES)
@on_every_device
def test_batched_routing_equals_one_by_one(images, channels, size, device):
    model = sharpened_model(channels).to(device)
    x = images.to(device)
    atol = logits_tolerance(model, x)
    for rule in rules_for(model, x).values():
        batched = route_batch(model, x[:size], rule)
        assert batched.logits.device == x.device and batched.exit_number.device == x.device
        assert_same_result(batched, route_one_by_one(model, x[:size], rule), atol)
        assert_same_result(batched, compute_all_then_mask(model, x[:size], rule), atol)


def test_threshold_extremes_and_the_middle_send_who_they_should(images):
    model = sharpened_model()
    threshold = threshold_between(scores_at(model, images, "max_softmax"))
    exits = {t: int((route_batch(model, images, t).exit_number == 1).sum()) for t in (0.0, threshold, 1.0)}
    assert exits[0.0] == 64 and exits[1.0] == 0 and 20 < exits[threshold] < 44


def test_results_come_back_in_batch_order(images):
    model = sharpened_model((16, 32, 32))
    result = route_batch(model, images, ThresholdRule([threshold_between(scores_at(model, images, "max_softmax", k))
                                                       for k in (1, 2)]))
    out = model(images)
    expected = torch.stack(out.exit_logits)[result.exit_number - 1, torch.arange(64)]
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=logits_tolerance(model, images))
    assert set(result.exit_number.tolist()) == {1, 2, 3}


@pytest.mark.parametrize("bias", [0.0, -2.1972246])
def test_a_score_equal_to_the_float32_threshold_stays_in_every_path(bias):
    """A zero-weight confidence head gives every image the same score: sigmoid(0) = 0.5 exactly
    (bias 0), or a float32 number near 0.1 that no decimal threshold equals (bias -2.197...).
    With the threshold equal to that score, nobody leaves (score > score is False) in every
    path, the one-by-one path's float64 comparison after .item() included; just below it,
    everybody leaves."""
    model = EarlyExitCNN().eval()
    with torch.no_grad():
        model.confidence_heads[0].linear.weight.zero_()
        model.confidence_heads[0].linear.bias.fill_(bias)
    images = torch.randn(5, 1, 28, 28)
    scores = scores_at(model, images, "learned")
    assert len(set(scores.tolist())) == 1
    score = float(scores[0])
    assert (score == 0.5) == (bias == 0.0)
    for threshold, exit_number in ((score, 2), (float(torch.tensor(score).nextafter(torch.tensor(0.0))), 1)):
        for path in (route_batch, route_one_by_one, compute_all_then_mask):
            assert (path(model, images, threshold, "learned").exit_number == exit_number).all(), (path, threshold)


def test_a_nan_score_goes_deep_in_every_path(images):
    model = sharpened_model()
    with torch.no_grad():
        model.exits[0].linear.weight[3, 7] = float("nan")  # every exit-1 score becomes NaN
    for path in (route_batch, route_one_by_one, compute_all_then_mask):
        assert (path(model, images[:9], 0.0).exit_number == 2).all(), path.__name__


@pytest.mark.parametrize("threshold, error", [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                                              ("0.5", TypeError), (None, TypeError), (True, TypeError),
                                              (torch.tensor([0.2, 0.3]), TypeError)])
def test_bad_thresholds_are_rejected_with_their_name(images, threshold, error):
    with pytest.raises(error, match="threshold"):
        route_batch(sharpened_model(), images, threshold)


def test_numpy_and_tensor_thresholds_are_accepted(images):
    np = pytest.importorskip("numpy")
    model = sharpened_model()
    expected = route_batch(model, images, 0.5).exit_number
    for threshold in (np.float32(0.5), np.float64(0.5), torch.tensor(0.5), torch.tensor([0.5])):
        assert torch.equal(route_batch(model, images, threshold).exit_number, expected)


def test_thresholds_must_match_the_number_of_exits(images):
    with pytest.raises(ValueError, match="needs 2 thresholds"):
        route_batch(sharpened_model((16, 32, 32)), images, [0.5])
    with pytest.raises(ValueError, match="can never agree"):
        route_batch(sharpened_model(), images, PatienceRule(3))
    with pytest.raises(ValueError, match="criterion inside the rule"):
        route_batch(sharpened_model(), images, PatienceRule(2), "entropy")


def test_nan_images_and_wrong_shapes_are_rejected(images):
    model = sharpened_model()
    bad = images.clone()
    bad[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(1 of 64 samples\)"):
        route_batch(model, bad, 0.5)
    with pytest.raises(ValueError, match="4-D batch"):
        route_batch(model, images[0], 0.5)
    with pytest.raises(TypeError, match="floating-point"):
        route_batch(model, images.to(torch.uint8), 0.5)


@pytest.mark.parametrize("path", [route_batch, route_one_by_one, compute_all_then_mask])
def test_float64_images_are_refused_with_the_fix_on_every_path(path):
    model = EarlyExitCNN().eval()
    fix = r"images must be float32.*got torch.float64: convert them with images.float\(\)"
    with pytest.raises(TypeError, match=fix):
        path(model, torch.zeros(2, 1, 28, 28, dtype=torch.float64), 0.5)


@pytest.mark.parametrize("criterion", ["max_softmax", "entropy", "learned"])
def test_compute_all_then_mask_costs_what_the_book_counts_for_it(criterion):
    """Every block and exit head for every image, and the confidence heads only for the learned rule."""
    from earlyexit.flops import count_flops, exit_costs

    model = EarlyExitCNN((16, 32, 32)).eval()
    images = torch.randn(24, 1, 28, 28)
    counted = count_flops(lambda x: compute_all_then_mask(model, x, 0.5, criterion), images)
    assert counted == 24 * exit_costs(model, criterion)[-1]


def test_routing_refuses_what_is_not_a_model_and_first_exits_checks_its_rule():
    model = sharpened_model((8, 16))
    images = torch.randn(3, 1, 28, 28)
    with pytest.raises(TypeError, match="model must be an EarlyExitCNN"):
        route_batch(model.state_dict(), images, 0.5)
    logits = list(model(images).exit_logits)
    assert torch.equal(first_exits(logits, None, 0.5), route_batch(model, images, 0.5).exit_number)
    with pytest.raises(ValueError, match="the 'learned' criterion needs confidence_logits"):
        first_exits(logits, None, ThresholdRule(0.5, "learned"))  # it failed with a TypeError on None
    with pytest.raises(ValueError, match="needs 1 thresholds"):
        first_exits(logits, None, ThresholdRule([0.5, 0.5]))
    with pytest.raises(ValueError, match="exit_logits must be a sequence of each exit's"):
        first_exits([], None, 0.5)
