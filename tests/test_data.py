"""Data: the in-memory loader, the splits, and every data module on tiny files in its dataset's own format."""

from __future__ import annotations

import gzip
import pickle
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nasplay.train.config import DataConfig
from nasplay.train.data import ImageFolderDataModule, make_datamodule, stratified_split
from nasplay.train.loader import InMemoryLoader


def _ids(loader: InMemoryLoader) -> list[int]:
    return [int(i) for _, y in loader for i in y]


# --- the in-memory loader ---------------------------------------------------------------------------
@pytest.mark.parametrize("n,b", [(100, 10), (101, 10), (99, 10), (7, 64), (1, 4), (65, 64)])
def test_loader_covers_the_epoch_exactly_once(n, b):
    x, y = torch.arange(n).float().view(n, 1, 1, 1), torch.arange(n)
    for shuffle in (True, False):
        loader = InMemoryLoader(x, y, b, shuffle=shuffle, seed=3)
        batches = list(loader)
        assert len(batches) == len(loader)
        assert sorted(_ids(loader)) == list(range(n))
        assert all(bx.view(-1).long().tolist() == by.tolist() for bx, by in batches)  # x and y stay paired
        assert all(len(by) > 1 for _, by in batches) or n == 1  # no lone example for BatchNorm


def test_loader_order_is_a_function_of_seed_and_epoch():
    x, y = torch.zeros(50, 1, 1, 1), torch.arange(50)
    epoch = {"e": 0}
    a = InMemoryLoader(x, y, 8, shuffle=True, seed=1, epoch=lambda: epoch["e"])
    first = _ids(a)
    assert _ids(a) == first  # same epoch, same order
    assert _ids(InMemoryLoader(x, y, 8, shuffle=True, seed=1, epoch=lambda: 0)) == first
    assert _ids(InMemoryLoader(x, y, 8, shuffle=True, seed=2, epoch=lambda: 0)) != first
    epoch["e"] = 1
    assert _ids(a) != first and sorted(_ids(a)) == sorted(first)
    counting = InMemoryLoader(x, y, 8, shuffle=True, seed=1)  # no epoch function: counts its own passes
    assert _ids(counting) == first and _ids(counting) != first
    assert _ids(InMemoryLoader(x, y, 8, shuffle=False)) == list(range(50))


@pytest.mark.parametrize("n,world", [(10, 2), (11, 2), (11, 3), (5, 4)])
def test_loader_shards_by_rank(n, world):
    x, y = torch.zeros(n, 1, 1, 1), torch.arange(n)
    train = [InMemoryLoader(x, y, 2, shuffle=True, seed=0, rank=r, world_size=world, epoch=lambda: 0) for r in range(world)]
    assert len({len(t) for t in train}) == 1  # DDP ranks step in lockstep
    ids = [_ids(t) for t in train]
    assert len({len(i) for i in ids}) == 1
    assert set().union(*ids) == set(range(n))
    assert sum(map(len, ids)) - n == (-n) % world  # only the padding repeats
    evals = [_ids(InMemoryLoader(x, y, 3, shuffle=False, rank=r, world_size=world)) for r in range(world)]
    assert sorted(sum(evals, [])) == list(range(n))  # evaluation: each example on exactly one rank


def test_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        InMemoryLoader(torch.zeros(3), torch.zeros(3), 0, shuffle=True)
    with pytest.raises(ValueError, match="length"):
        InMemoryLoader(torch.zeros(3), torch.zeros(4), 2, shuffle=True)
    with pytest.raises(ValueError, match="rank"):
        InMemoryLoader(torch.zeros(3), torch.zeros(3), 2, shuffle=True, rank=2, world_size=2)


def test_stratified_split_is_disjoint_balanced_and_seeded():
    labels = np.repeat(np.arange(4), [40, 40, 20, 100])
    test, val, train = stratified_split(labels, (0.2, 0.1), seed=5)
    assert sorted(np.concatenate([test, val, train]).tolist()) == list(range(200))
    assert np.bincount(labels[test]).tolist() == [8, 8, 4, 20]
    assert np.bincount(labels[val]).tolist() == [4, 4, 2, 10]
    again = stratified_split(labels, (0.2, 0.1), seed=5)
    assert all((a == b).all() for a, b in zip(again, (test, val, train)))
    assert not (stratified_split(labels, (0.2, 0.1), seed=6)[0] == test).all()


