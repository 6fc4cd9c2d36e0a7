"""Seeding, the default device, where the repository lives, and argument checks shared by every module.

The checks raise a ``ValueError`` (or a ``TypeError`` for a value of the wrong kind) whose
message names the argument and the value it got, so that a wrong call fails at the door
with a sentence, not deep inside torch with a shape or dtype error.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import tempfile
from pathlib import Path

import torch


def repo_root() -> Path:
    """The repository root (for ``data/``, ``.cache/`` and the recorded results).

    Found from this file when the package is installed in editable mode; otherwise
    ``EARLYEXIT_HOME`` or the current directory (e.g. on Colab).
    """
    if os.environ.get("EARLYEXIT_HOME"):
        return Path(os.environ["EARLYEXIT_HOME"])
    guess = Path(__file__).resolve().parents[2]
    return guess if (guess / "pyproject.toml").is_file() else Path.cwd()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's and torch's generators (CUDA's too); return a torch generator seeded the same way."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when PyTorch sees a GPU (e.g. on Colab), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; a ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_number(name: str, value: object, low: float = 0.0, high: float = math.inf,
                 open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a float if it is a finite real number in [low, high] (ends excluded where asked);
    a ValueError naming ``name`` otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or value > high or (open_low and value == low) or (open_high and value == high):
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        bound = f"in {left}{low}, {high}{right}" if high < math.inf else (f"> {low}" if open_low else f">= {low}")
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _as_tensor(name: str, values: object, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().flatten()
    try:
        return torch.as_tensor(values, dtype=dtype).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor or a sequence of numbers, got {type(values).__name__}") from None


def check_flags(name: str, values: object) -> torch.Tensor:
    """``values`` as a flat boolean tensor, if it holds only booleans or the numbers 0 and 1
    (one right/wrong flag per sample); a TypeError or ValueError naming ``name`` otherwise.

    Class indices are refused, not read as "right": ``tensor([3, 0])`` is not a flag per sample.
    """
    flags = _as_tensor(name, values)
    if flags.dtype == torch.bool:
        return flags
    if flags.is_complex() or not ((flags == 0) | (flags == 1)).all():
        other = flags[~((flags == 0) | (flags == 1))][:3].tolist()
        raise ValueError(f"{name} must hold one right/wrong flag per sample (booleans, or 0 and 1), "
                         f"got values such as {other}")
    return flags.bool()


def check_finite(name: str, values: object) -> torch.Tensor:
    """``values`` as a flat float64 tensor, if every entry is a finite real number; a ValueError
    (or TypeError) naming ``name`` and how many entries are NaN or infinite otherwise."""
    tensor = _as_tensor(name, values, None if isinstance(values, torch.Tensor) else torch.float64)
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    tensor = tensor.double()
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        raise ValueError(f"{name} must hold finite numbers; {bad} of {len(tensor)} are NaN or infinite")
    return tensor


def progress_enabled(progress: bool | None) -> bool:
    """Show progress bars unless told not to (``EARLYEXIT_PROGRESS=0``, set for committed notebooks)."""
    if progress is not None:
        return progress
    return os.environ.get("EARLYEXIT_PROGRESS", "1") != "0"


def atomic_write(path: str | Path, content: str | bytes) -> None:
    """Write ``content`` to a temporary file beside ``path``, then rename: a reader (another
    process, a chapter running at the same time) never sees a half-written file."""
    if not isinstance(content, (str, bytes)):
        raise TypeError(f"content must be str or bytes, got {type(content).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content.encode() if isinstance(content, str) else content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(payload: object, path: str | Path) -> None:
    """``torch.save`` with :func:`atomic_write`."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, buffer.getvalue())


def in_words(direction: int, above: str, below: str, neither: str) -> str:
    """``above`` for a measured +1, ``below`` for -1, ``neither`` for 0 (inside the noise)."""
    if direction not in (-1, 0, 1):
        raise ValueError(f"direction must be -1, 0 or +1, got {direction!r}")
    return {1: above, -1: below, 0: neither}[direction]


MODEL_LIST = "EARLYEXIT_MODEL_LIST"  # names the file that lists the trained models (earlyexit.pretrain)


def note_model(name: str, kind: str, config: dict) -> None:
    """Add a trained model's configuration to the file named by ``EARLYEXIT_MODEL_LIST``, if set
    (an absolute path: a notebook's kernel runs in ``notebooks/``).

    ``make notebooks`` sets it, so the chapters' own run writes the list of models that
    ``make models`` trains ahead (:mod:`earlyexit.pretrain`).
    """
    if not os.environ.get(MODEL_LIST):
        return
    path = Path(os.environ[MODEL_LIST])
    models = json.loads(path.read_text()) if path.exists() else {}
    models[name] = {"kind": kind, "config": config}
    lines = [f"  {json.dumps(key)}: {json.dumps(models[key])}" for key in sorted(models)]
    atomic_write(path, "{\n" + ",\n".join(lines) + "\n}\n")  # one model per line: readable diffs
