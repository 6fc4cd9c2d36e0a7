"""The package's surroundings: where the repository lives, seeding, the default device, progress
bars, files written atomically, and verdict words. (Argument checks: :mod:`earlyexit.checks`.)"""

from __future__ import annotations

import io
import os
import random
import tempfile
from pathlib import Path

import torch

from .checks import check_bool, check_seed


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
    check_seed("seed", seed)
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when PyTorch sees a GPU (e.g. on Colab), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a torch device; None: :func:`default_device`."""
    return torch.device(device) if device is not None else default_device()


def progress_enabled(progress: bool | None) -> bool:
    """Show progress bars unless told not to (``EARLYEXIT_PROGRESS=0``, set for committed notebooks)."""
    if progress is not None:
        return check_bool("progress", progress)
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

