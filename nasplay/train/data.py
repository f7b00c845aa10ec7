"""LightningDataModules: the embedded digits, cluttered digits, torchvision's MNIST / Fashion-MNIST / CIFAR, class folders.

Every dataset that fits in memory becomes float tensors (converted channels, resized, normalised with
the training split's per-channel mean and std), split train / val / test deterministically and
stratified by ``data.seed``, and is batched by :class:`~nasplay.train.loader.InMemoryLoader` on the
training device, with no loader workers. Class-folder trees (:mod:`nasplay.train.folder`) are too when they fit
(``data.in_memory``); larger ones stream through a ``DataLoader`` with workers.

The default, ``digits``, is scikit-learn's copy of the UCI handwritten digits (1797 8 x 8 grey
images of 10 classes, read from the installed package: no network), bilinearly upsampled to 16 x 16
so that a few stride-2 stages fit. It is real data that trains to high accuracy in seconds on a CPU
and still separates good networks from poor ones. ``clutter`` composes the same digits, at a random
position and scale among fragments of other digits and noise, onto a 32 x 32 (or larger) canvas
(:mod:`nasplay.train.clutter`): a harder task, generated in seconds, where architecture matters.
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from nasplay.train.clutter import ClutterSettings, clutter_splits
from nasplay.train.config import DataConfig, as_config
from nasplay.train.loader import InMemoryLoader
from nasplay.train.split import stratified_split

# name -> (channels, size, classes) as the data comes; digits' size is after upsampling
NATIVE = {
    "digits": (1, 16, 10),
    "clutter": (1, 32, 10),
    "mnist": (1, 28, 10),
    "fashion_mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "imagefolder": (3, None, None),  # the images' own (nasplay.train.folder)
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class Split:
    x: torch.Tensor  # float N x C x H x W, normalised
    y: torch.Tensor  # int64 N


def make_datamodule(cfg: DataConfig | Any) -> NasplayDataModule:
    """The data module ``cfg`` describes; raises ``ValueError`` naming a bad field before reading data."""
    cfg = as_config(DataConfig, cfg)
    if cfg.name == "imagefolder":
        return ImageFolderDataModule(cfg)
    if cfg.name == "clutter":
        return ClutterDataModule(cfg)
    return TensorDataModule(cfg)


class NasplayDataModule(pl.LightningDataModule):
    """Shared surface: ``name``, ``channels``, ``size``, ``num_classes`` (known before any data is read)
    and ``num_train`` / ``num_val`` / ``num_test`` (read the data on first use)."""

    def __init__(self, cfg: DataConfig, num_classes: int):
        super().__init__()
        native_c, native_s, _ = NATIVE[cfg.name]
        self.cfg = cfg
        self.name = cfg.name
        self.channels = cfg.channels or native_c
        self.size = cfg.size or native_s
        self.num_classes = num_classes
        self.batch_size = cfg.batch_size
        self.eval_batch_size = cfg.eval_batch_size or max(cfg.batch_size, 256)
        self.seed = 0  # the training seed: shuffling order (fit sets it)
        self.channels_last = False  # fit sets it: tensors on the device are stored channels-last

    @property
    def input(self) -> str:
        """The ``input`` knob value that adapts a genome to this data: ``"CxS"``."""
        return f"{self.channels}x{self.size}"

    @property
    def num_train(self) -> int:
        return self._count("train")

    @property
    def num_val(self) -> int:
        return self._count("val")

    @property
    def num_test(self) -> int:
        return self._count("test")

    def eval_sizes(self) -> dict[str, Any]:
        """What a report needs of the held-out splits: ``test_size`` and ``val_size`` (images, as this module holds
        them), and for data composed from source images (clutter) ``source_images`` per split."""
        return {"test_size": self.num_test, "val_size": self.num_val}

    def _count(self, split: str) -> int:
        raise NotImplementedError

    def input_spec(self) -> dict[str, Any]:
        """What a network trained on this data takes: ``channels`` x ``size`` x ``size`` images, pixels scaled to
        [0, 1], then ``(x - mean) / std`` per channel (``mean`` null: not normalised); ``class_names`` where known."""
        mean, std = self._normalization()
        return {"channels": self.channels, "size": self.size, "mean": mean, "std": std,
                "class_names": list(getattr(self, "classes", None) or []) or None}

    def _normalization(self) -> tuple[list[float] | None, list[float] | None]:
        return None, None

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # in-memory batches are already on the device: skip Lightning's generic walk over the batch
        if isinstance(batch, (tuple, list)) and all(isinstance(t, torch.Tensor) and t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _rank(self) -> tuple[int, int]:
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def _epoch(self) -> int:
        t = self.trainer
        return t.current_epoch if t is not None else 0


class TensorDataModule(NasplayDataModule):
    """digits, MNIST, Fashion-MNIST, CIFAR-10/100 (and in-memory class folders) as tensors."""

    def __init__(self, cfg: DataConfig, num_classes: int | None = None, splits: dict[str, Split] | None = None):
        super().__init__(cfg, num_classes or NATIVE[cfg.name][2])
        self._splits = splits
        self._stats: tuple[list[float], list[float]] | None = None  # the training split's mean and std, once read
        self._device_cache: dict[tuple[str, str], Split] = {}

    # --- reading ----------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.name in TORCHVISION and self.cfg.download:  # downloads (once per node), keeps what it read
            self.splits()

    def setup(self, stage: str | None = None) -> None:
        self.splits()

    def splits(self) -> dict[str, Split]:
        """The three splits as normalised CPU tensors (read once)."""
        if self._splits is None:
            self._splits = self._build()
        return self._splits

    def _read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """uint8/float images N x C x H x W in [0, 1] or [0, 255], labels; a test split if the data has one."""
        if self.name == "digits":
            from sklearn.datasets import load_digits

            d = load_digits()
            return d.images[:, None].astype(np.float32) / 16.0, d.target.astype(np.int64), None, None
        xtr, ytr = _torchvision_arrays(self.cfg, train=True)
        xte, yte = _torchvision_arrays(self.cfg, train=False)
        return xtr, ytr, xte, yte

    def _parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Images (as ``_read`` gives them) and labels of the three splits, ``data.limit`` applied."""
        x, y, xte, yte = self._read()
        cfg = self.cfg
        if xte is None:
            test_idx, val_idx, train_idx = stratified_split(y, (cfg.test_fraction, cfg.val_fraction), cfg.seed)
            xte, yte = x[test_idx], y[test_idx]
        else:
            val_idx, train_idx = stratified_split(y, (cfg.val_fraction,), cfg.seed)
        if cfg.limit is not None:
            train_idx = train_idx[: cfg.limit]
        return {"train": (x[train_idx], y[train_idx]), "val": (x[val_idx], y[val_idx]), "test": (xte, yte)}

    def _build(self) -> dict[str, Split]:
        parts = self._parts()
        cfg = self.cfg
        if not len(parts["train"][1]):
            raise ValueError(f"data: the training split of {self.name!r} is empty; check data.limit / data.val_fraction")
        tensors = {k: self._shape(torch.from_numpy(np.ascontiguousarray(v[0]))) for k, v in parts.items()}
        if cfg.normalize:
            mean, std = channel_stats(tensors["train"])
            tensors = {k: (v - mean) / std for k, v in tensors.items()}
            self._stats = (mean.flatten().tolist(), std.flatten().tolist())
        return {k: Split(tensors[k].contiguous(), torch.from_numpy(np.asarray(parts[k][1], dtype=np.int64))) for k in parts}

    def _shape(self, x: torch.Tensor) -> torch.Tensor:
        """To float in [0, 1], the configured channels and size."""
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return resize(convert_channels(x, self.channels), self.size)

    def _count(self, split: str) -> int:
        return len(self.splits()[split].y)

    def _normalization(self) -> tuple[list[float] | None, list[float] | None]:
        if not self.cfg.normalize:
            return None, None
        self.splits()
        return self._stats or (None, None)

    # --- batching ---------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        in_memory = self.cfg.in_memory is not False
        t = self.trainer
        return t.strategy.root_device if (t is not None and in_memory) else torch.device("cpu")

    def _on_device(self, split: str) -> Split:
        dev = self._device()
        key = (split, str(dev), self.channels_last)
        if key not in self._device_cache:
            s = self.splits()[split]
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            self._device_cache = {k: v for k, v in self._device_cache.items() if k[1:] == key[1:]}  # one copy per split
            self._device_cache[key] = Split(s.x.to(dev, memory_format=fmt), s.y.to(dev))
        return self._device_cache[key]

    def _loader(self, split: str, shuffle: bool) -> InMemoryLoader:
        s = self._on_device(split)
        rank, world = self._rank()
        bs = self.batch_size if shuffle else self.eval_batch_size
        return InMemoryLoader(s.x, s.y, bs, shuffle=shuffle, seed=self.seed, rank=rank, world_size=world, epoch=self._epoch)

    def train_dataloader(self) -> InMemoryLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> InMemoryLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> InMemoryLoader:
        return self._loader("test", shuffle=False)


