"""Train the book's models: ``make models``.

The book ships every model its chapters use (``notebooks/models/``, see
:mod:`earlyexit.checkpoints`). This command trains the ones the manifest lists but the folder
lacks (a planned model, or a file deleted to rebuild it), two at a time with one thread each:
convolutions on 28x28 images gain little from a second thread, so on a small machine two
trainings side by side finish sooner than one after another with every core. Each model is
shipped as soon as it finishes, with its training log and the machine that trained it.

Before training, the current code's recipe fingerprint (:mod:`earlyexit.provenance`) is
compared with the one the shipped models were trained under: models trained by two
different recipes are never mixed in one manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import torch
from tqdm.std import tqdm

from .checkpoints import Entry, Manifest, machine, models_dir, read_manifest, ship, write_manifest
from .checks import check_int
from .data import load_splits
from .provenance import differences, fingerprint
from .text import make_splits
from .training import TrainConfig, train
from .transformer import LMConfig, train_lm

Config = TrainConfig | LMConfig


def config_of(entry: Entry) -> Config:
    """The configuration an entry describes; a ValueError names the entry when it is not one."""
    try:
        config = TrainConfig(**entry.config) if entry.kind == "cnn" else LMConfig(**entry.config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"manifest entry {entry.name!r}: not a valid {entry.kind} configuration ({error})") from None
    if config.name() != entry.name:
        raise ValueError(f"manifest entry {entry.name!r} describes the model {config.name()!r}")
    return config


@contextlib.contextmanager
def manifest_lock(folder: Path | None = None) -> Iterator[None]:
    """Hold the manifest for one read-modify-write: two ``make models`` at once lose no entry."""
    folder = folder or models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".manifest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def plan(configs: list[Config], folder: Path | None = None) -> int:
    """Add ``configs`` to the manifest as models to train (no file yet); how many were new."""
    with manifest_lock(folder):
        return _plan(configs, folder)


def _plan(configs: list[Config], folder: Path | None) -> int:
    manifest = read_manifest(folder)
    new = 0
    for config in configs:
        if not isinstance(config, (TrainConfig, LMConfig)):
            raise TypeError(f"expected a TrainConfig or an LMConfig, got {type(config).__name__}")
        if config.name() not in manifest.entries:
            kind = "lm" if isinstance(config, LMConfig) else "cnn"
            manifest.entries[config.name()] = Entry(config.name(), kind, config.as_json())
            new += 1
    write_manifest(manifest, folder)
    return new


def missing(manifest: Manifest, folder: Path | None = None) -> list[Entry]:
    """The entries whose weights file is absent, the longest trainings first."""
    folder = folder or models_dir()

    def work(entry: Entry) -> float:  # rough seconds on one thread, only to start the long ones first
        c = config_of(entry)  # a broken entry is named here
        if isinstance(c, LMConfig):
            return 6e-6 * c.steps * c.layers * c.width ** 2
        return 0.36 * c.epochs * sum(c.channels)

    todo = [e for e in manifest.entries.values() if e.file is None or not (folder / e.file).is_file()]
    return sorted(todo, key=work, reverse=True)


_DATA: dict = {}


def resume_file(entry: Entry, folder: Path) -> Path:
    """Where a resumable run of ``entry`` keeps its state (:mod:`earlyexit.resume`)."""
    return folder / f"{entry.name}.resume.pt"


def train_one(entry: Entry, folder: Path, device: str = "cpu", resume: bool = False) -> Entry:
    """Train one model (in a worker process) on ``device``, ship its weights into ``folder``, return
    its new entry (whose ``trained_on`` names the GPU, if one trained it). With ``resume``, a
    language model's run is saved every few minutes beside the weights and continued from there."""
    config = config_of(entry)
    if isinstance(config, LMConfig):
        if "lm" not in _DATA:
            _DATA["lm"] = make_splits()
        state = resume_file(entry, folder) if resume else None
        trained = train_lm(config, _DATA["lm"], progress=False, device=device, resume=state,
                           cuda_graph=state is None)
        model, log = trained.model, trained.log
    else:
        key = (config.dataset, config.val_size, config.split_seed)
        if key not in _DATA:
            _DATA[key] = load_splits(config.dataset, val_size=config.val_size, seed=config.split_seed)
        trained = train(config, _DATA[key], progress=False, device=device)
        model, log = trained.model, trained.history
    shipped = ship(entry.name, entry.kind, entry.config, model, log, trained.train_seconds, machine(device),
                   folder)
    if resume:
        resume_file(entry, folder).unlink(missing_ok=True)  # shipped: the run's state is no longer needed
    return shipped


