"""The book's models, planned once: every configuration a chapter trains, and why.

Nothing here trains anything. :func:`book_models` lists the configurations; the manifest
(:mod:`earlyexit.checkpoints`) ships them and ``make models`` trains any that are missing.

* **How long to train** (Chapter 4): the forum's network with the joint loss, on a ladder of
  training lengths (:data:`LADDER_EPOCHS`), two seeds each. With a one-cycle schedule a
  shorter run is not the first part of a longer one, so each length is a run of its own.
  The book trains every CNN for the shortest length whose mean validation accuracy, at every
  exit, is within :data:`CONVERGED_WITHIN` of the best length's: the default of
  :class:`~earlyexit.training.TrainConfig`. The language models' ladder is
  :data:`LM_LADDER_STEPS` (Chapter 11), judged on the validation text's answer digits.
* **Seeds**: :data:`SEEDS`, five, for every model a conclusion rests on.
* **The skeptic's alternatives** (Chapter 6): static networks trained with the same recipe,
  one block (:func:`one_block_config`) and two blocks across :data:`STATIC_WIDTHS`, and the
  three-block family (:data:`THREE_BLOCKS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checkpoints import Manifest, read_manifest
from .checks import check_number
from .training import TrainConfig, static_config
from .transformer import LMConfig

#: The seeds of every model a conclusion rests on.
SEEDS = (0, 1, 2, 3, 4)
#: The seeds of each rung of the training-length ladders.
LADDER_SEEDS = (0, 1)
#: The CNN ladder's training lengths, in epochs (Chapter 4).
LADDER_EPOCHS = (1, 2, 4, 6, 8, 12, 16)
#: The language models' ladder, in steps (Chapter 11).
LM_LADDER_STEPS = (1500, 3000, 6000, 12000, 24000, 48000, 96000)
#: Chapter 12's twelve-layer model, the six-layer recipe (the ladder's length) with twice the
#: layers. Its training outlasted a working session, so it was resumed from saved state
#: (:mod:`earlyexit.resume`), and its log lists each session's machine.
DEEP_LM = LMConfig(layers=12)
#: Converged means within this of the best length's validation accuracy (a tenth of a point).
CONVERGED_WITHIN = 0.001

#: The two-block static networks, the forum's (16, 32) and narrower ones with the same shape.
STATIC_WIDTHS = ((4, 7), (8, 14), (12, 21), (16, 32))
#: The one-block static networks, a block and its classifier, nothing after it.
ONE_BLOCK_WIDTHS = (8, 16, 32, 64)
#: The three-block network of Chapters 9 and 10 (each block doubles the channels).
THREE_BLOCKS = (16, 32, 64)
THREE_BLOCK_STATIC_SEEDS = (0, 1, 2)


def one_block_config(channels: int, seed: int = 0, **settings: object) -> TrainConfig:
    """A one-block network: block 1 with ``channels`` and its classifier, trained alone.

    The package's networks have at least two blocks, so a second block of one channel
    stands behind it with an exit weight of 0: nothing trains it, and a one-block network
    never runs it (its cost is exit 1's, :func:`earlyexit.flops.exit_costs`).
    """
    return TrainConfig(regime="joint", channels=(channels, 1), exit_weights=(1.0, 0.0), confidence_weight=0.0,
                       seed=seed, **settings)


def ladder_models() -> list[TrainConfig | LMConfig]:
    """The training-length ladders of the CNN recipe and of the language-model recipe."""
    cnn = [TrainConfig(epochs=e, seed=s) for e in LADDER_EPOCHS for s in LADDER_SEEDS]
    lm = [LMConfig(steps=n, seed=s) for n in LM_LADDER_STEPS for s in LADDER_SEEDS]
    return cnn + lm


def book_models() -> list[TrainConfig | LMConfig]:
    """Every model the chapters use (the ladders included), each once."""
    configs: list[TrainConfig | LMConfig] = list(ladder_models())
    for seed in SEEDS:
        configs += [
            TrainConfig(seed=seed),  # the book's standard model (joint loss)
            TrainConfig(regime="masked", seed=seed),  # Chapter 3's gradient masking
            TrainConfig(regime="learned", seed=seed),  # ... gated by the learned confidence
            TrainConfig(exit_weights=(0.3, 1.0), seed=seed),  # Chapter 4's unequal weights
            TrainConfig(channels=THREE_BLOCKS, seed=seed),  # Chapters 9 and 10
        ]
        configs += [static_config(widths, seed=seed) for widths in STATIC_WIDTHS]
        configs += [one_block_config(c, seed=seed) for c in ONE_BLOCK_WIDTHS]
    configs += [static_config(THREE_BLOCKS, seed=s) for s in THREE_BLOCK_STATIC_SEEDS]
    # Chapter 3: the forum's design as posted, a confidence head that nothing trains
    configs.append(TrainConfig(regime="learned", confidence_weight=0.0, gate_threshold=0.5))
    # Chapters 11 and 12: three seeds of the six-layer model, one of twelve layers
    configs += [LMConfig(seed=s) for s in (0, 1, 2)] + [DEEP_LM]
    unique: dict[str, TrainConfig | LMConfig] = {}
    for config in configs:
        unique.setdefault(config.name(), config)
    return list(unique.values())


@dataclass(frozen=True)
class Ladder:
    """Validation scores of one recipe trained for several lengths: ``scores[length][metric]``
    holds one value per seed (a metric per exit for the CNNs)."""

    unit: str  # "epochs" or "steps"
    scores: dict[int, dict[str, list[float]]]

    @property
    def lengths(self) -> list[int]:
        return sorted(self.scores)

    def mean(self, length: int) -> float:
        """The score of a length: the mean over its metrics (exits) and seeds."""
        values = [v for per_seed in self.scores[length].values() for v in per_seed]
        return sum(values) / len(values)

    def best(self) -> int:
        return max(self.lengths, key=self.mean)

    def converged(self, within: float = CONVERGED_WITHIN) -> int:
        """The shortest length whose score is within ``within`` of the best length's."""
        within = check_number("within", within)
        best = self.mean(self.best())
        return min(n for n in self.lengths if self.mean(n) >= best - within)


def _ladder(manifest: Manifest, configs: list, unit: str, score) -> Ladder:
    scores: dict[int, dict[str, list[float]]] = {}
    for config in configs:
        entry = manifest.entries.get(config.name())
        if entry is None or entry.log is None:
            raise ValueError(f"the ladder model {config.name()} ({unit} {getattr(config, unit)}, seed {config.seed}) "
                             "is not in the manifest yet: run `make models`")
        for metric, value in score(entry.log).items():
            scores.setdefault(getattr(config, unit), {}).setdefault(metric, []).append(value)
    return Ladder(unit, scores)


def cnn_ladder(folder: Path | None = None) -> Ladder:
    """The CNN recipe's ladder, from the shipped models' logs: each exit's validation accuracy
    after the last epoch."""
    configs = [c for c in ladder_models() if isinstance(c, TrainConfig)]

    def score(history: list[dict]) -> dict[str, float]:
        last = history[-1]
        exits = sorted(int(k[len("val_exit"):-len("_accuracy")]) for k in last if k.startswith("val_exit"))
        return {f"exit {k}": last[f"val_exit{k}_accuracy"] for k in exits}

    return _ladder(read_manifest(folder), configs, "epochs", score)


def lm_ladder(folder: Path | None = None) -> Ladder:
    """The language models' ladder: each exit's next-token accuracy on the validation text's
    answer digits (the tokens that need arithmetic), as each model's training log recorded it
    when training ended (:func:`~earlyexit.transformer.exit_accuracy`, whose overlapping
    windows give every prediction context; a test re-evaluates a shipped model and requires
    its log's numbers)."""
    def score(log: object) -> dict[str, float]:
        if not isinstance(log, dict) or log.get("validation_scored_with") != "exit_logits_over":
            raise ValueError("a ladder model's log must hold its validation accuracy scored with "
                             "exit_logits_over: retrain it with `make models`")
        return {f"layer {k + 1}": float(a) for k, a in enumerate(log["validation_accuracy"]["answer"])}

    configs = [c for c in ladder_models() if isinstance(c, LMConfig)]
    return _ladder(read_manifest(folder), configs, "steps", score)
