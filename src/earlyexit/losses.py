"""Training losses for multi-exit networks.

* :func:`joint_loss` - BranchyNet's weighted sum of every exit's cross-entropy;
* :func:`masked_deep_loss` - the deep exit's loss over the samples that did *not* exit,
  the per-sample version of the forum's "zero the gradient where confidence is high";
* :func:`confidence_loss` - binary cross-entropy teaching a confidence head to predict
  whether exit 1 is right (the hard exit decision passes it no gradient otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def joint_loss(exit_logits: Sequence[torch.Tensor], targets: torch.Tensor,
               weights: Sequence[float] | None = None) -> torch.Tensor:
    """Weighted sum over exits of the mean cross-entropy (equal weights of 1 by default)."""
    weights = [1.0] * len(exit_logits) if weights is None else list(weights)
    if len(weights) != len(exit_logits):
        raise ValueError(f"got {len(weights)} weights for {len(exit_logits)} exits")
    return sum(w * F.cross_entropy(logits, targets) for w, logits in zip(weights, exit_logits))


def masked_deep_loss(deep_logits: torch.Tensor, targets: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the kept samples only, summed and divided by the *batch* size.

    ``keep`` is a boolean (or 0/1) mask of the samples that did not exit early. Dividing by
    the batch size (not the number kept) gives each kept sample the same weight as in an
    ordinary mean, however many of its neighbours exited; its gradient is exactly
    ``sum(per-sample gradients of the kept samples) / batch size``.
    """
    if keep.shape != targets.shape:
        raise ValueError(f"keep mask shape {tuple(keep.shape)} does not match targets {tuple(targets.shape)}")
    per_sample = F.cross_entropy(deep_logits, targets, reduction="none")
    return (per_sample * keep.to(per_sample.dtype)).sum() / max(len(targets), 1)


def exit_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Float 0/1 per sample: does this exit predict the right class? (no gradient)"""
    return (logits.detach().argmax(dim=1) == targets).float()


def confidence_loss(confidence_logit: torch.Tensor, exit_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE between the confidence head and the target "this exit is correct"."""
    return F.binary_cross_entropy_with_logits(confidence_logit, exit_correct(exit_logits, targets))
