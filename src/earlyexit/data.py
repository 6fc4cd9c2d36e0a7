"""Find, load and split Fashion-MNIST (or MNIST) with torchvision's own dataset classes.

The files are looked for, in order, in: an explicit ``root``, the ``EARLYEXIT_DATA``
environment variable, ``data/`` in the repository, the folder of the Debian package
(``/usr/share/datasets/fashion-mnist``), and only then downloaded by torchvision.
A folder may hold the four IDX files flat (``.gz`` or not, as Debian ships them) or in
torchvision's layout (``<root>/FashionMNIST/raw/...``). Compressed or flat files are
unpacked once into torchvision's layout under ``data/`` so torchvision can read them.

Run ``python -m earlyexit.data`` to make sure the data is present.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torchvision import datasets
from torchvision.datasets.utils import extract_archive

from .utils import check_int, repo_root

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetInfo:
    """What the book needs to know about one dataset."""

    torchvision_class: type[datasets.MNIST]
    mean: float
    std: float
    debian_package: str | None
    debian_dir: Path | None


DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        datasets.FashionMNIST, 0.2860, 0.3530, "dataset-fashion-mnist", Path("/usr/share/datasets/fashion-mnist")
    ),
    "mnist": DatasetInfo(datasets.MNIST, 0.1307, 0.3081, None, None),
}

class DataNotFoundError(FileNotFoundError):
    """No copy of the dataset was found and it could not be downloaded."""


class DataCorruptError(RuntimeError):
    """The dataset files exist but cannot be read (truncated or not IDX)."""


def _dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def candidate_dirs(name: str = "fashion-mnist", root: str | Path | None = None) -> list[tuple[str, Path]]:
    """The places searched for the dataset, in order, each with a label saying why."""
    info = _dataset_info(name)
    places: list[tuple[str, Path]] = []
    if root is not None:
        places.append(("root= argument", Path(root)))
    if os.environ.get("EARLYEXIT_DATA"):
        places.append(("EARLYEXIT_DATA", Path(os.environ["EARLYEXIT_DATA"])))
    places.append(("repository data/", repo_root() / "data"))
    if info.debian_dir is not None:
        places.append((f"Debian package {info.debian_package}", info.debian_dir))
    return places


def _torchvision_raw(folder: Path, info: DatasetInfo) -> Path:
    return folder / info.torchvision_class.__name__ / "raw"


def _find_files(folder: Path, info: DatasetInfo) -> tuple[Path, bool] | None:
    """Return (directory holding the four files, whether they are ready for torchvision)."""
    for directory in (_torchvision_raw(folder, info), folder):
        if all((directory / f).is_file() for f in RAW_FILES):
            return directory, directory == _torchvision_raw(folder, info)
        if all((directory / f"{f}.gz").is_file() for f in RAW_FILES):
            return directory, False
    return None


def _stage(source: Path, target_root: Path, info: DatasetInfo) -> Path:
    """Unpack or copy the four files into torchvision's layout under target_root, atomically."""
    target_raw = _torchvision_raw(target_root, info)
    target_raw.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target_raw.parent, prefix=".staging-"))
    try:
        for name in RAW_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
                continue
            try:
                extract_archive(source / f"{name}.gz", tmp)
            except (EOFError, gzip.BadGzipFile, zlib.error) as error:
                raise DataCorruptError(
                    f"{source / (name + '.gz')} is not a complete gzip file ({error}). "
                    "Delete it (or reinstall the package that provided it) and run `python -m earlyexit.data` again."
                ) from None
        if target_raw.exists():
            shutil.rmtree(target_raw)
        os.replace(tmp, target_raw)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target_root


def _download(target_root: Path, info: DatasetInfo) -> Path:
    """Download with torchvision into a temporary folder; move it into place only when complete."""
    target_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_root, prefix=".download-") as tmp:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for train in (True, False):
                info.torchvision_class(tmp, train=train, download=True)
        return _stage(_torchvision_raw(Path(tmp), info), target_root, info)


