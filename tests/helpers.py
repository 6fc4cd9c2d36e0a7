"""Helpers shared by the tests: small synthetic IDX datasets, a loopback HTTP server, models
with spread-out exit scores, and thresholds that no rounding difference can flip."""

from __future__ import annotations

import ast
import contextlib
import functools
import gzip
import http.server
import struct
import threading
from pathlib import Path

import pytest
import torch

from earlyexit.models import (
    EarlyExitCNN,
    logits_tolerance,  # noqa: F401 - re-exported for the tests
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# A parameter for device-dependent tests: every test runs on the CPU, and on CUDA where present.
on_every_device = pytest.mark.parametrize("device", DEVICES)

N_TRAIN, N_TEST = 30, 12


def idx_bytes(array: torch.Tensor) -> bytes:
    """Encode a uint8 (or int16) tensor as an IDX file (the MNIST format: big-endian, a type code)."""
    code, dtype = {torch.uint8: (0x08, "u1"), torch.int16: (0x0B, ">i2")}[array.dtype]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.numpy().astype(dtype).tobytes()


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
    class Handler(http.server.SimpleHTTPRequestHandler):
        # as a static host serves them: module scripts must be JavaScript, WebAssembly its own type
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".mjs": "text/javascript", ".wasm": "application/wasm"}

        def log_message(self, *args):
            pass

    handler = functools.partial(Handler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()



def sharpened_model(channels=(16, 32), seed: int = 0) -> EarlyExitCNN:
    """An untrained model whose early exits are scaled up, so that their scores spread over [0.1, 1].

    Each early exit's weights are scaled until its logits have a standard deviation of 3 on
    random images (an untrained head gives nearly uniform probabilities, all scores alike).
    """
    torch.manual_seed(seed)
    model = EarlyExitCNN(channels).eval()
    probe = torch.randn(256, 1, 28, 28, generator=torch.Generator().manual_seed(seed + 100))
    with torch.no_grad():
        for k, head in enumerate(list(model.exits)[:-1]):
            logits = model(probe).exit_logits[k]
            head.linear.weight.mul_(3.0 / float(logits.std()))
    return model


def threshold_between(scores: torch.Tensor, quantile: float = 0.5) -> float:
    """A threshold in the middle of the widest gap between sorted scores near ``quantile``.

    Routing tests compare paths that run different kernels (batch sizes, fused ops), whose
    scores differ in the last bits. A threshold equal to a score would let that rounding flip
    a route; one in the middle of a wide gap cannot (the gap is checked to exceed 1e-4).
    """
    values = scores.flatten().double().sort().values
    centre = int(quantile * (len(values) - 1))
    window = values[max(centre - 8, 0):centre + 9]
    gaps = window[1:] - window[:-1]
    i = int(gaps.argmax())
    assert float(gaps[i]) > 1e-4, "scores too close together for a safe threshold"
    return float((window[i] + window[i + 1]) / 2)


def assert_same_result(a, b, atol: float) -> None:
    """Identical predictions and exits; logits equal within ``atol`` (see :func:`logits_tolerance`)."""
    assert torch.equal(a.predictions.cpu(), b.predictions.cpu())
    assert torch.equal(a.exit_number.cpu(), b.exit_number.cpu())
    torch.testing.assert_close(a.logits.cpu(), b.logits.cpu(), rtol=0, atol=atol)


def glued_texts(notebook: dict) -> dict[str, str]:
    """Every text a notebook glued, by key."""
    texts = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            plain = output.get("data", {}).get("application/papermill.record/text/plain")
            if name and plain:
                try:
                    texts[name] = str(ast.literal_eval("".join(plain)))
                except (ValueError, SyntaxError):
                    texts[name] = "".join(plain)
    return texts
