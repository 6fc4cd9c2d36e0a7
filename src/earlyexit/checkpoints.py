"""Trained weights: the book's own, shipped and verified, or a reader's, trained and cached.

Both kinds of model (the CNNs and the language models) are stored the same way, as
safetensors files: tensors only, no pickled code, safe to load from anywhere.

* **Shipped** (``notebooks/models/``): every model a chapter uses, committed with the book.
  ``manifest.json`` lists each one: its configuration, its file (named with the first digits
  of its SHA-256, as torchvision names its weights), the SHA-256 itself, its training log,
  the machine that trained it, and the fingerprint of the training recipe it came from
  (:mod:`earlyexit.provenance`). :func:`load_or_train` checks the hash before it reads a
  byte of the tensors, and refuses a missing, damaged or tampered file with an error that
  names it and says how to get it back.
* **Cached** (``.cache/models/``): any other configuration (an exercise, an experiment)
  is trained on first use and kept there, its log in a JSON file beside it. A damaged cache
  file is named in a warning and retrained: it is only a cache.

``make models`` (:mod:`earlyexit.pretrain`) trains what the manifest lists but the folder
lacks, and records it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .utils import atomic_write, repo_root

KINDS = ("cnn", "lm")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
HOW_TO_GET = ("restore the committed file (`git checkout -- notebooks/models`), or train it on this machine "
              "with `make models` (the chapters then use your own weights)")


class CheckpointError(RuntimeError):
    """A weights file or the manifest is missing, damaged, tampered with or of the wrong model."""


def models_dir() -> Path:
    """Where the book's shipped models live (``notebooks/models/``; ``EARLYEXIT_MODELS`` overrides)."""
    return Path(os.environ["EARLYEXIT_MODELS"]) if os.environ.get("EARLYEXIT_MODELS") \
        else repo_root() / "notebooks" / "models"


def cache_dir() -> Path:
    """Where models trained on this machine are cached (``.cache/models/``)."""
    return repo_root() / ".cache" / "models"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def machine(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What trained a model: the versions and the CPU (and the GPU, if one trained it), which
    decide its last bits."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    found = {"torch": torch.__version__.split("+")[0], "python": platform.python_version(),
             "threads": torch.get_num_threads(), "cpu": cpu}
    if torch.device(device).type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return found


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass
class Entry:
    """One shipped model: how it was configured and trained, and which file holds it."""

    name: str
    kind: str
    config: dict[str, Any]
    file: str | None = None  # None: planned, not trained yet
    sha256: str | None = None
    log: Any = None
    train_seconds: float | None = None
    trained_on: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": self.config, "file": self.file, "sha256": self.sha256,
                "parameters": self.parameters, "train_seconds": self.train_seconds,
                "trained_on": self.trained_on, "log": self.log}


@dataclass
class Manifest:
    """Every shipped model, and the fingerprint of each kind's training recipe when they were trained."""

    entries: dict[str, Entry] = field(default_factory=dict)
    fingerprints: dict[str, Any] = field(default_factory=dict)


def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}. Restore it with `git checkout -- {path.name}` in its folder "
                           "(or delete it and run `make models` to rebuild the list and the weights)")


