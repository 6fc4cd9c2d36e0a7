"""Per-sample gradient masking is exact; zeroing parameter gradients is not the same thing."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from earlyexit.losses import confidence_loss, joint_loss, masked_deep_loss


@pytest.fixture
def tiny_problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    keep = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    return model, x, y, keep


def test_masked_loss_gradient_equals_sum_of_kept_per_sample_gradients(tiny_problem):
    model, x, y, keep = tiny_problem
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one_sample_loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    per_sample = vmap(grad(one_sample_loss), in_dims=(None, 0, 0))(params, x, y)
    expected = {k: g[keep].sum(0) / len(y) for k, g in per_sample.items()}

    model.zero_grad()
    masked_deep_loss(model(x), y, keep).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name])


def test_zeroing_parameter_gradients_does_not_select_samples(tiny_problem):
    """The forum's suggestion: the batch gradient is already a sum over samples, so no entry
    belongs to one sample; zeroing entries freezes weights for everyone."""
    model, x, y, keep = tiny_problem
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    zeroed = {n: p.grad.clone() for n, p in model.named_parameters()}
    for g in zeroed.values():
        g[g.abs() < g.abs().median()] = 0
    model.zero_grad()
    masked_deep_loss(model(x), y, keep).backward()
    assert any(not torch.allclose(zeroed[n], p.grad) for n, p in model.named_parameters())


def test_masked_loss_with_everyone_kept_is_the_plain_mean(tiny_problem):
    model, x, y, _ = tiny_problem
    logits = model(x)
    everyone = torch.ones_like(y, dtype=torch.bool)
    torch.testing.assert_close(masked_deep_loss(logits, y, everyone), F.cross_entropy(logits, y))
    assert masked_deep_loss(logits, y, torch.zeros_like(y, dtype=torch.bool)) == 0


def test_masked_loss_rejects_a_mask_of_the_wrong_shape(tiny_problem):
    model, x, y, keep = tiny_problem
    with pytest.raises(ValueError, match="does not match"):
        masked_deep_loss(model(x), y, keep[:4])


@pytest.mark.parametrize("keep", [
    torch.tensor([2, 0, 1, 1, 0, 0, 1, 0]), torch.tensor([0.5, 0, 1, 1, 0, 0, 1, 0]),
    torch.tensor([-1, 0, 1, 1, 0, 0, 1, 0]), torch.tensor([float("nan"), 0, 1, 1, 0, 0, 1, 0])])
def test_masked_loss_accepts_only_booleans_or_zeros_and_ones(tiny_problem, keep):
    model, x, y, _ = tiny_problem
    with pytest.raises(ValueError, match="only 0 and 1"):
        masked_deep_loss(model(x), y, keep)


def test_zero_one_masks_give_the_boolean_result(tiny_problem):
    model, x, y, keep = tiny_problem
    logits = model(x)
    torch.testing.assert_close(masked_deep_loss(logits, y, keep.long()), masked_deep_loss(logits, y, keep))


def test_targets_of_the_wrong_shape_or_type_fail_clearly(tiny_problem):
    model, x, y, keep = tiny_problem
    with pytest.raises(ValueError, match=r"use targets.squeeze\(1\)"):
        masked_deep_loss(model(x), y[:, None], keep)
    with pytest.raises(ValueError, match="int64"):
        joint_loss([model(x)], y.float())
    with pytest.raises(ValueError, match="do not match"):
        joint_loss([model(x)], y[:5])


def test_joint_loss_needs_at_least_one_exit_and_valid_weights(tiny_problem):
    model, x, y, _ = tiny_problem
    with pytest.raises(ValueError, match="at least one exit"):
        joint_loss([], y)
    for bad in ((1.0, float("nan")), (1.0, -0.5)):
        with pytest.raises(ValueError, match=r"weights\[1\] must be a finite number >= 0"):
            joint_loss([model(x), model(x)], y, bad)


def test_joint_loss_is_the_weighted_sum_of_exit_losses():
    torch.manual_seed(0)
    a, b, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
    expected = 0.3 * F.cross_entropy(a, y) + 2.0 * F.cross_entropy(b, y)
    torch.testing.assert_close(joint_loss((a, b), y, (0.3, 2.0)), expected)
    torch.testing.assert_close(joint_loss((a, b), y), F.cross_entropy(a, y) + F.cross_entropy(b, y))
    c = torch.randn(4, 10)
    torch.testing.assert_close(joint_loss((a, b, c), y, (1, 0, 2)), F.cross_entropy(a, y) + 2 * F.cross_entropy(c, y))
    with pytest.raises(ValueError, match="2 exits"):
        joint_loss((a, b), y, (1.0,))


def test_confidence_target_is_whether_the_exit_is_right():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    targets = torch.tensor([0, 0])  # first right, second wrong
    very_sure_right_then_wrong = torch.tensor([10.0, -10.0])
    assert confidence_loss(very_sure_right_then_wrong, logits, targets) < 1e-3
    assert confidence_loss(-very_sure_right_then_wrong, logits, targets) > 5


def test_targets_outside_the_classes_and_a_confidence_of_another_shape_are_refused():
    logits = torch.randn(4, 10)
    with pytest.raises(ValueError, match="targets must hold class indices from 0 to 9, got values from 0 to 10"):
        joint_loss([logits], torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match=r"confidence_logit must hold one logit per sample, shape \(4,\), got \(4, 1"):
        confidence_loss(torch.zeros(4, 1), logits, torch.tensor([0, 1, 2, 3]))
