"""How honest a confidence is: expected calibration error, and temperature scaling (Chapter 5).

A calibrated confidence of 0.9 is right 90% of the time. For the exit *decision* this
matters less than it seems, because the threshold is chosen on validation data anyway
(:mod:`earlyexit.thresholds`); it matters when a confidence is reported to a user.
"""

from __future__ import annotations

import torch

from .checks import check_finite, check_flags, check_int, check_real


def _check_logits_and_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not isinstance(labels, torch.Tensor) \
            or labels.ndim != 1 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError("expected (N, classes) logits and N >= 1 labels (1-D), got "
                         f"{tuple(getattr(logits, 'shape', ()))} and {tuple(getattr(labels, 'shape', ()))}")
    check_finite("logits", logits)
    if labels.dtype != torch.long or int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]:
        raise ValueError(f"labels must be int64 class indices in [0, {logits.shape[1] - 1}], "
                         f"got dtype {labels.dtype}, range {labels.min().item()} to {labels.max().item()}")


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor,
                    steps: int = 100) -> float:
    """Temperature scaling (Guo et al., 2017): the T > 0 that minimises the
    NLL of ``softmax(logits / T)``. Fit it on validation logits.
    """
    check_int("steps", steps)
    _check_logits_and_labels(logits, labels)
    log_t = torch.zeros((), requires_grad=True)  # T = exp(log_t) stays positive
    logits, labels = logits.detach().float(), labels.detach()
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp())


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    check_int("bins", bins)
    confidence = check_real("confidence", confidence, 1, list_dtype=None)
    correct = check_flags("correct", correct, ndim=1)
    if len(confidence) != len(correct) or len(confidence) == 0:
        raise ValueError(f"need as many confidences as outcomes (at least one): {len(confidence)} and {len(correct)}")
    if torch.isnan(confidence).any() or ((confidence < 0) | (confidence > 1)).any():
        raise ValueError("confidences must be numbers in [0, 1] (found NaN or values outside)")
    index = torch.bucketize(confidence, torch.linspace(0, 1, bins + 1)[1:-1])
    total = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            gap = abs(float(confidence[in_bin].double().mean()) - float(correct[in_bin].double().mean()))
            total += float(in_bin.double().mean()) * gap
    return total
