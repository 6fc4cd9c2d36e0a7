"""`make lab` works: JupyterLab is installed and serves the notebooks folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyter_lab_starts_and_lists_the_chapters(tmp_path):
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        pytest.fail(f"{jupyter} not found: JupyterLab must be installed with the book's requirements")
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    root = ["--allow-root"] if os.geteuid() == 0 else []  # as `make lab` does
    server = subprocess.Popen([str(jupyter), "lab", "--no-browser", f"--port={port}", "--IdentityProvider.token=",
                               "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={ROOT / 'notebooks'}", *root],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=2) as response:
                    listing = response.read().decode()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    message = server.stderr.read().decode()[-2000:]
                    raise AssertionError(f"jupyter lab did not start: {message}") from None
                time.sleep(0.5)
        assert "01_forum_model.ipynb" in listing
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=5) as response:
            assert response.status == 200 and b"JupyterLab" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=20)
