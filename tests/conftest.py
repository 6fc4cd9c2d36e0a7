"""Fixtures: every test is cut off from the real data, and a tiny in-memory Splits for model tests."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from earlyexit import data


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