# --- digits, the embedded default --------------------------------------------------------------------
def test_digits_is_the_default_and_splits_deterministically():
    dm = make_datamodule(DataConfig())
    assert (dm.name, dm.channels, dm.size, dm.num_classes, dm.input) == ("digits", 1, 16, 10, "1x16")
    s = dm.splits()
    assert (dm.num_train, dm.num_val, dm.num_test) == (len(s["train"].y), len(s["val"].y), len(s["test"].y))
    assert dm.num_train + dm.num_val + dm.num_test == 1797
    assert abs(dm.num_test - 0.2 * 1797) < 10 and abs(dm.num_val - 0.1 * 1797) < 10
    assert s["train"].x.shape[1:] == (1, 16, 16) and s["train"].x.dtype == torch.float32
    mean, std = s["train"].x.mean().item(), s["train"].x.std().item()
    assert abs(mean) < 1e-4 and abs(std - 1) < 1e-3  # normalised by the training split's statistics
    assert set(s["test"].y.bincount().tolist()) <= {35, 36, 37}  # stratified
    again = make_datamodule(DataConfig()).splits()
    assert torch.equal(again["val"].x, s["val"].x) and torch.equal(again["test"].y, s["test"].y)
    other = make_datamodule(DataConfig(seed=1)).splits()
    assert not torch.equal(other["test"].y, s["test"].y)


def test_digits_pixels_are_the_sklearn_images_upsampled():
    from sklearn.datasets import load_digits

    raw = make_datamodule(DataConfig(size=8, normalize=False, val_fraction=0.0, test_fraction=0.0)).splits()["train"]
    images = torch.from_numpy(load_digits().images).float() / 16
    # every example is one of the originals, exactly, when no resize happens
    assert len(raw.y) == 1797
    found = {tuple(x.view(-1).tolist()) for x in raw.x}
    assert found == {tuple(x.view(-1).tolist()) for x in images}
    big = make_datamodule(DataConfig(size=32, channels=3, limit=100)).splits()
    assert big["train"].x.shape == (100, 3, 32, 32) and big["val"].x.shape[1:] == (3, 32, 32)
    assert torch.equal(big["train"].x[:, 0], big["train"].x[:, 1])  # grey repeated into three channels


def test_datamodule_gives_a_ddp_rank_its_shard():
    dm = make_datamodule(DataConfig(limit=101, batch_size=10))
    shards = []
    for rank in range(2):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2, current_epoch=0,
                                     strategy=SimpleNamespace(root_device=torch.device("cpu")))
        shards.append(dm.train_dataloader())
    assert len(shards[0]) == len(shards[1]) == 5  # 51 examples each: 4 batches of 10 and one of 11
    assert [sum(len(y) for _, y in s) for s in shards] == [51, 51]
    seen = [{tuple(x.view(-1).tolist()) for bx, _ in s for x in bx} for s in shards]
    assert seen[0] | seen[1] == {tuple(x.view(-1).tolist()) for x in dm.splits()["train"].x}  # together: the split


# --- torchvision datasets on tiny files in their own formats ------------------------------------------
def _idx(path, arr: np.ndarray, gz: bool) -> None:
    magic = {3: 0x803, 1: 0x801}[arr.ndim]
    blob = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)


def _write_mnist(root, folder: str, gz: bool, n_train=40, n_test=20):
    rng = np.random.default_rng(0)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        _idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", x, gz)
        _idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", y, gz)
        data[prefix] = (x, y)
    return data


@pytest.mark.parametrize("name,folder,gz", [("mnist", "MNIST", False), ("fashion_mnist", "FashionMNIST", True)])
def test_mnist_family_reads_idx_files(tmp_path, name, folder, gz):
    data = _write_mnist(tmp_path, folder, gz)
    dm = make_datamodule(DataConfig(name=name, root=str(tmp_path), download=False, normalize=False, val_fraction=0.25))
    assert (dm.channels, dm.size, dm.num_classes) == (1, 28, 10)
    s = dm.splits()
    assert (len(s["train"].y), len(s["val"].y), len(s["test"].y)) == (30, 10, 20)
    x_test, y_test = data["t10k"]
    assert torch.equal(s["test"].y, torch.from_numpy(y_test).long())  # the official test split, in order
    assert torch.allclose(s["test"].x[:, 0], torch.from_numpy(x_test).float() / 255)
    small = make_datamodule(DataConfig(name=name, root=str(tmp_path), download=False, size=14, channels=3)).splits()
    assert small["train"].x.shape[1:] == (3, 14, 14)


