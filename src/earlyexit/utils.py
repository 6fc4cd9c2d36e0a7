"""Seeding, the default device and where the repository lives."""

from __future__ import annotations

import math
import os
import random
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
                 open_low: bool = False) -> float:
    """``value`` as a float if it is a finite real number in [low, high] (or (low, high]); a ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or value > high or (open_low and value == low):
        bound = f"in [{low}, {high}]" if high < math.inf else (f"> {low}" if open_low else f">= {low}")
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)
