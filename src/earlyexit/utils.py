"""Seeding, the default device and where the repository lives."""

from __future__ import annotations

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
