"""Shared fixtures: small synthetic IDX datasets, and a tiny in-memory Splits for fast model tests."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import http.server
import struct
import threading
from pathlib import Path

import pytest
import torch

from earlyexit import data

N_TRAIN, N_TEST = 30, 12


def idx_bytes(array: torch.Tensor) -> bytes:
    """Encode a uint8 tensor as an IDX file (the MNIST format)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.numpy().tobytes()


def synthetic_arrays(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "train-images-idx3-ubyte": torch.randint(0, 256, (N_TRAIN, 28, 28), generator=g, dtype=torch.uint8),
        "train-labels-idx1-ubyte": torch.arange(N_TRAIN, dtype=torch.uint8) % 10,
        "t10k-images-idx3-ubyte": torch.randint(0, 256, (N_TEST, 28, 28), generator=g, dtype=torch.uint8),
        "t10k-labels-idx1-ubyte": (torch.arange(N_TEST, dtype=torch.uint8) * 3) % 10,
    }


def write_idx(folder: Path, compressed: bool = True, truncate: str | None = None) -> dict[str, torch.Tensor]:
    """Write the four files into ``folder`` (``.gz`` like Debian, or raw); optionally cut one short."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = synthetic_arrays()
    for name, array in arrays.items():
        payload = idx_bytes(array)
        if name == truncate:
            payload = payload[: len(payload) // 2]
        if compressed:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return arrays


@contextlib.contextmanager
def serve_directory(folder: Path):
    """Serve ``folder`` over HTTP on loopback for the duration of the block; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def isolated_data_routes(tmp_path, monkeypatch):
    """No test may find the real data: the repository root and Debian's folder point into tmp."""
    home = tmp_path / "repo"
    home.mkdir()
    monkeypatch.setenv("EARLYEXIT_HOME", str(home))
    monkeypatch.delenv("EARLYEXIT_DATA", raising=False)
    info = data.DATASETS["fashion-mnist"]
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", dataclasses.replace(info, debian_dir=tmp_path / "debian"))
    return home


@pytest.fixture
def tiny_splits() -> data.Splits:
    """A small random 'dataset' with real shapes: enough to train a few steps quickly."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(300, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (300,), generator=g)
    return data.Splits(images[:200], labels[:200], images[200:250], labels[200:250], images[250:], labels[250:],
                       tuple(f"class {i}" for i in range(10)), "fashion-mnist")