class ClutterDataModule(TensorDataModule):
    """Cluttered digits (:mod:`nasplay.train.clutter`): generated in memory from scikit-learn's digits,
    each split from its own source images; ``data.size`` is the canvas (default 32)."""

    def eval_sizes(self) -> dict[str, Any]:
        """The splits' sizes and their source images, from the settings (no image is composed)."""
        from nasplay.train.clutter import ClutterSettings, source_pools

        settings = ClutterSettings.from_config(self.cfg, self.size)
        return {"test_size": settings.test, "val_size": settings.val,
                "source_images": {k: len(v) for k, v in source_pools(settings).items()}}

    def _parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        cfg = self.cfg
        cache = Path(os.path.expanduser(cfg.root)) / "clutter" if cfg.clutter_cache else None
        self.clutter = clutter_splits(ClutterSettings.from_config(cfg, self.size), cache)
        parts = {k: (v.x, v.y) for k, v in self.clutter.items()}
        if cfg.limit is not None:
            parts["train"] = tuple(a[: cfg.limit] for a in parts["train"])
        return parts


class ImageFolderDataModule(TensorDataModule):
    """An ImageNet-style tree: ``path/<class>/<image>``, or ``path/{train,val,test}/<class>/<image>``
    (:mod:`nasplay.train.folder` reads it).

    ``train/`` (or ``path`` itself) is the training tree. The test split is ``test/``, else ``val/``,
    else ``data.test_fraction`` of the training tree; validation is ``val/`` when ``test/`` exists too,
    else ``data.val_fraction`` of the training tree. ``data.size`` null keeps the images' own size (when they
    share one); images of another size are resized (shorter side) and centre-cropped. A folder whose tensors fit
    in :data:`~nasplay.train.folder.IN_MEMORY_LIMIT` (or ``data.in_memory=true``) is decoded once and held in
    memory like the other datasets, normalised with its training split's statistics, with no loader workers;
    a larger one streams from disk through a ``DataLoader`` with ``data.num_workers`` workers, normalised with
    ImageNet's statistics. ``notes`` say what happens to the images (size, conversions, where they live).
    """

    def __init__(self, cfg: DataConfig):
        from nasplay.train import folder

        tree = folder.scan(cfg.path)  # type: ignore[arg-type]
        found = folder.survey(tree)
        channels, size, notes = folder.shape(tree, found, cfg.size, cfg.channels)
        super().__init__(cfg, len(tree.classes))
        self.tree, self.classes = tree, tree.classes
        self.channels, self.size = channels, size
        n = len(tree.all_files)
        nbytes = n * channels * size * size * 4
        self.in_memory = cfg.in_memory if cfg.in_memory is not None else nbytes <= folder.IN_MEMORY_LIMIT
        where = (f"decoded once and held in memory ({nbytes / 2**20:.1f} MiB as float tensors)" if self.in_memory else
                 f"streamed from disk, {cfg.num_workers} loader worker process(es) (data.num_workers)")
        skipped = f", {tree.ignored} other file(s) ignored" if tree.ignored else ""
        self.notes = [f"data: {tree.root}: {n} images of {len(tree.classes)} classes at {channels}x{size}x{size}{skipped}; "
                      f"{where}", *notes]
        self._index: dict[str, np.ndarray] | None = None

    def check(self) -> None:
        """Decode every file (kept when the data is held in memory); a ``ValueError`` names every one that fails."""
        from nasplay.train import folder

        folder.read_images(self.tree, self.channels, self.size, keep=self.in_memory)

    def _split_index(self) -> dict[str, np.ndarray]:
        """Each split's rows of :attr:`Tree.all_files <nasplay.train.folder.Tree.all_files>` (``data.limit`` applied)."""
        if self._index is None:
            files, cfg = self.tree.files, self.cfg
            y = np.asarray([label for _, label in files["train"]], dtype=np.int64)
            n_train = len(y)
            out: dict[str, np.ndarray] = {}
            if self.tree.dirs["test"] is None:
                test_idx, rest = stratified_split(y, (cfg.test_fraction,), cfg.seed)
                out["test"] = test_idx
            else:
                rest = np.arange(n_train)
                out["test"] = n_train + len(files.get("val", [])) + np.arange(len(files["test"]))
            if self.tree.dirs["val"] is None:
                val_i, train_i = stratified_split(y[rest], (cfg.val_fraction,), cfg.seed + 1)
                out["val"], train_idx = rest[val_i], rest[train_i]
            else:
                out["val"], train_idx = n_train + np.arange(len(files["val"])), rest
            out["train"] = train_idx[: cfg.limit] if cfg.limit is not None else train_idx
            self._index = out
        return self._index

    def _parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from nasplay.train import folder

        x = folder.read_images(self.tree, self.channels, self.size, keep=True)
        y = np.asarray([label for _, label in self.tree.all_files], dtype=np.int64)
        return {k: (x[i], y[i]) for k, i in self._split_index().items()}  # type: ignore[index]

    def setup(self, stage: str | None = None) -> None:
        if self.in_memory:
            self.splits()

    def _count(self, split: str) -> int:
        return len(self._split_index()[split])

    def _normalization(self) -> tuple[list[float] | None, list[float] | None]:
        if self.in_memory or not self.cfg.normalize:
            return super()._normalization()
        return (list(IMAGENET_MEAN), list(IMAGENET_STD)) if self.channels == 3 else ([0.449], [0.226])

    def _loader(self, split: str, shuffle: bool):
        if self.in_memory:
            return super()._loader(split, shuffle)
        from torch.utils.data import DataLoader

        from nasplay.train.folder import FolderDataset

        files = self.tree.all_files
        mean, std = self._normalization()
        ds = FolderDataset([files[i] for i in self._split_index()[split]], self.channels, self.size, mean, std)
        g = torch.Generator().manual_seed(self.seed)
        t = self.trainer
        pin = t is not None and t.strategy.root_device.type == "cuda"
        w = self.cfg.num_workers
        return DataLoader(ds, batch_size=self.batch_size if shuffle else self.eval_batch_size, shuffle=shuffle,
                          generator=g, num_workers=w, persistent_workers=w > 0, pin_memory=pin, drop_last=False)


