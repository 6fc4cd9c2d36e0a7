"""A small training loop for the multi-exit CNN; :func:`train_cached` loads the book's shipped
weights or this machine's cached ones (:mod:`earlyexit.checkpoints`) before it trains.

Three regimes (Chapters 3-4, compared in Chapter 6):

* ``"joint"``: BranchyNet's weighted sum of every exit's cross-entropy, every sample, every step;
* ``"masked"``: gradient masking done per sample. Exit 1 learns from every sample; the next
  block and exit only from samples whose exit-1 max-softmax is at most ``gate_threshold``
  (and so on at every exit);
* ``"learned"``: the same, but the gate is the learned confidence head (the forum's design).

In every regime each confidence head learns, on *detached* features, to predict whether its
exit is right (``confidence_weight`` > 0); it never changes the backbone. With
``confidence_weight=0`` nothing trains it, as in the forum post.

A **static** network, the skeptic's baseline of Chapter 6, is the same code with every
early exit switched off (:func:`static_config`): exit weights 0 but the last, nothing trains
the confidence heads, and only the plain path is ever run or counted.

The optimiser is Adam with a one-cycle learning-rate schedule (peak ``lr``), mini-batches of
``batch_size``, for ``epochs`` epochs: by default the length the convergence ladder chooses
(:mod:`earlyexit.recipes`, Chapter 4). Training runs on the GPU when there is one (``device``), else on the CPU in
channels-last memory order, the layout oneDNN's CPU convolutions work in.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.std import tqdm  # plain text bars: no ipywidgets needed in Jupyter

from .checkpoints import load_or_train
from .checks import check_int, check_number
from .data import DATASETS, Splits, make_loader
from .evaluation import collect, exit_accuracies
from .exits import exit_decision, learned_confidence, max_softmax
from .losses import check_weights, confidence_loss
from .models import FORUM_CHANNELS, EarlyExitCNN
from .utils import progress_enabled, resolve_device, seed_everything

REGIMES = ("joint", "masked", "learned")
CACHE_FORMAT = 2  # bump when the training code changes what a configuration produces


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash names the checkpoint.

    Values are normalised on creation (ints to floats, lists to tuples), so that equal
    configurations compare equal and share one cache key.
    """

    regime: str = "joint"
    channels: tuple[int, ...] = FORUM_CHANNELS
    exit_weights: tuple[float, ...] | None = None  # None: 1 for every exit
    confidence_weight: float = 1.0
    gate_threshold: float = 0.9
    epochs: int = 6  # the converged length (earlyexit.recipes, Chapter 4)
    batch_size: int = 128
    lr: float = 5e-3
    seed: int = 0
    dataset: str = "fashion-mnist"
    val_size: int = 5000
    split_seed: int = 0

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen dataclass
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r}; expected one of {REGIMES}")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; expected one of {sorted(DATASETS)}")
        channels = tuple(self.channels)
        if len(channels) < 2:
            raise ValueError(f"channels must list at least two blocks' channel counts, got {self.channels!r}")
        set_("channels", tuple(check_int(f"channels[{i}]", c) for i, c in enumerate(channels)))
        weights = (1.0,) * len(channels) if self.exit_weights is None else self.exit_weights
        set_("exit_weights", check_weights(weights, len(channels), "exit_weights"))
        if not any(self.exit_weights):
            raise ValueError("at least one exit weight must be above 0")
        set_("confidence_weight", check_number("confidence_weight", self.confidence_weight))
        set_("gate_threshold", check_number("gate_threshold", self.gate_threshold, 0.0, 1.0))
        set_("lr", check_number("lr", self.lr, open_low=True))
        for name in ("epochs", "batch_size", "val_size"):
            check_int(name, getattr(self, name))
        for name in ("seed", "split_seed"):
            check_int(name, getattr(self, name), 0)

    def key(self) -> str:
        """A short hash of the full configuration (and of the cache format)."""
        text = json.dumps({"format": CACHE_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def name(self) -> str:
        """The model's name in the manifest and the cache: regime and key."""
        return f"{self.regime}-{self.key()}"

    def as_json(self) -> dict:
        """The configuration as JSON reads it back (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))


def static_config(channels: tuple[int, ...], seed: int = 0, **settings: object) -> TrainConfig:
    """A plain CNN with ``channels``, trained with the book's recipe: only the last exit learns.

    Its early exits and confidence heads exist (the same code builds it) but get no loss, and a
    static network never runs them: its cost is :func:`earlyexit.flops.full_network_flops`.
    """
    channels = tuple(channels)
    return TrainConfig(regime="joint", channels=channels, exit_weights=(0.0,) * (len(channels) - 1) + (1.0,),
                       confidence_weight=0.0, seed=seed, **settings)


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
    """The loss of one batch under ``config.regime``, and a few statistics about it.

    Exit k's cross-entropy is summed over the samples that reach it and divided by the batch
    size, so in the joint regime (everyone reaches every exit) it is the plain mean. In the
    gated regimes, only the samples that did not exit go through the next block: the same
    gradient as :func:`~earlyexit.losses.masked_deep_loss` over the whole batch
    (``tests/test_training.py``), for less work.
    """
    batch = len(targets)
    features, reaching = images, targets
    loss = images.new_zeros(())
    confidences = []
    for k, (block, head) in enumerate(zip(model.blocks, model.exits)):
        features = block(features)
        logits = head(features)
        loss = loss + config.exit_weights[k] * F.cross_entropy(logits, reaching, reduction="sum") / batch
        if k == len(model.exits) - 1:
            break
        confidence_logit = model.confidence_heads[k](features.detach()).squeeze(1)
        confidences.append(confidence_logit.detach())
        if config.confidence_weight > 0 and len(reaching):
            # mean over the samples reaching this exit, times their share of the batch
            loss = loss + config.confidence_weight * confidence_loss(confidence_logit, logits, reaching) \
                * len(reaching) / batch
        if config.regime != "joint":
            gate = max_softmax(logits.detach()) if config.regime == "masked" \
                else learned_confidence(confidence_logit.detach())
            going_on = ~exit_decision(gate, config.gate_threshold)  # the exit decision routing makes
            features, reaching = features[going_on], reaching[going_on]
    stats = {"loss": float(loss.detach()), "deep_fraction": len(reaching) / max(batch, 1),
             "confidence": float(torch.sigmoid(confidences[0]).mean()) if batch else math.nan}
    return loss, stats


def _check_data(config: TrainConfig, data: Splits) -> None:
    if not isinstance(data, Splits):
        raise TypeError(f"data must be the Splits of earlyexit.data.load_splits, got {type(data).__name__}")
    if data.name != config.dataset:
        raise ValueError(f"config is for {config.dataset!r} but the data is {data.name!r}")


def train(config: TrainConfig, data: Splits, progress: bool | None = None,
          device: torch.device | str | None = None,
          stop_after: int | None = None) -> TrainedModel:
    """Train a fresh model from ``config.seed``: Adam, one-cycle schedule.

    ``stop_after`` ends training after that many epochs of the full
    schedule: the first epochs of the whole run (the provenance check
    retrains such a prefix).
    """
    _check_data(config, data)
    epochs = config.epochs if stop_after is None \
        else min(check_int("stop_after", stop_after), config.epochs)
    device = resolve_device(device)
    seed_everything(config.seed)
    model = EarlyExitCNN(config.channels, num_classes=len(data.classes))
    # channels-last on a CPU: oneDNN's own layout, no conversion inside
    # each convolution
    cpu = device.type == "cpu"
    layout = torch.channels_last if cpu else torch.contiguous_format
    model = model.to(device=device, memory_format=layout)
    images, labels = data.train_images.to(device), data.train_labels.to(device)
    loader = make_loader(images, labels, config.batch_size, shuffle=True,
                         seed=config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=config.epochs * len(loader))
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(total=config.epochs * len(loader), unit="batch", mininterval=1.0,
               desc=f"{config.regime} seed {config.seed}",
               disable=not progress_enabled(progress))
    for epoch in range(epochs):
        model.train()
        totals = {"loss": 0.0, "deep_fraction": 0.0, "confidence": 0.0}
        for images, targets in loader:
            images = images.contiguous(memory_format=layout)
            loss, stats = training_loss(model, images, targets, config)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            for name in totals:
                totals[name] += stats[name] / len(loader)
            bar.update()
        val = collect(model, data.val_images.to(device),
                      data.val_labels.to(device))
        history.append({"epoch": epoch + 1,
                        **{f"train_{k}": v for k, v in totals.items()},
                        **{f"val_exit{k}_accuracy": v
                           for k, v in exit_accuracies(val).items()}})
    bar.close()
    model = model.to(memory_format=torch.contiguous_format).eval()
    seconds = time.perf_counter() - start
    return TrainedModel(model, config, history, seconds, from_cache=False)


def train_cached(config: TrainConfig, data: Splits, progress: bool | None = None,
                 cache_dir: str | Path | None = None, device: torch.device | str | None = None) -> TrainedModel:
    """``config``'s model: the book's shipped weights when it is one of them (verified,
    :mod:`earlyexit.checkpoints`), else from this machine's cache, else trained now and cached.

    The model comes back on the CPU, whatever device trained it.
    """
    _check_data(config, data)

    def fresh() -> tuple[torch.nn.Module, list, float]:
        trained = train(config, data, progress, device)
        return trained.model.cpu(), trained.history, trained.train_seconds

    loaded = load_or_train(config.name(), "cnn", config.as_json(),
                           lambda: EarlyExitCNN(config.channels, len(data.classes)), fresh,
                           cache=Path(cache_dir) if cache_dir is not None else None)
    return TrainedModel(loaded.model, config, loaded.log, loaded.train_seconds, loaded.source != "trained")
