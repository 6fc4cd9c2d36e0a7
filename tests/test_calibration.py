"""How honest a confidence is: temperature scaling recovers a known temperature, ECE measures the gap,
and both refuse input they cannot use."""

import math

import pytest
import torch

from earlyexit.calibration import expected_calibration_error, fit_temperature


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 5, generator=g) * 2
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="logits and N >= 1 labels"):
        fit_temperature(true_logits, labels[:10])


def test_expected_calibration_error_is_zero_when_calibrated_and_the_gap_otherwise():
    correct = torch.tensor([True, True, True, False] * 25)
    assert expected_calibration_error(torch.full((100,), 0.75), correct) == pytest.approx(0.0, abs=1e-6)
    assert expected_calibration_error(torch.full((100,), 0.95), correct) == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        expected_calibration_error(torch.tensor([0.5, math.nan]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="as many confidences as outcomes"):
        expected_calibration_error(torch.full((3,), 0.5), correct)


def test_calibration_refuses_bad_input_by_name():
    logits, labels = torch.randn(10, 3), torch.randint(0, 3, (10,))
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        fit_temperature(logits, labels, steps=0)
    with pytest.raises(ValueError, match="logits must hold finite numbers; 1 of 30"):
        fit_temperature(torch.where(torch.arange(30).reshape(10, 3) == 4, math.nan, logits), labels)
    with pytest.raises(ValueError, match="labels must be int64 class indices in"):
        fit_temperature(logits, labels + 3)
    with pytest.raises(ValueError, match="bins must be an int >= 1"):
        expected_calibration_error(torch.full((4,), 0.5), torch.ones(4, dtype=torch.bool), bins=0)
    with pytest.raises(ValueError, match="correct must hold one right/wrong flag"):
        expected_calibration_error(torch.full((4,), 0.5), torch.tensor([3, 0, 1, 2]))


def test_labels_and_confidences_are_one_per_sample_not_flattened():
    logits, labels = torch.randn(20, 10), torch.randint(0, 10, (20,))
    with pytest.raises(ValueError, match=r"labels \(1-D\), got \(20, 10\) and \(20, 1\)"):
        fit_temperature(logits, labels[:, None])  # it failed inside cross_entropy
    with pytest.raises(ValueError, match=r"confidence must be 1-D, got shape \(4, 5\)"):
        expected_calibration_error(torch.rand(4, 5), torch.ones(20, dtype=torch.bool))
    with pytest.raises(TypeError, match="confidence must be a tensor or a sequence of numbers"):
        expected_calibration_error("0.5", [True])