def _write_cifar(root, hundred: bool, per_batch=12):
    rng = np.random.default_rng(1)
    classes = 100 if hundred else 10
    key = "fine_labels" if hundred else "labels"
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    names = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {}
    for name in names:
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, classes, per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x, key: y}, f)
        written[name] = (x, y)
    meta = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    with open(folder / meta[0], "wb") as f:
        pickle.dump({meta[1]: [f"class{i}" for i in range(classes)]}, f)
    return written


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_reads_python_pickle_batches(tmp_path, hundred):
    written = _write_cifar(tmp_path, hundred)
    name = "cifar100" if hundred else "cifar10"
    dm = make_datamodule(DataConfig(name=name, root=str(tmp_path), download=False, normalize=False, val_fraction=0.0))
    assert (dm.channels, dm.size, dm.num_classes) == (3, 32, 100 if hundred else 10)
    s = dm.splits()
    x, y = written["test" if hundred else "test_batch"]
    # CIFAR rows are the R plane, then G, then B: N x 3 x 32 x 32 after loading
    assert torch.allclose(s["test"].x, torch.from_numpy(x.reshape(-1, 3, 32, 32)).float() / 255)
    assert s["test"].y.tolist() == y
    assert len(s["train"].y) == (12 if hundred else 60)
    grey = make_datamodule(DataConfig(name=name, root=str(tmp_path), download=False, channels=1, normalize=False))
    assert grey.splits()["test"].x.shape[1:] == (1, 32, 32)


def test_missing_torchvision_files_name_the_root(tmp_path):
    dm = make_datamodule(DataConfig(name="cifar10", root=str(tmp_path / "nothing"), download=False))
    with pytest.raises(FileNotFoundError, match="data.root"):
        dm.setup("fit")


# --- image folders ----------------------------------------------------------------------------------
def _png_tree(root, classes=("cat", "dog", "eel"), per_class=6, size=(12, 10)):
    from PIL import Image

    rng = np.random.default_rng(2)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_imagefolder_flat_tree_streams_through_a_dataloader(tmp_path):
    _png_tree(tmp_path / "tree", per_class=10)
    dm = make_datamodule(DataConfig(name="imagefolder", path=str(tmp_path / "tree"), size=8, batch_size=4,
                                    num_workers=0, val_fraction=0.2, test_fraction=0.2, in_memory=False))
    assert isinstance(dm, ImageFolderDataModule)
    assert (dm.num_classes, dm.channels, dm.size, dm.classes) == (3, 3, 8, ["cat", "dog", "eel"])
    dm.setup("fit")
    assert (dm.num_train, dm.num_val, dm.num_test) == (18, 6, 6)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert isinstance(loader, torch.utils.data.DataLoader)
    assert sum(len(y) for _, y in batches) == 18 and batches[0][0].shape == (4, 3, 8, 8)


def test_imagefolder_split_folders_and_in_memory(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        _png_tree(tmp_path / split, per_class=n)
    cfg = DataConfig(name="imagefolder", path=str(tmp_path), size=6, channels=1, in_memory=True, batch_size=5)
    dm = make_datamodule(cfg)
    dm.setup("fit")
    assert (dm.num_train, dm.num_val, dm.num_test) == (18, 6, 9)
    loader = dm.train_dataloader()
    assert isinstance(loader, InMemoryLoader) and sum(len(y) for _, y in loader) == 18
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape[1:] == (1, 6, 6) and y.tolist()[:3] == [0, 0, 0]


def test_imagefolder_errors_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="data.path"):
        make_datamodule(DataConfig(name="imagefolder"))
    with pytest.raises(ValueError, match="not a directory"):
        make_datamodule(DataConfig(name="imagefolder", path=str(tmp_path / "absent")))
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no images"):
        make_datamodule(DataConfig(name="imagefolder", path=str(tmp_path / "empty")))
    _png_tree(tmp_path / "t" / "train", classes=("a", "b"), per_class=2)
    _png_tree(tmp_path / "t" / "val", classes=("a", "c"), per_class=2)
    with pytest.raises(ValueError, match="classes"):
        make_datamodule(DataConfig(name="imagefolder", path=str(tmp_path / "t")))


@pytest.mark.parametrize("field,value,match", [
    ("name", "svhn", "data.name must be one of"),
    ("batch_size", 0, "data.batch_size"),
    ("val_fraction", 1.5, "data.val_fraction"),
    ("channels", 2, "data.channels"),
    ("size", -3, "data.size"),
    ("limit", 0, "data.limit"),
    ("num_workers", -1, "data.num_workers"),
])
def test_bad_data_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        make_datamodule(DataConfig(**{field: value}))


def test_data_config_from_a_mapping_rejects_unknown_keys():
    with pytest.raises(ValueError, match="batchsize"):
        make_datamodule({"batchsize": 3})
    with pytest.raises(ValueError, match="val_fraction \\+ data.test_fraction"):
        make_datamodule({"val_fraction": 0.5, "test_fraction": 0.5})
    assert make_datamodule({"name": "digits", "size": 12}).size == 12
