"""Find, load and split Fashion-MNIST (or MNIST).

The files are looked for, in order, in: an explicit ``root``, the ``EARLYEXIT_DATA``
environment variable, ``data/`` in the repository, the folder of the Debian package
(``/usr/share/datasets/fashion-mnist``), and only then downloaded by torchvision.
A folder may hold the four IDX files flat (``.gz`` or not, as Debian ships them) or in
torchvision's layout (``<root>/FashionMNIST/raw/...``). Compressed or flat files are
unpacked once into torchvision's layout under ``data/``. The IDX format is four lines of
code (:func:`read_idx`); torchvision is imported only to download, because importing it
costs two seconds (it loads ``torch._dynamo``) in every process that merely reads the data.

Run ``python -m earlyexit.data`` to make sure the data is present.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from .checks import check_bool, check_int, check_seed, check_type
from .utils import repo_root

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetInfo:
    """What the book needs to know about one dataset."""

    torchvision_name: str  # the torchvision class that downloads it, and the folder it uses
    classes: tuple[str, ...]
    mean: float
    std: float
    debian_package: str | None
    debian_dir: Path | None

    def torchvision_class(self) -> type:
        """torchvision's dataset class, imported only when a download needs it."""
        from torchvision import datasets

        return getattr(datasets, self.torchvision_name)


DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        0.2860, 0.3530, "dataset-fashion-mnist", Path("/usr/share/datasets/fashion-mnist"),
    ),
    "mnist": DatasetInfo(
        "MNIST",
        ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
         "8 - eight", "9 - nine"),
        0.1307, 0.3081, None, None,
    ),
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
    return folder / info.torchvision_name / "raw"


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
                with gzip.open(source / f"{name}.gz") as packed, open(tmp / name, "wb") as unpacked:
                    shutil.copyfileobj(packed, unpacked)
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
                info.torchvision_class()(tmp, train=train, download=True)
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


def read_idx(path: str | Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (magic 0, 0, 8, number of dimensions; sizes; data) as a tensor.

    A file of another IDX type, or shorter or longer than its header says, raises :class:`DataCorruptError`.
    """
    path = Path(path)
    payload = path.read_bytes()
    if len(payload) < 4 or payload[:2] != b"\0\0":
        raise DataCorruptError(f"{path} is not an IDX file")
    if payload[2] != 0x08:
        raise DataCorruptError(f"{path} holds IDX type 0x{payload[2]:02x}; the book reads IDX files of uint8 "
                               "images and labels (type 0x08)")
    ndim = payload[3]
    header = 4 + 4 * ndim
    shape = [int.from_bytes(payload[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(payload) < header or len(payload) - header != math.prod(shape):
        raise DataCorruptError(f"{path} is truncated: its header announces shape {tuple(shape)}, "
                               f"{math.prod(shape):,} bytes, and {max(len(payload) - header, 0):,} follow")
    return torch.frombuffer(bytearray(payload[header:]), dtype=torch.uint8).reshape(shape)


def load_raw(name: str = "fashion-mnist", root: str | Path | None = None, download: bool = True,
             cache_dir: str | Path | None = None) -> RawData:
    """Train images, train labels, test images, test labels (uint8 / int64) and class names."""
    info = _dataset_info(name)
    folder = _torchvision_raw(locate(name, root, download, cache_dir), info)
    try:
        train_x, train_y, test_x, test_y = (read_idx(folder / f) for f in RAW_FILES)
    except DataCorruptError as error:
        raise DataCorruptError(
            f"The {name} files in {folder} could not be read ({error}). They are truncated or not IDX "
            "files of uint8 images and labels: delete them and run `python -m earlyexit.data` again."
        ) from None
    for images, labels in ((train_x, train_y), (test_x, test_y)):
        problem = None
        if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
            problem = f"images of shape {tuple(images.shape)}, expected (N, 28, 28)"
        elif labels.ndim != 1 or len(images) != len(labels):
            problem = f"{len(images)} images for labels of shape {tuple(labels.shape)}"
        elif len(labels) and int(labels.max()) >= len(info.classes):
            problem = f"labels from {int(labels.min())} to {int(labels.max())}, expected 0 to {len(info.classes) - 1}"
        if problem:
            raise DataCorruptError(f"The {name} files in {folder} hold {problem}.")
    return train_x, train_y.long(), test_x, test_y.long(), info.classes


def normalise(images: torch.Tensor, name: str = "fashion-mnist") -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), standardised with the dataset's mean and std.

    Anything but raw uint8 pixels is refused: float images are most likely normalised already,
    and normalising twice would give wrong inputs without an error."""
    info = _dataset_info(name)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 3:
        got = f"{images.dtype} of shape {tuple(images.shape)}" if isinstance(images, torch.Tensor) \
            else type(images).__name__
        raise ValueError(f"images must be raw uint8 pixels of shape (N, 28, 28) (load_raw's), got {got}")
    return ((images.float() / 255.0 - info.mean) / info.std).unsqueeze(1)


def load_splits(name: str = "fashion-mnist", root: str | Path | None = None, val_size: int = 5000,
                seed: int = 0, download: bool = True, cache_dir: str | Path | None = None) -> Splits:
    """Load the dataset and carve a fixed, seeded validation split out of the training set."""
    check_seed("seed", seed)
    check_int("val_size", val_size)
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
    check_seed("seed", seed)
    check_int("num_workers", num_workers, 0)
    check_type("images", images, torch.Tensor, "a tensor")
    check_type("labels", labels, torch.Tensor, "a tensor")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    dataset = TensorDataset(images, labels)
    if check_bool("shuffle", shuffle):
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
