"""The multi-exit CNN: shapes of every output, and clear errors for bad input."""

import pytest
import torch

from earlyexit.flops import path_flops, stage_flops
from earlyexit.models import EarlyExitCNN


def test_every_exit_returns_logits_of_the_right_shape():
    torch.manual_seed(0)
    out = EarlyExitCNN()(torch.randn(5, 1, 28, 28))
    assert [tuple(l.shape) for l in out.exit_logits] == [(5, 10), (5, 10)]
    assert out.confidence_logit.shape == (5,)
    # logits, not probabilities: rows do not sum to one and values leave [0, 1]
    assert not torch.allclose(out.exit_logits[0].sum(1), torch.ones(5))


def test_block1_keeps_28x28_before_pooling():
    assert EarlyExitCNN().block1(torch.zeros(2, 1, 28, 28)).shape == (2, 16, 14, 14)


@pytest.mark.parametrize("shape, message", [
    ((1, 28, 28), "4-D batch.*unsqueeze"),
    ((2, 3, 28, 28), "expected 1 input channel.*got 3"),
    ((2, 1, 32, 32), "expected 28x28 images, got 32x32"),
])
def test_bad_input_raises_value_error_saying_what_was_expected(shape, message):
    with pytest.raises(ValueError, match=message):
        EarlyExitCNN()(torch.zeros(shape))


def test_flops_are_counted_per_stage_and_the_early_path_is_about_an_eighth():
    model = EarlyExitCNN()
    stages = stage_flops(model)
    assert stages["block1"] == 2 * 16 * 28 * 28 * 25  # FLOPs = 2 x multiply-adds of the 5x5 conv
    assert stages["block2"] == 2 * 32 * 14 * 14 * 16 * 25
    assert stages["exit1"] == 2 * 16 * 14 * 14 * 10
    paths = path_flops(model)
    assert paths["deep"] == paths["early"] + stages["block2"] + stages["exit2"]
    assert 0.10 < paths["early"] / paths["full"] < 0.14
    assert path_flops(model, "learned")["early"] == paths["early"] + stages["confidence1"]
