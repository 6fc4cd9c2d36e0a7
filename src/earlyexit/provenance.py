"""Where shipped weights came from: a fingerprint of everything that decides them.

A model's weights are decided by its configuration, the data, the model's definition, the
losses and the training loop. The configuration is in the manifest. The rest is
fingerprinted by **behaviour**, not by source text: a few seeded training steps of a tiny
model on a fixed synthetic batch, for every training regime, plus a digest of the data each
kind trains on. Editing a docstring or an argument check leaves the fingerprint alone;
changing an initialisation, a loss, the schedule or the data split changes it.

:func:`fingerprint` computes one kind's fingerprint; :func:`differences` compares two,
exactly for the data digests and within :data:`RELATIVE_TOLERANCE` for the numbers (another
CPU rounds the same arithmetic differently, in the last bits). ``make models`` records the
fingerprint beside the weights it ships, and ``tests/test_checkpoints.py`` fails when the
code no longer produces it.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from .data import Splits, load_splits
from .text import TextSplits, make_splits
from .training import REGIMES, TrainConfig, train
from .transformer import LMConfig, train_lm

#: How far a fingerprint number may move between CPUs and thread counts. Measured on 1 and 2
#: threads and under ATEN_CPU_CAPABILITY=default (no vector instructions): at most 1.9e-4
#: (the masked regime, whose gate decisions amplify rounding). Doctored recipes move them by
#: far more (``tests/test_provenance.py``).
RELATIVE_TOLERANCE = 1e-3


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' bytes, shapes and dtypes, in order."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _output_summary(outputs: list[torch.Tensor]) -> list[float]:
    """Mean absolute value and mean square of each output (logits) on a fixed batch.

    Outputs, not weights: a parameter whose true gradient is zero (a key bias, which softmax
    ignores) gets pure rounding noise as gradient, and Adam turns that into a full step, in a
    direction that differs between CPUs. The outputs do not see it.
    """
    return [round(float(v), 7) for out in outputs
            for v in (out.detach().double().abs().mean(), out.detach().double().square().mean())]


def _synthetic_splits() -> Splits:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(320, 1, 28, 28, generator=generator)
    labels = torch.randint(10, (320,), generator=generator)
    classes = tuple(str(i) for i in range(10))
    return Splits(images[:256], labels[:256], images[256:], labels[256:], images[256:], labels[256:],
                  classes, "fashion-mnist")


def cnn_fingerprint(data: Splits | None = None) -> dict[str, Any]:
    """The CNN recipe's fingerprint: two epochs of four batches in every regime, and the data's digest."""
    synthetic = _synthetic_splits()
    runs = {}
    for regime in REGIMES:
        # gates that send some samples on and stop others, so that each regime's masking is exercised
        config = TrainConfig(regime=regime, channels=(4, 6), epochs=2, batch_size=64, seed=0,
                             gate_threshold={"joint": 0.9, "masked": 0.2, "learned": 0.5}[regime])
        trained = train(config, synthetic, progress=False, device="cpu")
        with torch.no_grad():
            outputs = trained.model(synthetic.val_images)
        runs[regime] = [round(v, 7) for h in trained.history for k, v in sorted(h.items()) if k != "epoch"] \
            + _output_summary([*outputs.exit_logits, *outputs.confidence_logits])
    data = load_splits() if data is None else data
    digest = tensor_digest(data.train_images, data.train_labels, data.val_images, data.val_labels,
                           data.test_images, data.test_labels)
    return {"data": digest, "runs": runs}


def lm_fingerprint(data: TextSplits | None = None) -> dict[str, Any]:
    """The language-model recipe's fingerprint: twenty steps of a tiny model at a high learning rate
    (so that weight decay and the schedule leave a mark), and the corpus's digest."""
    data = make_splits() if data is None else data
    config = LMConfig(layers=2, width=16, heads=2, context=16, steps=20, batch_size=4, lr=0.02)
    trained = train_lm(config, data, progress=False, device="cpu")
    with torch.no_grad():
        outputs = trained.model(data.validation[:64].view(4, 16))
    run = trained.losses + _output_summary(outputs)
    digest = tensor_digest(data.train, data.validation, data.validation_kinds, data.test, data.test_kinds)
    return {"data": digest, "runs": {"lm": [round(v, 7) for v in run]}}


def fingerprint(kind: str) -> dict[str, Any]:
    """The current code's fingerprint of ``kind`` ("cnn" or "lm")."""
    if kind == "cnn":
        return cnn_fingerprint()
    if kind == "lm":
        return lm_fingerprint()
    raise ValueError(f"kind must be 'cnn' or 'lm', got {kind!r}")


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """How ``current`` differs from ``recorded``: the data digest, or a training run's numbers."""
    problems = []
    if recorded.get("data") != current.get("data"):
        problems.append("the training data differ (its digest changed)")
    for name, values in current.get("runs", {}).items():
        old = recorded.get("runs", {}).get(name)
        if not isinstance(old, list) or len(old) != len(values):
            problems.append(f"{name}: the recorded run has {len(old) if isinstance(old, list) else 'no'} numbers, "
                            f"the code gives {len(values)}")
            continue
        moved = [i for i, (a, b) in enumerate(zip(old, values))
                 if not (isinstance(a, (int, float)) and math.isfinite(a)
                         and math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-6))]
        if moved:
            i = moved[0]
            problems.append(f"{name}: {len(moved)} of {len(values)} numbers moved (number {i}: "
                            f"{old[i]!r} recorded, {values[i]!r} now)")
    missing = set(recorded.get("runs", {})) - set(current.get("runs", {}))
    if missing:
        problems.append(f"recorded runs the code no longer makes: {sorted(missing)}")
    return problems
