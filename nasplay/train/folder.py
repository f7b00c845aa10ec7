"""Class folders (``data=imagefolder``): scanned, surveyed, checked and decoded, with PIL and NumPy only.

A tree is ``data.path/<class>/<image>`` or ``data.path/{train,val,test}/<class>/<image>``. Making its data module
scans it and reads every image's header (size and mode: cheap), which fixes the input size when ``data.size`` is
null (the images' own, when they share one) and the channels when ``data.channels`` is (1 when every image is
greyscale). :func:`read_images` then decodes every file, which is the check a study makes before it exists: a file
that does not open or decode is named, with every other bad one, in one ``ValueError``. A folder small enough to
hold (``IN_MEMORY_LIMIT``) keeps what that pass decoded, once per process; a larger one is decoded again per batch
by :class:`FolderDataset` through a ``DataLoader``. Both decode with :func:`decode`, so both see the same pixels,
and every conversion that changes what the pixels mean (16-bit to 8-bit, a palette, an alpha channel) is said
in one line (:func:`conversions`).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Folders whose decoded float32 tensors fit in this many bytes are held in memory (data.in_memory=null).
IN_MEMORY_LIMIT = 1 << 30
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# What each conversion does to the pixels, said once per study (modes that need none: L, RGB).
CONVERSIONS = {
    "16": "16-bit greyscale scaled to 8 bits (x 255/65535)",
    "I": "32-bit integer greyscale read as 16-bit and scaled to 8 bits (x 255/65535, clipped)",
    "F": "32-bit float greyscale clipped to [0, 255]",
    "1": "1-bit to 0/255 greyscale",
    "P": "palette to RGB",
    "alpha": "alpha channel dropped (not composited)",
    "other": "converted to RGB by PIL",
    "to_grey": "colour to greyscale (luminance, ITU-R 601)",
    "to_rgb": "greyscale repeated to 3 channels",
}


@dataclass(frozen=True)
class Tree:
    """A scanned class-folder tree: its split folders, classes and image files (sorted: class, then name)."""

    root: Path
    dirs: dict[str, Path | None]  # train / val / test (None: split off the training tree)
    classes: list[str]
    files: dict[str, list[tuple[str, int]]]  # split folder -> (path, label)
    ignored: int  # files that are not images (by extension)
    signature: str  # of every image's path, size and mtime: what a cache of decoded pixels is valid for

    @property
    def all_files(self) -> list[tuple[str, int]]:
        return [f for d in ("train", "val", "test") for f in self.files.get(d, [])]


@dataclass
class Survey:
    """What the headers say: sizes (width, height) and modes, counted, and palettes with a transparent colour."""

    sizes: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)
    transparent_palettes: int = 0


def scan(path: str) -> Tree:
    """The tree at ``path`` (``data.path``); ``ValueError`` naming ``data.path`` when it is not one."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"data.path: {str(root)!r} is not a directory")
    dirs = _layout(root)
    classes = _classes(dirs["train"])  # type: ignore[arg-type]
    files: dict[str, list[tuple[str, int]]] = {}
    ignored = 0
    digest = hashlib.sha1(str(root.resolve()).encode())
    for split, d in dirs.items():
        if d is None:
            continue
        if split != "train" and _classes(d) != classes:
            raise ValueError(f"data.path: the classes of {d} ({_classes(d)}) differ from those of {dirs['train']} ({classes})")
        files[split] = []
        for label, c in enumerate(classes):
            with os.scandir(d / c) as it:
                entries = sorted((e for e in it if e.is_file()), key=lambda e: e.name)
            for e in entries:
                if not e.name.lower().endswith(IMAGE_EXTENSIONS):
                    ignored += 1
                    continue
                st = e.stat()
                digest.update(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                files[split].append((e.path, label))
    return Tree(root, dirs, classes, files, ignored, digest.hexdigest())


def survey(tree: Tree, threads: int | None = None) -> Survey:
    """Every image's header (no pixels decoded). A file whose header does not read is a bad file: then every
    file is decoded, so that the ``ValueError`` lists all the bad ones at once."""
    from PIL import Image

    def header(path: str) -> tuple[tuple[int, int], str, bool] | str:
        try:
            with Image.open(path) as im:
                return im.size, im.mode, im.mode in ("P", "PA") and "transparency" in im.info
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds for a bad file; each is the file's fault
            return _reason(e)

    paths = [p for p, _ in tree.all_files]
    out = Survey()
    bad = []
    for path, r in zip(paths, _map(header, paths, threads)):
        if isinstance(r, str):
            bad.append((path, r))
            continue
        size, mode, transparent = r
        out.sizes[size] += 1
        out.modes[mode] += 1
        out.transparent_palettes += transparent
    if bad:
        broken = {p for p, _ in bad}
        bad += _failures([p for p in paths if p not in broken], 1, 1, threads)
        raise ValueError(bad_files_message(tree, bad))
    return out


def shape(tree: Tree, found: Survey, size: int | None, channels: int | None) -> tuple[int, int, list[str]]:
    """The (channels, size) the images train at and the lines that say what happens to them on the way.

    ``size`` null: the images' own when they all share one (the shorter side, centre-cropped, when it is not
    square); a ``ValueError`` naming ``data.size`` when they differ.
    """
    notes = []
    n = sum(found.sizes.values())
    if size is None:
        if len(found.sizes) > 1:
            common = ", ".join(f"{w}x{h} ({k})" for (w, h), k in found.sizes.most_common(4))
            more = f" and {len(found.sizes) - 4} more sizes" if len(found.sizes) > 4 else ""
            raise ValueError(f"data.size: the {n} images under {tree.root} are not all one size ({common}{more}); "
                             f"set data.size=S to resize them (shorter side to S, then a centre crop to S x S)")
        (w, h), = found.sizes
        size = min(w, h)
        if w != h:
            notes.append(f"data: the {n} images are {w}x{h}: centre-cropped to {size}x{size} (data.size={size}; "
                         f"set data.size to resize instead)")
    else:
        off = {s: k for s, k in found.sizes.items() if s != (size, size)}
        if off:
            shown = ", ".join(f"{w}x{h}" for (w, h), _ in Counter(off).most_common(3)) + (", ..." if len(off) > 3 else "")
            notes.append(f"data: {sum(off.values())} of {n} images ({shown}) resized (shorter side) and centre-cropped to "
                         f"{size}x{size} (data.size={size})")
    if channels is None:
        channels = 1 if set(found.modes) <= GREY_MODES else 3
    said = conversions(found, channels)
    if said:
        notes.append(said)
    return channels, size, notes


def conversions(found: Survey, channels: int) -> str | None:
    """One line on what converting the images to 8-bit ``channels`` does to them (None: nothing changes)."""
    counts: Counter = Counter()
    for mode, k in found.modes.items():
        for what in _steps(mode, channels):
            counts[what] += k
    if found.transparent_palettes:
        counts["alpha"] += found.transparent_palettes
    if not counts:
        return None
    n = sum(found.modes.values())
    parts = [f"{k} {CONVERSIONS[what]}" for what, k in counts.most_common()]
    modes = ", ".join(f"{m} ({k})" for m, k in found.modes.most_common())
    return f"data: converted images to 8-bit {'greyscale' if channels == 1 else 'RGB'}: {'; '.join(parts)} (of {n} images; modes: {modes})"


def _steps(mode: str, channels: int) -> list[str]:
    steps = []
    if mode in SIXTEEN_BIT:
        steps.append("16")
    elif mode in ("I", "F", "1", "P"):
        steps.append(mode)
    elif mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        steps += ["P"] if mode == "PA" else []
        steps.append("alpha")
    elif mode not in ("L", "RGB"):
        steps.append("other")
    grey = mode in GREY_MODES
    if channels == 1 and not grey:
        steps.append("to_grey")
    elif channels == 3 and grey:
        steps.append("to_rgb")
    return steps


def decode(path: str, channels: int, size: int) -> np.ndarray:
    """The image at ``path`` as uint8 ``channels x size x size``: decoded in full (a truncated file raises), converted
    as :data:`CONVERSIONS` say, its shorter side resized to ``size`` (bilinear, antialiased) and centre-cropped."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        im = _to_8bit(im, channels)
        w, h = im.size
        if (w, h) != (size, size):
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            if (nw, nh) != (w, h):
                im = im.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = int(round((nw - size) / 2)), int(round((nh - size) / 2))
            im = im.crop((left, top, left + size, top + size))
        a = np.asarray(im, dtype=np.uint8)
    return np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))


def _to_8bit(im, channels: int):
    from PIL import Image

    mode = im.mode
    if mode in SIXTEEN_BIT or mode == "I":
        a = np.clip(np.asarray(im, dtype=np.float64), 0, 65535) * (255 / 65535)
        im = Image.fromarray(np.rint(a).astype(np.uint8), "L")
    elif mode == "F":
        im = Image.fromarray(np.rint(np.clip(np.asarray(im, dtype=np.float64), 0, 255)).astype(np.uint8), "L")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La"):
        im = im.getchannel(0)
    elif im.mode not in ("L", "RGB"):
        im = im.convert("RGB")  # RGBA (alpha dropped), CMYK, YCbCr, LAB, HSV
    if channels == 1 and im.mode != "L":
        im = im.convert("L")
    elif channels == 3 and im.mode != "RGB":
        im = im.convert("RGB")
    return im


_ARRAYS: dict[tuple[str, int, int], np.ndarray] = {}  # decoded trees of this process (the latest few)
_CHECKED: set[tuple[str, int, int]] = set()  # trees this process decoded in full and found sound


def read_images(tree: Tree, channels: int, size: int, *, keep: bool, threads: int | None = None) -> np.ndarray | None:
    """Decode every image of ``tree`` (the check before a study: a ``ValueError`` lists every file that does not
    decode); with ``keep``, the images as uint8 ``N x C x S x S`` in :attr:`Tree.all_files` order, once per process."""
    key = (tree.signature, channels, size)
    if key in _ARRAYS:
        return _ARRAYS[key]
    if not keep and key in _CHECKED:
        return None
    paths = [p for p, _ in tree.all_files]
    out = np.empty((len(paths), channels, size, size), np.uint8) if keep else None

    def one(i: int) -> tuple[str, str] | None:
        try:
            a = decode(paths[i], channels, size)
        except Exception as e:  # noqa: BLE001 - a bad file, whatever PIL raises for it
            return paths[i], _reason(e)
        if out is not None:
            out[i] = a
        return None

    bad = [r for r in _map(one, range(len(paths)), threads) if r is not None]
    if bad:
        raise ValueError(bad_files_message(tree, bad))
    if out is None:
        _CHECKED.add(key)
        return None
    while len(_ARRAYS) >= 2:  # a process trains on one or two data settings at a time
        _ARRAYS.pop(next(iter(_ARRAYS)))
    _ARRAYS[key] = out
    return out


def bad_files_message(tree: Tree, bad: Sequence[tuple[str, str]]) -> str:
    total = len(tree.all_files)
    listed = "; ".join(f"{os.path.relpath(p, tree.root)} ({why})" for p, why in sorted(bad))
    return (f"data.path: {len(bad)} of {total} image file(s) under {tree.root} do not open or decode: {listed}. "
            f"Replace or remove them; nothing has run")


def _failures(paths: list[str], channels: int, size: int, threads: int | None) -> list[tuple[str, str]]:
    def one(p: str) -> tuple[str, str] | None:
        try:
            decode(p, channels, size)
        except Exception as e:  # noqa: BLE001 - as above
            return p, _reason(e)
        return None

    return [r for r in _map(one, paths, threads) if r is not None]


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _map(fn: Callable[[Any], Any], items: Iterable[Any], threads: int | None) -> list[Any]:
    # PIL's decoders release the GIL: a few threads decode a folder several times faster
    with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as ex:
        return list(ex.map(fn, items))


def _layout(root: Path) -> dict[str, Path | None]:
    sub = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    if "train" not in sub:
        return {"train": root, "val": None, "test": None}
    test = sub.get("test") or sub.get("val")
    val = sub.get("val") if "test" in sub else None
    return {"train": sub["train"], "val": val, "test": test}


def _classes(d: Path) -> list[str]:
    classes = sorted(e.name for e in os.scandir(d) if e.is_dir())
    if not classes:
        raise ValueError(f"data.path: {str(d)!r} holds no class folders (expected <class>/<image> files)")
    for c in classes:
        if not any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(d / c)):
            raise ValueError(f"data.path: class folder {str(d / c)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return classes


class FolderDataset:
    """A split of a tree that does not fit in memory: each item decoded from disk, scaled to [0, 1], normalised."""

    def __init__(self, files: Sequence[tuple[str, int]], channels: int, size: int,
                 mean: Sequence[float] | None, std: Sequence[float] | None):
        self.files, self.channels, self.size = list(files), channels, size
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1) if mean is not None else None
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1) if std is not None else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import torch

        path, label = self.files[i]
        x = decode(path, self.channels, self.size).astype(np.float32) / 255.0
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return torch.from_numpy(x), label