# --- helpers ------------------------------------------------------------------------------------
def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """1 -> 3 repeats the grey map; 3 -> 1 takes the luminance (ITU-R 601)."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if c == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise ValueError(f"data.channels: cannot convert {c} channels to {channels}")


def resize(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear resize to ``size`` x ``size`` (antialiased when shrinking), in chunks to bound memory."""
    if x.shape[-2:] == (size, size):
        return x
    if not len(x):
        return x.new_zeros(0, x.shape[1], size, size)
    shrink = size < max(x.shape[-2:])
    return torch.cat([F.interpolate(x[i:i + chunk], size=(size, size), mode="bilinear", align_corners=False,
                                    antialias=shrink) for i in range(0, len(x), chunk)])


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (shaped 1 x C x 1 x 1) of a float N x C x H x W tensor."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return mean, std


TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


def _torchvision_arrays(cfg: DataConfig, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N x C x H x W images and int64 labels through the real torchvision dataset class."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[cfg.name])
    root = os.path.expanduser(cfg.root)
    if cfg.name in ("mnist", "fashion_mnist"):
        _gunzip_mnist(cls, root)
    elif not cfg.download:
        cls = _trusting_cifar(cls)
    try:
        ds = cls(root, train=train, download=cfg.download)
    except (RuntimeError, OSError) as e:  # torchvision's "Dataset not found or corrupted"; a failed download
        raise FileNotFoundError(f"data: {cfg.name} not found under data.root={cfg.root!r} ({e}); "
                                "set data.download=true or put the files there") from None
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    data = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)  # to N x C x H x W
    targets = ds.targets.numpy() if isinstance(ds.targets, torch.Tensor) else np.asarray(ds.targets)
    return data, targets.astype(np.int64)


def _gunzip_mnist(cls: type, root: str) -> None:
    """torchvision reads MNIST's idx files uncompressed; unpack any that are present only as ``.gz``."""
    raw = Path(root) / cls.__name__ / "raw"
    for url, _ in cls.resources:
        gz = raw / os.path.basename(url)
        if gz.suffix == ".gz" and gz.exists() and not gz.with_suffix("").exists():
            with gzip.open(gz, "rb") as src, open(gz.with_suffix(""), "wb") as dst:
                shutil.copyfileobj(src, dst)


def _trusting_cifar(cls: type) -> type:
    """The CIFAR class without its md5 checks: with ``download=False`` the files the user put there are
    used as they are (subsets, re-packed copies); ``download=True`` keeps torchvision's checks."""
    return type(cls.__name__, (cls,), {
        "train_list": [[f, None] for f, _ in cls.train_list],
        "test_list": [[f, None] for f, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None},
    })