def _threads(count: int) -> None:
    torch.set_num_threads(count)


def check_recipe(manifest: Manifest, kinds: set[str]) -> None:
    """Record each kind's recipe fingerprint, or raise if the code no longer matches the recorded one."""
    for kind in sorted(kinds):
        current = fingerprint(kind)
        recorded = manifest.fingerprints.get(kind)
        if recorded is None:
            manifest.fingerprints[kind] = current
            continue
        problems = differences(recorded, current)
        if problems:
            raise RuntimeError(f"the {kind} training recipe changed since the shipped {kind} models were trained "
                               f"({'; '.join(problems)}). Models of two recipes are never mixed: retrain every "
                               f"{kind} model (delete their files and the manifest's '{kind}' fingerprint), "
                               "or restore the code they came from")


def pretrain(workers: int = 2, folder: Path | None = None, progress: bool = True,
             kinds: tuple[str, ...] = ("cnn", "lm"), threads: int | None = None,
             only: tuple[str, ...] | None = None, device: str = "cpu", resume: bool = False) -> int:
    """Train every listed model of ``kinds`` (and among ``only``, the names given) whose file is
    missing, ``workers`` at a time on ``device``, each with ``threads`` threads (default: the cores
    shared among the workers); how many were trained. ``resume``: see :func:`train_one`."""
    check_int("workers", workers)
    folder = folder or models_dir()
    with manifest_lock(folder):
        manifest = read_manifest(folder)
        todo = [e for e in missing(manifest, folder) if e.kind in kinds and (only is None or e.name in only)]
        if not todo:
            return 0
        check_recipe(manifest, {e.kind for e in todo})
        write_manifest(manifest, folder)
    threads = max(1, (os.cpu_count() or 1) // workers) if threads is None else check_int("threads", threads)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(train_one, entry, folder, device, resume) for entry in todo]
        for future in tqdm(as_completed(futures), total=len(futures), unit="model", disable=not progress):
            entry = future.result()  # a failed training fails the whole run, with its own error
            with manifest_lock(folder):
                manifest = read_manifest(folder)
                old = manifest.entries.get(entry.name)
                if old is not None and old.file and old.file != entry.file:
                    (folder / old.file).unlink(missing_ok=True)  # the replaced weights
                manifest.entries[entry.name] = entry
                write_manifest(manifest, folder)
    return len(todo)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m earlyexit.pretrain [--workers N] [--folder DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1 if torch.cuda.is_available() else min(2, os.cpu_count() or 1))
    parser.add_argument("--folder", default=None, help="the shipped models' folder (default notebooks/models)")
    parser.add_argument("--kind", choices=("cnn", "lm"), default=None, help="train only models of this kind")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: cores / workers)")
    parser.add_argument("--only", nargs="+", default=None, help="train only these manifest entries")
    parser.add_argument("--device", default="cpu", help="where to train (default cpu: the shipped models' logs "
                        "come from CPUs; 'cuda' is faster and records the GPU in each model's entry)")
    parser.add_argument("--resume", action="store_true", help="save each language model's run every few minutes "
                        "(<name>.resume.pt beside the weights) and continue a saved run: for trainings longer "
                        "than a session")
    args = parser.parse_args(argv)
    folder = Path(args.folder) if args.folder else None
    total = len(read_manifest(folder).entries)
    start = time.perf_counter()
    kinds = (args.kind,) if args.kind else ("cnn", "lm")
    trained = pretrain(args.workers, folder, progress=sys.stderr.isatty(), kinds=kinds, threads=args.threads,
                       only=tuple(args.only) if args.only else None, device=args.device,
                       resume=args.resume)
    print(f"models: {total - trained} of {total} were present, {trained} trained "
          f"({args.workers} at a time) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
