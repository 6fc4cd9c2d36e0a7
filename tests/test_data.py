"""The data loader finds Fashion-MNIST by every route, in order, and fails clearly."""

from __future__ import annotations

import os

import pytest
import torch
from torchvision import datasets

from earlyexit import data
from helpers import N_TEST, N_TRAIN, serve_directory, synthetic_arrays, write_idx


def assert_loaded_synthetic(raw) -> None:
    train_x, train_y, test_x, test_y, classes = raw
    expected = synthetic_arrays()
    assert train_x.shape == (N_TRAIN, 28, 28) and train_x.dtype == torch.uint8
    assert test_x.shape == (N_TEST, 28, 28)
    assert train_y.dtype == torch.int64
    assert torch.equal(train_x, expected["train-images-idx3-ubyte"])
    assert torch.equal(train_y, expected["train-labels-idx1-ubyte"].long())
    assert torch.equal(test_y, expected["t10k-labels-idx1-ubyte"].long())
    assert classes[0] == "T-shirt/top"


def test_explicit_root_with_debian_style_gz_files(tmp_path):
    write_idx(tmp_path / "mine")
    cache = tmp_path / "cache"
    assert_loaded_synthetic(data.load_raw(root=tmp_path / "mine", download=False, cache_dir=cache))
    assert sorted(os.listdir(cache / "FashionMNIST" / "raw")) == sorted(data.RAW_FILES)


def test_environment_variable_with_torchvision_layout(tmp_path, monkeypatch):
    write_idx(tmp_path / "env" / "FashionMNIST" / "raw", compressed=False)
    monkeypatch.setenv("EARLYEXIT_DATA", str(tmp_path / "env"))
    assert data.locate(download=False) == tmp_path / "env"
    assert_loaded_synthetic(data.load_raw(download=False))


def test_repository_data_folder(isolated_data_routes):
    write_idx(isolated_data_routes / "data" / "FashionMNIST" / "raw", compressed=False)
    assert data.locate(download=False) == isolated_data_routes / "data"


def test_debian_package_folder_is_unpacked_into_repository_data(tmp_path, isolated_data_routes):
    write_idx(tmp_path / "debian")
    assert data.locate(download=False) == isolated_data_routes / "data"
    assert_loaded_synthetic(data.load_raw(download=False))


def test_explicit_root_wins_over_environment(tmp_path, monkeypatch):
    write_idx(tmp_path / "env" / "FashionMNIST" / "raw", compressed=False)
    write_idx(tmp_path / "root" / "FashionMNIST" / "raw", compressed=False)
    monkeypatch.setenv("EARLYEXIT_DATA", str(tmp_path / "env"))
    assert data.locate(root=tmp_path / "root", download=False) == tmp_path / "root"