def locate(
    name: str = "fashion-mnist",
    root: str | Path | None = None,
    download: bool = True,
    cache_dir: str | Path | None = None,
) -> Path:
    """Return a folder that torchvision can load ``name`` from, searching as the module says.

    ``cache_dir`` (default: ``data/`` in the repository) receives unpacked or downloaded files.
    Raises :class:`DataNotFoundError` naming every place looked and the two fixes.
    """
    info = _dataset_info(name)
    cache = Path(cache_dir) if cache_dir is not None else repo_root() / "data"
    places = candidate_dirs(name, root)
    for _label, folder in places:
        found = _find_files(folder, info)
        if found is None:
            continue
        directory, ready = found
        return folder if ready else _stage(directory, cache, info)
    download_problem = "download not allowed (download=False)"
    if download:
        try:
            return _download(cache, info)
        except Exception as error:  # any network or disk failure ends in the one clear error below
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            download_problem = f"download failed: {first_line}"
    looked = "\n".join(f"  - {folder}  ({label})" for label, folder in places)
    fixes = []
    if info.debian_package:
        fixes.append(f"install the Debian package:  sudo apt-get install {info.debian_package}")
    fixes.append("allow the download: run with internet access and download=True")
    fixes.append("or point EARLYEXIT_DATA (or root=) at a folder holding the four IDX files")
    raise DataNotFoundError(
        f"Could not find the {name} dataset. Looked for {', '.join(RAW_FILES)} (or .gz) in:\n"
        f"{looked}\nand {download_problem}.\nTo fix, either\n" + "\n".join(f"  * {fix}" for fix in fixes)
    )


@dataclass
class Splits:
    """Normalised image tensors (N, 1, 28, 28) float32 and int64 labels for each split."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    name: str


RawData = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]


def load_raw(name: str = "fashion-mnist", root: str | Path | None = None, download: bool = True,
             cache_dir: str | Path | None = None) -> RawData:
    """Train images, train labels, test images, test labels (uint8 / int64) and class names."""
    info = _dataset_info(name)
    folder = locate(name, root, download, cache_dir)
    try:
        train = info.torchvision_class(folder, train=True, download=False)
        test = info.torchvision_class(folder, train=False, download=False)
    except (RuntimeError, ValueError, TypeError, AssertionError) as error:
        raise DataCorruptError(
            f"The {name} files in {_torchvision_raw(folder, info)} could not be read ({error}). "
            "They are truncated or not IDX files of uint8 images and labels: delete them and run "
            "`python -m earlyexit.data` again."
        ) from None
    for split in (train, test):
        problem = None
        if split.data.ndim != 3 or tuple(split.data.shape[1:]) != (28, 28):
            problem = f"images of shape {tuple(split.data.shape)}, expected (N, 28, 28)"
        elif len(split.data) != len(split.targets):
            problem = f"{len(split.data)} images for {len(split.targets)} labels"
        elif len(split.targets) and not 0 <= int(split.targets.min()) <= int(split.targets.max()) < len(split.classes):
            low, high = int(split.targets.min()), int(split.targets.max())
            problem = f"labels from {low} to {high}, expected 0 to {len(split.classes) - 1}"
        if problem:
            raise DataCorruptError(f"The {name} files in {_torchvision_raw(folder, info)} hold {problem}.")
    return train.data, train.targets, test.data, test.targets, tuple(train.classes)


def normalise(images: torch.Tensor, name: str = "fashion-mnist") -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), standardised with the dataset's mean and std."""
    info = _dataset_info(name)
    return ((images.float() / 255.0 - info.mean) / info.std).unsqueeze(1)


def load_splits(name: str = "fashion-mnist", root: str | Path | None = None, val_size: int = 5000,
                seed: int = 0, download: bool = True, cache_dir: str | Path | None = None) -> Splits:
    """Load the dataset and carve a fixed, seeded validation split out of the training set."""
    train_x, train_y, test_x, test_y, classes = load_raw(name, root, download, cache_dir)
    if not 0 < val_size < len(train_y):
        raise ValueError(f"val_size must be between 1 and {len(train_y) - 1}, got {val_size}")
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size], order[val_size:]
    train_x = normalise(train_x, name)
    return Splits(train_x[train_idx], train_y[train_idx], train_x[val_idx], train_y[val_idx],
                  normalise(test_x, name), test_y, classes, name)


def make_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128, shuffle: bool = False,
                seed: int = 0, num_workers: int = 0) -> DataLoader:
    """A deterministic loader over in-memory tensors that fetches whole batches at once.

    Sampling batches of indices (instead of one sample at a time and collating) keeps an
    epoch of Fashion-MNIST at a fraction of a second of loading overhead.
    """
    check_int("batch_size", batch_size)
    dataset = TensorDataset(images, labels)
    if shuffle:
        base = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        base = SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(base, batch_size, drop_last=False), batch_size=None,
                      num_workers=num_workers)


def main(argv: list[str] | None = None) -> int:
    """Command line: make sure the dataset is present; print where, or the clear error."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    parser.add_argument("--root", default=None)
    parser.add_argument("--no-download", action="store_true")
    args = parser.parse_args(argv)
    try:
        folder = locate(args.dataset, args.root, download=not args.no_download)
    except DataNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: found in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