def read_manifest(folder: Path | None = None) -> Manifest:
    """The manifest in ``folder`` (default :func:`models_dir`); an empty one if there is none.

    A manifest that is not JSON, or not of the expected structure, raises a
    :class:`CheckpointError` naming the file and what is wrong.
    """
    path = (folder or models_dir()) / MANIFEST_NAME
    if not path.exists():
        return Manifest()
    try:
        payload = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _damaged(path, f"not valid JSON ({error})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("models"), dict) \
            or not isinstance(payload.get("fingerprints", {}), dict):
        raise _damaged(path, "expected an object with a 'models' object (and a 'fingerprints' object)")
    if payload.get("format") != MANIFEST_FORMAT:
        raise _damaged(path, f"format {payload.get('format')!r}, this code reads format {MANIFEST_FORMAT}")
    entries = {}
    for name, raw in payload["models"].items():
        if not isinstance(raw, dict) or raw.get("kind") not in KINDS or not isinstance(raw.get("config"), dict):
            raise _damaged(path, f"entry {name!r} needs a 'kind' (one of {KINDS}) and a 'config' object")
        for key in ("file", "sha256"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise _damaged(path, f"entry {name!r}: {key} must be a string or null")
        if (raw.get("file") is None) != (raw.get("sha256") is None):
            raise _damaged(path, f"entry {name!r} names a file without its SHA-256, or the reverse")
        if raw.get("file") is not None and (Path(raw["file"]).name != raw["file"]
                                            or not raw["file"].endswith(".safetensors")):
            raise _damaged(path, f"entry {name!r}: file must be a .safetensors file name in the folder, "
                                 f"got {raw['file']!r}")
        entries[name] = Entry(name, raw["kind"], raw["config"], raw.get("file"), raw.get("sha256"), raw.get("log"),
                              raw.get("train_seconds"), raw.get("trained_on") or {}, raw.get("parameters"))
    return Manifest(entries, payload.get("fingerprints", {}))


def where_trained(name: str, folder: Path | None = None) -> str:
    """Where the shipped model ``name`` was trained, in words, from its manifest entry: "a GPU
    (...)" or "1 CPU thread (...)"; "this machine" when no shipped file holds it (a model
    trained here and cached is not described by the manifest)."""
    folder = folder or models_dir()
    entry = read_manifest(folder).entries.get(name)
    if entry is None or entry.file is None or not (folder / entry.file).is_file():
        return "this machine"
    on = entry.trained_on
    if on.get("gpu"):
        return f"a GPU ({on['gpu']})"
    threads = on.get("threads", "?")
    return f"{threads} CPU thread{'' if threads == 1 else 's'} ({on.get('cpu', 'unknown CPU')})"


def write_manifest(manifest: Manifest, folder: Path | None = None) -> None:
    """Write the manifest atomically, one model after another in name order (readable diffs)."""
    path = (folder or models_dir()) / MANIFEST_NAME

    def block(items: dict[str, Any], indent: str) -> str:  # one key per line, each value compact
        lines = [f"{indent} {json.dumps(k)}: {json.dumps(v)}" for k, v in items.items()]
        return "{\n" + ",\n".join(lines) + f"\n{indent}}}"

    models = [f"  {json.dumps(name)}: {block(manifest.entries[name].as_json(), '  ')}"
              for name in sorted(manifest.entries)]
    text = (f'{{\n "format": {MANIFEST_FORMAT},\n "fingerprints": {block(manifest.fingerprints, "")},\n'
            f' "models": {{\n' + ",\n".join(models) + "\n }\n}\n")
    atomic_write(path, text)


# ---------------------------------------------------------------------------------------------
# Weights files


def encode_weights(model: nn.Module, metadata: Mapping[str, str] | None = None) -> bytes:
    """A model's state as safetensors bytes (contiguous CPU copies; ``metadata`` as strings)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return save_safetensors(state, metadata=dict(metadata or {}))


def decode_weights(path: Path, data: bytes, model: nn.Module) -> nn.Module:
    """Load safetensors ``data`` (read from ``path``) into ``model``; a CheckpointError names the file
    when the bytes are not safetensors, hold non-finite numbers, or hold another model's tensors."""
    try:
        state = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise _damaged(path, f"not a readable safetensors file ({error})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        extra, lacking = sorted(set(found) - set(expected)), sorted(set(expected) - set(found))
        shapes = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        raise _damaged(path, "holds another model's tensors "
                             f"(unexpected {extra[:3]}, missing {lacking[:3]}, other shapes {shapes[:3]})")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise _damaged(path, f"holds NaN or infinite weights in {bad[:3]}")
    model.load_state_dict(state)
    return model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Load shipped, load cached, or train


@dataclass
class Loaded:
    """A model with its training log, its training time, and where it came from."""

    model: nn.Module
    log: Any
    train_seconds: float
    source: str  # "shipped", "cache" or "trained"


Trainer = Callable[[], tuple[nn.Module, Any, float]]  # -> (model, log, seconds)


def load_shipped(entry: Entry, build: Callable[[], nn.Module], folder: Path | None = None) -> Loaded:
    """The shipped model of ``entry``, verified: its file exists, its SHA-256 matches, its tensors fit."""
    folder = folder or models_dir()
    if entry.file is None:
        raise CheckpointError(f"{folder / MANIFEST_NAME} lists {entry.name} but it has not been trained yet: "
                              "run `make models` to train it")
    path = folder / entry.file
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {HOW_TO_GET}")
    data = path.read_bytes()
    if sha256_of(data) != entry.sha256:
        raise _damaged(path, f"its SHA-256 is {sha256_of(data)[:16]}..., the manifest says "
                             f"{str(entry.sha256)[:16]}...: the file is damaged or was changed")
    model = decode_weights(path, data, build())
    seconds = entry.train_seconds if isinstance(entry.train_seconds, (int, float)) else math.nan
    return Loaded(model.eval(), entry.log, float(seconds), "shipped")


def _cache_files(name: str, folder: Path) -> tuple[Path, Path]:
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def load_or_train(name: str, kind: str, config: dict[str, Any], build: Callable[[], nn.Module], train: Trainer,
                  cache: Path | None = None, shipped: Path | None = None) -> Loaded:
    """The model called ``name``: shipped (verified), else cached on this machine, else trained now and cached.

    A shipped model that is missing or fails its checks raises a :class:`CheckpointError`
    naming the file (never a silent retrain: the chapters' numbers are those of the shipped
    weights). A cached file that cannot be read is named in a warning and retrained.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    manifest = read_manifest(shipped)
    if name in manifest.entries:
        entry = manifest.entries[name]
        if entry.config != config:
            raise CheckpointError(f"{(shipped or models_dir()) / MANIFEST_NAME}: entry {name} holds another "
                                  f"configuration ({entry.config}) than asked ({config})")
        return load_shipped(entry, build, shipped)
    folder = cache or cache_dir()
    weights, log_file = _cache_files(name, folder)
    if weights.exists():
        try:
            record = json.loads(log_file.read_text())
            if record.get("config") != config:
                raise ValueError("another configuration")
            data = weights.read_bytes()
            if sha256_of(data) != record.get("sha256"):
                raise ValueError("its SHA-256 does not match its log")
            model = decode_weights(weights, data, build())
            return Loaded(model.eval(), record.get("log"), float(record.get("train_seconds", math.nan)), "cache")
        except (OSError, ValueError, CheckpointError, json.JSONDecodeError, AttributeError) as error:
            warnings.warn(f"ignoring unreadable cached model {weights} ({error}); retraining", stacklevel=3)
    model, log, seconds = train()
    data = encode_weights(model)
    atomic_write(weights, data)
    atomic_write(log_file, json.dumps({"config": config, "sha256": sha256_of(data), "train_seconds": seconds,
                                       "trained_on": machine(), "log": log}, indent=1) + "\n")
    return Loaded(model.eval(), log, seconds, "trained")


def ship(name: str, kind: str, config: dict[str, Any], model: nn.Module, log: Any, seconds: float,
         trained_on: dict[str, Any], folder: Path | None = None) -> Entry:
    """Write ``model``'s weights into the shipped folder under a name carrying its SHA-256; return its entry
    (the caller adds it to the manifest)."""
    folder = folder or models_dir()
    data = encode_weights(model, {"name": name, "kind": kind, "config": json.dumps(config, sort_keys=True)})
    digest = sha256_of(data)
    file = f"{name}-{digest[:8]}.safetensors"
    atomic_write(folder / file, data)
    return Entry(name, kind, config, file, digest, log, round(seconds, 1), trained_on, parameter_count(model))