@pytest.fixture
def local_mirror(tmp_path):
    """An HTTP server on loopback serving tmp_path/mirror, standing in for the dataset's mirror."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    with serve_directory(folder) as url:
        yield folder, url


def test_download_route_uses_torchvision_only_when_nothing_is_local(local_mirror, monkeypatch, isolated_data_routes):
    folder, url = local_mirror
    write_idx(folder)
    # torchvision's own download code, pointed at a local mirror that serves our small files.
    monkeypatch.setattr(datasets.FashionMNIST, "mirrors", [url])
    monkeypatch.setattr(datasets.FashionMNIST, "resources", [(f"{name}.gz", None) for name in data.RAW_FILES])
    assert data.locate() == isolated_data_routes / "data"
    assert_loaded_synthetic(data.load_raw())
    leftovers = [p.name for p in (isolated_data_routes / "data").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_missing_data_error_names_every_place_and_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("EARLYEXIT_DATA", str(tmp_path / "nowhere-env"))
    with pytest.raises(data.DataNotFoundError) as caught:
        data.locate(root=tmp_path / "nowhere-root", download=False)
    message = str(caught.value)
    assert "fashion-mnist" in message
    for place in ("nowhere-root", "nowhere-env", str(tmp_path / "repo" / "data"), str(tmp_path / "debian")):
        assert place in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "allow the download" in message


def test_failed_download_leaves_no_partial_files(local_mirror, monkeypatch, isolated_data_routes):
    folder, url = local_mirror
    write_idx(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()  # the last file is missing: a download that breaks off
    monkeypatch.setattr(datasets.FashionMNIST, "mirrors", [url])
    monkeypatch.setattr(datasets.FashionMNIST, "resources", [(f"{name}.gz", None) for name in data.RAW_FILES])
    with pytest.raises(data.DataNotFoundError, match="download failed"):
        data.locate()
    cache = isolated_data_routes / "data"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_truncated_file_fails_clearly(tmp_path):
    write_idx(tmp_path / "bad", truncate="train-images-idx3-ubyte")
    with pytest.raises(data.DataCorruptError, match="truncated"):
        data.load_raw(root=tmp_path / "bad", download=False, cache_dir=tmp_path / "cache")


def test_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.locate("cifar")


def test_splits_are_seeded_disjoint_and_normalised(tmp_path):
    write_idx(tmp_path / "mine")
    kwargs = dict(root=tmp_path / "mine", download=False, cache_dir=tmp_path / "cache", val_size=5)
    a = data.load_splits(seed=1, **kwargs)
    b = data.load_splits(seed=1, **kwargs)
    c = data.load_splits(seed=2, **kwargs)
    assert (len(a.train_labels), len(a.val_labels), len(a.test_labels)) == (N_TRAIN - 5, 5, N_TEST)
    assert a.train_images.shape == (N_TRAIN - 5, 1, 28, 28) and a.train_images.dtype == torch.float32
    assert torch.equal(a.val_images, b.val_images) and not torch.equal(a.val_images, c.val_images)
    together = torch.cat([a.train_images, a.val_images]).flatten(1)
    assert len(torch.unique(together, dim=0)) == N_TRAIN  # every training image lands in exactly one split


def test_loader_is_deterministic_and_covers_every_sample(tiny_splits):
    def order(seed):
        loader = data.make_loader(tiny_splits.train_images, tiny_splits.train_labels, 64, shuffle=True, seed=seed)
        return torch.cat([labels for _, labels in loader]), [len(x) for x, _ in loader]

    labels_a, sizes = order(3)
    labels_b, _ = order(3)
    labels_c, _ = order(4)
    assert sizes == [64, 64, 64, 8]
    assert torch.equal(labels_a, labels_b) and not torch.equal(labels_a, labels_c)
    assert torch.equal(labels_a.sort().values, tiny_splits.train_labels.sort().values)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            data.make_loader(tiny_splits.train_images, tiny_splits.train_labels, bad)


def test_command_line_reports_missing_data_without_traceback(capsys):
    assert data.main(["--no-download"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Could not find the fashion-mnist dataset") and "Traceback" not in err


@pytest.mark.parametrize("damage", ["truncated gzip", "not gzip"])
def test_a_broken_gz_file_raises_the_modules_own_error(tmp_path, damage):
    write_idx(tmp_path / "bad")
    target = tmp_path / "bad" / "train-labels-idx1-ubyte.gz"
    payload = target.read_bytes()
    target.write_bytes(payload[: len(payload) // 2] if damage == "truncated gzip" else b"plain text, not gzip")
    with pytest.raises(data.DataCorruptError, match="train-labels-idx1-ubyte.gz is not a complete gzip file"):
        data.load_raw(root=tmp_path / "bad", download=False, cache_dir=tmp_path / "cache")
    assert not any(p.name.startswith(".staging") for p in (tmp_path / "cache" / "FashionMNIST").iterdir())


def test_labels_outside_the_classes_are_refused(tmp_path, monkeypatch):
    arrays = synthetic_arrays()
    arrays["train-labels-idx1-ubyte"][3] = 12
    monkeypatch.setattr("helpers.synthetic_arrays", lambda seed=0: arrays)
    write_idx(tmp_path / "bad", compressed=False)
    with pytest.raises(data.DataCorruptError, match="labels from 0 to 12, expected 0 to 9"):
        data.load_raw(root=tmp_path / "bad", download=False, cache_dir=tmp_path / "cache")


def test_images_of_another_size_are_refused(tmp_path, monkeypatch):
    arrays = synthetic_arrays()
    arrays["t10k-images-idx3-ubyte"] = arrays["t10k-images-idx3-ubyte"][:, :20, :20].contiguous()
    monkeypatch.setattr("helpers.synthetic_arrays", lambda seed=0: arrays)
    write_idx(tmp_path / "bad", compressed=False)
    with pytest.raises(data.DataCorruptError, match=r"images of shape \(12, 20, 20\), expected \(N, 28, 28\)"):
        data.load_raw(root=tmp_path / "bad", download=False, cache_dir=tmp_path / "cache")


def test_labels_stored_as_int16_raise_the_modules_own_error(tmp_path, monkeypatch):
    arrays = synthetic_arrays()
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"].to(torch.int16)
    monkeypatch.setattr("helpers.synthetic_arrays", lambda seed=0: arrays)
    write_idx(tmp_path / "bad", compressed=False)
    with pytest.raises(data.DataCorruptError, match="not IDX files of uint8 images and labels"):
        data.load_raw(root=tmp_path / "bad", download=False, cache_dir=tmp_path / "cache")


def test_class_names_are_torchvisions(isolated_data_routes):
    for info in data.DATASETS.values():
        assert info.classes == tuple(info.torchvision_class().classes)


def test_reading_the_data_does_not_import_torchvision(tmp_path):
    """torchvision costs two seconds per process (it imports torch._dynamo); only a download needs it."""
    import subprocess
    import sys

    write_idx(tmp_path / "mine")
    code = ("import sys; from earlyexit import data; "
            f"data.load_splits(root={str(tmp_path / 'mine')!r}, download=False, cache_dir={str(tmp_path / 'c')!r}, "
            "val_size=5); print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _idx(type_code: int, shape: tuple[int, ...], body: bytes) -> bytes:
    return bytes([0, 0, type_code, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape) + body


@pytest.mark.parametrize("payload, problem", [
    (b"plain text", "is not an IDX file"),
    (_idx(0x0B, (3,), bytes(6)), "holds IDX type 0x0b"),
    (_idx(0x08, (2, 3), bytes(5)), "is truncated"),
    (_idx(0x08, (2, 3), bytes(7)), "announces shape (2, 3)"),
])
def test_read_idx_names_the_file_and_what_is_wrong_with_it(tmp_path, payload, problem):
    path = tmp_path / "broken-idx"
    path.write_bytes(payload)
    with pytest.raises(data.DataCorruptError, match="broken-idx") as caught:
        data.read_idx(path)
    assert problem in str(caught.value)


def test_read_idx_reads_unsigned_bytes_in_their_shape(tmp_path):
    (tmp_path / "ok").write_bytes(_idx(0x08, (2, 3), bytes(range(6))))
    got = data.read_idx(str(tmp_path / "ok"))  # a str path too
    assert got.dtype == torch.uint8 and torch.equal(got, torch.arange(6, dtype=torch.uint8).reshape(2, 3))


def test_the_loader_and_the_splits_check_their_arguments_by_name(tiny_splits):
    images, labels = tiny_splits.train_images, tiny_splits.train_labels
    with pytest.raises(ValueError, match="200 images but 199 labels"):
        data.make_loader(images, labels[:-1])
    with pytest.raises(TypeError, match="shuffle must be True or False"):
        data.make_loader(images, labels, shuffle="yes")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        data.make_loader(images, labels, seed=-1)
    with pytest.raises(ValueError, match="val_size must be an int >= 1, got 1.5"):
        data.load_splits(val_size=1.5, download=False)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        data.load_splits(seed=0.5, download=False)


def test_images_are_normalised_once_from_raw_pixels():
    raw = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    once = data.normalise(raw)
    assert once.shape == (3, 1, 28, 28) and once.dtype == torch.float32
    with pytest.raises(ValueError, match=r"images must be raw uint8 pixels of shape \(N, 28, 28\)"):
        data.normalise(once[:, 0])  # normalising twice gave wrong inputs without an error
