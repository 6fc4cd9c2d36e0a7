"""A small training loop for the multi-exit CNN, and a checkpoint cache under ``.cache/``.

Three regimes (Chapters 3-5):

* ``"joint"``: BranchyNet's weighted sum of both exits' cross-entropy, every sample, every step;
* ``"masked"``: gradient masking done per sample. Exit 1 learns from every sample; the deep
  exit only from samples whose exit-1 max-softmax is at most ``gate_threshold``;
* ``"learned"``: the same, but the gate is the learned confidence head (the forum's design).

In every regime the confidence head learns, on *detached* block-1 features, to predict
whether exit 1 is right (``confidence_weight`` > 0); it never changes the backbone. With
``confidence_weight=0`` nothing trains it, as in the forum post.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.std import tqdm

from .data import Splits, make_loader
from .exits import learned_confidence, max_softmax
from .losses import confidence_loss, joint_loss
from .models import EarlyExitCNN
from .utils import repo_root, seed_everything

REGIMES = ("joint", "masked", "learned")
CACHE_FORMAT = 1  # bump when the training code changes what a configuration produces


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash names the checkpoint."""

    regime: str = "joint"
    exit_weights: tuple[float, float] = (1.0, 1.0)
    confidence_weight: float = 1.0
    gate_threshold: float = 0.9
    epochs: int = 4
    batch_size: int = 128
    lr: float = 5e-3
    seed: int = 0
    dataset: str = "fashion-mnist"
    val_size: int = 5000
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r}; expected one of {REGIMES}")
        if not 0.0 <= self.gate_threshold <= 1.0:
            raise ValueError(f"gate_threshold must lie in [0, 1], got {self.gate_threshold}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")

    def key(self) -> str:
        """A short hash of the full configuration (and of the cache format)."""
        text = json.dumps({"format": CACHE_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class TrainedModel:
    """A model with its per-epoch history and how it was obtained."""

    model: EarlyExitCNN
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    from_cache: bool = False


def training_loss(model: EarlyExitCNN, images: torch.Tensor, targets: torch.Tensor,
                  config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch under ``config.regime``, and a few statistics about it."""
    features1 = model.block1(images)
    logits1 = model.exit1(features1)
    confidence_logit = model.confidence1(features1.detach()).squeeze(1)
    w1, w2 = config.exit_weights
    if config.regime == "joint":
        logits2 = model.exit2(model.block2(features1))
        loss = joint_loss((logits1, logits2), targets, config.exit_weights)
        kept = torch.ones_like(targets, dtype=torch.bool)
    else:
        gate = max_softmax(logits1.detach()) if config.regime == "masked" else learned_confidence(confidence_logit.detach())
        kept = gate <= config.gate_threshold
        # Only the samples that did not exit go through block 2: the same gradient as
        # losses.masked_deep_loss over the full batch (tests/test_training.py), less work.
        deep_logits = model.exit2(model.block2(features1[kept]))
        deep = F.cross_entropy(deep_logits, targets[kept], reduction="sum") / len(targets)
        loss = w1 * F.cross_entropy(logits1, targets) + w2 * deep
    if config.confidence_weight > 0:
        loss = loss + config.confidence_weight * confidence_loss(confidence_logit, logits1, targets)
    stats = {"loss": float(loss.detach()), "deep_fraction": float(kept.float().mean()),
             "confidence": float(torch.sigmoid(confidence_logit.detach()).mean())}
    return loss, stats


@torch.no_grad()
def evaluate(model: EarlyExitCNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> dict[str, float]:
    """Accuracy of each exit and the mean learned confidence on a split."""
    model.eval()
    correct = torch.zeros(2)
    confidence = 0.0
    for start in range(0, len(labels), batch_size):
        out = model(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        correct += torch.stack([(logits.argmax(1) == y).sum() for logits in out.exit_logits]).float()
        confidence += float(torch.sigmoid(out.confidence_logit).sum())
    n = max(len(labels), 1)
    return {"exit1_accuracy": float(correct[0]) / n, "exit2_accuracy": float(correct[1]) / n, "confidence": confidence / n}


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return os.environ.get("EARLYEXIT_PROGRESS", "1") != "0"


def train(config: TrainConfig, data: Splits, progress: bool | None = None) -> TrainedModel:
    """Train a fresh :class:`~earlyexit.models.EarlyExitCNN` from ``config.seed``; Adam with a one-cycle schedule."""
    if data.name != config.dataset:
        raise ValueError(f"config is for {config.dataset!r} but the data is {data.name!r}")
    seed_everything(config.seed)
    model = EarlyExitCNN(num_classes=len(data.classes))
    loader = make_loader(data.train_images, data.train_labels, config.batch_size, shuffle=True, seed=config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.epochs * len(loader))
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(total=config.epochs * len(loader), disable=not _progress_enabled(progress),
               desc=f"{config.regime} seed {config.seed}", unit="batch", mininterval=1.0)
    for epoch in range(config.epochs):
        model.train()
        totals = {"loss": 0.0, "deep_fraction": 0.0, "confidence": 0.0}
        for images, targets in loader:
            loss, stats = training_loss(model, images, targets, config)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            for name in totals:
                totals[name] += stats[name] / len(loader)
            bar.update()
            bar.set_postfix(loss=f"{stats['loss']:.3f}", refresh=False)
        validation = evaluate(model, data.val_images, data.val_labels)
        history.append({"epoch": epoch + 1, **{f"train_{k}": v for k, v in totals.items()},
                        **{f"val_{k}": v for k, v in validation.items()}})
    bar.close()
    model.eval()
    return TrainedModel(model, config, history, time.perf_counter() - start, from_cache=False)


def cache_path(config: TrainConfig, cache_dir: str | Path | None = None) -> Path:
    """Where the checkpoint of ``config`` lives."""
    folder = Path(cache_dir) if cache_dir is not None else repo_root() / ".cache" / "models"
    return folder / f"{config.regime}-{config.key()}.pt"


def save_checkpoint(trained: TrainedModel, path: Path) -> None:
    """Write atomically: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": asdict(trained.config), "state_dict": trained.model.state_dict(),
               "history": trained.history, "train_seconds": trained.train_seconds}
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(config: TrainConfig, path: Path, num_classes: int = 10) -> TrainedModel:
    """Load a checkpoint with ``weights_only=True``; raises if it is unreadable or not ``config``'s."""
    payload = torch.load(path, weights_only=True)
    stored = payload["config"]
    stored["exit_weights"] = tuple(stored["exit_weights"])
    if TrainConfig(**stored) != config:
        raise ValueError(f"{path} holds a different configuration")
    model = EarlyExitCNN(num_classes)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return TrainedModel(model, config, payload["history"], payload["train_seconds"], from_cache=True)


def train_cached(config: TrainConfig, data: Splits, progress: bool | None = None,
                 cache_dir: str | Path | None = None) -> TrainedModel:
    """Load ``config``'s model from the cache, or train it and store it; retrain a corrupt file."""
    path = cache_path(config, cache_dir)
    if path.exists():
        try:
            return load_checkpoint(config, path, len(data.classes))
        except Exception as error:  # a corrupt or foreign file is replaced, never trusted
            warnings.warn(f"ignoring unreadable checkpoint {path.name} ({type(error).__name__}); retraining")
    trained = train(config, data, progress)
    save_checkpoint(trained, path)
    return trained
