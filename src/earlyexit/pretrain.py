"""Train the book's models ahead of the chapters, two at a time: ``make models``.

The chapters train what they need themselves (``train_cached``), one model after another,
each with every core. On a small machine, two trainings side by side with one thread each
finish sooner: convolutions on 28x28 images gain little from a second thread (on the
2-core machine the book was written on, about 1.26x more training steps per second in all).

Which models: ``notebooks/models.json``, written by the chapters' own recorded run
(``make notebooks`` sets ``EARLYEXIT_MODEL_LIST``; see :func:`earlyexit.utils.note_model`).
A model missing from the list is still trained by its chapter, only later and alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import torch
from tqdm.std import tqdm

from .data import load_splits
from .text import make_splits
from .training import TrainConfig, cache_path, train_cached
from .transformer import LMConfig, lm_cache_path, train_lm_cached
from .utils import check_int, repo_root

KINDS = {"cnn": (TrainConfig, cache_path), "lm": (LMConfig, lm_cache_path)}


def read_model_list(path: str | Path) -> list[TrainConfig | LMConfig]:
    """The configurations listed in ``path``; a ValueError names an entry that is not one."""
    entries = json.loads(Path(path).read_text())
    configs = []
    for name, entry in entries.items():
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind not in KINDS:
            raise ValueError(f"{path}: entry {name!r} has kind {kind!r}; expected one of {sorted(KINDS)}")
        config_type, where = KINDS[kind]
        config = config_type(**entry["config"])
        if where(config).stem != name:
            raise ValueError(f"{path}: entry {name!r} describes the model {where(config).stem!r}")
        configs.append(config)
    return configs


def checkpoint(config: TrainConfig | LMConfig, cache_dir: str | Path | None = None) -> Path:
    """Where the cache keeps the model trained from ``config``."""
    for config_type, where in KINDS.values():
        if isinstance(config, config_type):
            return where(config, cache_dir)
    raise TypeError(f"expected a TrainConfig or an LMConfig, got {type(config).__name__}")


def missing(configs: list[TrainConfig | LMConfig], cache_dir: str | Path | None = None) -> list:
    """The configurations with no checkpoint yet, the longest trainings first."""
    def work(config):  # a rough cost, only to start the long ones first
        if isinstance(config, LMConfig):
            return config.steps * config.layers * config.width * 10
        return config.epochs * sum(config.channels)

    return sorted((c for c in configs if not checkpoint(c, cache_dir).exists()), key=work, reverse=True)


def _one_thread_each(threads: int) -> None:
    torch.set_num_threads(threads)


_DATA: dict = {}


def train_one(config: TrainConfig | LMConfig, cache_dir: str | Path | None = None) -> float:
    """Train and store one model (in a worker process); its training time in seconds."""
    if isinstance(config, LMConfig):
        if "lm" not in _DATA:
            _DATA["lm"] = make_splits()
        return train_lm_cached(config, _DATA["lm"], progress=False, cache_dir=cache_dir).train_seconds
    key = (config.dataset, config.val_size, config.split_seed)
    if key not in _DATA:
        _DATA[key] = load_splits(config.dataset, val_size=config.val_size, seed=config.split_seed)
    return train_cached(config, _DATA[key], progress=False, cache_dir=cache_dir).train_seconds


def pretrain(configs: list[TrainConfig | LMConfig], workers: int = 2, cache_dir: str | Path | None = None,
             progress: bool = True) -> int:
    """Train every configuration not yet in the cache, ``workers`` at a time; how many were trained."""
    check_int("workers", workers)
    todo = missing(configs, cache_dir)
    if not todo:
        return 0
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_one_thread_each,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(train_one, config, cache_dir) for config in todo]
        for future in tqdm(as_completed(futures), total=len(futures), unit="model", disable=not progress):
            future.result()  # a failed training fails the whole run, with its own error
    return len(todo)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m earlyexit.pretrain [LIST] [--workers N]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_list", nargs="?", default=str(repo_root() / "notebooks" / "models.json"))
    parser.add_argument("--workers", type=int, default=1 if torch.cuda.is_available() else min(2, os.cpu_count() or 1))
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    configs = read_model_list(args.model_list)
    start = time.perf_counter()
    trained = pretrain(configs, args.workers, args.cache_dir, progress=sys.stderr.isatty())
    print(f"models: {len(configs) - trained} of {len(configs)} were in the cache, {trained} trained "
          f"({args.workers} at a time) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
