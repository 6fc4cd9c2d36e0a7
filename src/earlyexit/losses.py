"""Training losses for multi-exit networks.

* :func:`joint_loss` - BranchyNet's weighted sum of every exit's cross-entropy;
* :func:`masked_deep_loss` - the deep exit's loss over the samples that did *not* exit,
  the per-sample version of the forum's "zero the gradient where confidence is high";
* :func:`confidence_loss` - binary cross-entropy teaching a confidence head to predict
  whether its exit is right (the hard exit decision passes it no gradient otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .checks import check_number, check_token_ids


def check_targets(logits: torch.Tensor, targets: torch.Tensor) -> None:
    """Raise a clear error unless ``targets`` holds one class index per row of ``logits``."""
    if not isinstance(targets, torch.Tensor) or targets.dtype != torch.long or targets.ndim != 1:
        is_tensor = isinstance(targets, torch.Tensor)
        shape = tuple(targets.shape) if is_tensor else type(targets).__name__
        hint = " (use targets.squeeze(1))" if is_tensor and targets.ndim == 2 else ""
        raise ValueError(f"targets must be a 1-D int64 tensor of class indices, got {shape}{hint}")
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != targets.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits {shape} and targets {tuple(targets.shape)} do not match: "
                         "expected (N, classes) and (N,)")
    check_token_ids("targets", targets, logits.shape[1], 1, "class indices")


def check_weights(weights: Sequence[float], count: int, name: str = "weights") -> tuple[float, ...]:
    """``count`` finite, non-negative weights as floats; a ValueError otherwise."""
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise ValueError(f"{name} must be a sequence of {count} numbers, got {weights!r}")
    weights = tuple(weights)
    if len(weights) != count:
        raise ValueError(f"got {len(weights)} {name} for {count} exits")
    return tuple(check_number(f"{name}[{i}]", w) for i, w in enumerate(weights))


def joint_loss(exit_logits: Sequence[torch.Tensor], targets: torch.Tensor,
               weights: Sequence[float] | None = None) -> torch.Tensor:
    """Sum over exits of weight x mean cross-entropy (weights 1 by default)."""
    exit_logits = list(exit_logits)
    if not exit_logits:
        raise ValueError("joint_loss needs the logits of at least one exit")
    for logits in exit_logits:
        check_targets(logits, targets)
    count = len(exit_logits)
    if weights is None:
        weights = (1.0,) * count
    weights = check_weights(weights, count)
    losses = [w * F.cross_entropy(x, targets)
              for w, x in zip(weights, exit_logits)]
    return torch.stack(losses).sum()


def masked_deep_loss(deep_logits: torch.Tensor, targets: torch.Tensor,
                     keep: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the kept samples, summed, divided by the *batch* size.

    ``keep`` is a boolean mask (or 0/1 values) of the samples that did not exit
    early. Dividing by the batch size (not the number kept) gives each kept
    sample the weight it has in an ordinary mean, however many of its
    neighbours exited: the gradient is exactly the sum of the kept samples'
    per-sample gradients, divided by the batch size.
    """
    check_targets(deep_logits, targets)
    if not isinstance(keep, torch.Tensor) or keep.shape != targets.shape:
        shape = tuple(keep.shape) if isinstance(keep, torch.Tensor) else keep
        raise ValueError(f"keep mask shape {shape} does not match targets "
                         f"{tuple(targets.shape)}")
    if keep.dtype != torch.bool and not bool(((keep == 0) | (keep == 1)).all()):
        raise ValueError("keep must be a boolean mask or hold only 0 and 1")
    per_sample = F.cross_entropy(deep_logits, targets, reduction="none")
    return (per_sample * keep.to(per_sample.dtype)).sum() / max(len(targets), 1)


def exit_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Float 0/1 per sample: does this exit predict the right class? (no gradient)"""
    return (logits.detach().argmax(dim=1) == targets).float()


def confidence_loss(confidence_logit: torch.Tensor, exit_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE between the confidence head and the target "this exit is correct for this sample"."""
    check_targets(exit_logits, targets)
    if not isinstance(confidence_logit, torch.Tensor) or tuple(confidence_logit.shape) != tuple(targets.shape):
        shape = tuple(confidence_logit.shape) if isinstance(confidence_logit, torch.Tensor) \
            else type(confidence_logit).__name__
        raise ValueError(f"confidence_logit must hold one logit per sample, shape {tuple(targets.shape)}, got {shape}")
    return F.binary_cross_entropy_with_logits(confidence_logit, exit_correct(exit_logits, targets))
