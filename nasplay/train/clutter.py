"""Cluttered digits: scikit-learn's real handwritten digits composed onto a larger, cluttered canvas.

The task of the attention literature's "cluttered MNIST" (Mnih et al. 2014, "Recurrent Models of
Visual Attention"; Jaderberg et al. 2015, "Spatial Transformer Networks"), built from the 1,797
8 x 8 UCI digits that ship inside scikit-learn, so it needs no download. Each image is a
``size`` x ``size`` canvas (default 32) holding

* one target digit (its label is the image's label), bilinearly scaled so that its side is a random
  fraction in ``[clutter_scale_min, clutter_scale_max]`` of the canvas, at a random sub-pixel position
  wholly inside the canvas;
* ``clutter_distractors`` fragments: random 4 x 4 windows (half the side) cut from other digits of the
  same split, drawn at a digit scale from the same range, anywhere on the canvas (they may overlap the
  target: the brighter stroke wins, pixel-wise maximum);
* Gaussian pixel noise of standard deviation ``clutter_noise`` (then clipped to [0, 1]).

The 1,797 source images are split first (stratified by class, ``data.test_fraction`` and
``data.val_fraction``, seeded by ``data.seed``) and each split is composed only from its own sources,
target and fragments alike: the test set measures recognition of digit images never seen in training,
not memory of composed copies of them. Targets cycle through the ten classes, so every split is
class-balanced to within one image, and through the sources of each class, so every source digit is a
target equally often (to within one). Everything is drawn from ``data.seed``; the same settings give
the same bytes. Images are generated in memory as ``uint8`` (vectorised ``grid_sample`` and a
scatter-max), cached in this process per settings and, with ``data.clutter_cache=true``, in
``<data.root>/clutter/`` as ``.npz``.

These are composed images, not natural ones: the digits are 8 x 8 scans upsampled (blurred at large
canvases), the background is black with synthetic noise, and the only nuisances are position, scale,
clutter and noise (no rotation, lighting, texture or perspective).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nasplay.train.split import stratified_split

SRC = 8  # side of a source digit (sklearn's 8 x 8)
FRAGMENT = 4  # side of a fragment window, in source pixels
CHUNK = 512  # images rendered at a time (bounds memory at large canvases; fixed so the bytes do not depend on it)
VERSION = 1  # bump when the generator changes what it draws: the disk cache keys on it
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ClutterSettings:
    """What the images depend on (the cache key)."""

    seed: int
    size: int
    distractors: int
    scale_min: float
    scale_max: float
    noise: float
    train: int
    val: int
    test: int
    val_fraction: float
    test_fraction: float

    @classmethod
    def from_config(cls, cfg, size: int | None = None) -> ClutterSettings:
        """The settings a ``DataConfig`` asks for (``size`` overrides ``cfg.size``; default 32)."""
        return cls(seed=cfg.seed, size=size or cfg.size or 32, distractors=cfg.clutter_distractors,
                   scale_min=float(cfg.clutter_scale_min), scale_max=float(cfg.clutter_scale_max),
                   noise=float(cfg.clutter_noise), train=cfg.clutter_train, val=cfg.clutter_val, test=cfg.clutter_test,
                   val_fraction=float(cfg.val_fraction), test_fraction=float(cfg.test_fraction))

    def key(self) -> str:
        blob = json.dumps({"version": VERSION, **self.__dict__}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass
class ClutterSplit:
    """One split: images, labels and where every image came from (indices into ``load_digits()``)."""

    x: np.ndarray  # uint8 N x 1 x S x S
    y: np.ndarray  # int64 N
    target: np.ndarray  # int64 N: the source image of the target digit
    fragments: np.ndarray  # int64 N x distractors: the source image of every fragment
    pool: np.ndarray  # int64: the source images this split may draw from


_CACHE: OrderedDict[ClutterSettings, dict[str, ClutterSplit]] = OrderedDict()
_CACHE_ENTRIES = 2  # a 224-pixel set is a few GB: keep only the last two settings


def sources() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 source digits as float32 N x 8 x 8 in [0, 1] and their int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def clutter_splits(s: ClutterSettings, cache_dir: str | os.PathLike | None = None) -> dict[str, ClutterSplit]:
    """The three splits for ``s``: from this process's cache, ``cache_dir``, or generated (and stored there)."""
    check(s)
    path = Path(cache_dir) / f"clutter-{s.key()}.npz" if cache_dir is not None else None
    out = _CACHE.pop(s, None)
    if out is None and path is not None and path.exists():
        out = _load(path)
    if out is None:
        out = generate(s)
    if path is not None and not path.exists():
        _save(path, out)
    _CACHE[s] = out  # the most recent last
    while len(_CACHE) > _CACHE_ENTRIES:
        _CACHE.popitem(last=False)
    return out


def check(s: ClutterSettings) -> None:
    """``ValueError`` naming the ``data.clutter_*`` field that cannot work."""
    if not 0 < s.scale_min <= s.scale_max <= 1:
        raise ValueError(f"data.clutter_scale_min / data.clutter_scale_max must satisfy 0 < min <= max <= 1 "
                         f"(the digit's side as a fraction of the canvas), got {s.scale_min} / {s.scale_max}")
    if s.size < 8:
        raise ValueError(f"data.size must be >= 8 for clutter, got {s.size}")


def source_pools(s: ClutterSettings) -> dict[str, np.ndarray]:
    """The source images (indices into ``load_digits()``) each split is composed from: a stratified split of the sources."""
    test_pool, val_pool, train_pool = stratified_split(sources()[1], (s.test_fraction, s.val_fraction), s.seed)
    return {"train": train_pool, "val": val_pool, "test": test_pool}


def generate(s: ClutterSettings) -> dict[str, ClutterSplit]:
    """Compose the three splits (no caching)."""
    images, labels = sources()
    pools = source_pools(s)
    counts = {"train": s.train, "val": s.val, "test": s.test}
    seeds = np.random.SeedSequence([s.seed, VERSION]).spawn(len(SPLITS))
    return {k: compose(images, labels, np.sort(pools[k]), counts[k], s, ss) for k, ss in zip(SPLITS, seeds)}


def compose(images: np.ndarray, labels: np.ndarray, pool: np.ndarray, n: int, s: ClutterSettings,
            seed: np.random.SeedSequence) -> ClutterSplit:
    """``n`` cluttered images whose targets and fragments come from ``pool`` only."""
    size, k = s.size, s.distractors
    if n and not len(pool):
        raise ValueError("data: a clutter split has no source digits; lower data.val_fraction / data.test_fraction "
                         "or set its size (data.clutter_val / data.clutter_test) to 0")
    param_seed, noise_seed = seed.spawn(2)
    rng = np.random.default_rng(param_seed)
    # targets: classes in turn (balanced); within a class the pool's sources in turn, in a random order,
    # so that every source is a target equally often (to one) and a split uses all the sources it has
    y = np.arange(n, dtype=np.int64) % 10
    y = y[rng.permutation(n)]
    target = np.empty(n, np.int64)
    for c in range(10):
        members = pool[labels[pool] == c]
        where = np.flatnonzero(y == c)
        if len(where) and not len(members):
            raise ValueError(f"data: a clutter split has no source digit of class {c}")
        if len(where):
            target[where] = np.tile(rng.permutation(members), -(-len(where) // len(members)))[: len(where)]
    side = rng.uniform(s.scale_min, s.scale_max, n) * size  # the target's side in canvas pixels
    pos = rng.uniform(0, 1, (n, 2)) * (size - side)[:, None]  # top-left (x, y), wholly inside
    # fragments: a 4 x 4 window of another pool digit, drawn at a digit scale, anywhere on the canvas
    frag = pool[rng.integers(0, len(pool), (n, k))] if k and len(pool) else np.zeros((n, k), np.int64)
    fside = rng.uniform(s.scale_min, s.scale_max, (n, k)) * size * (FRAGMENT / SRC)
    fpos = rng.uniform(0, 1, (n, k, 2)) * (size - fside)[..., None]
    fwin = rng.integers(0, SRC - FRAGMENT + 1, (n, k, 2)).astype(np.float32)  # the window's corner in the source

    noise_rng = np.random.default_rng(noise_seed)  # drawn chunk after chunk, in order
    src = torch.from_numpy(images)
    x = np.empty((n, 1, size, size), np.uint8)
    for c0 in range(0, n, CHUNK):
        sl = slice(c0, min(n, c0 + CHUNK))
        m = sl.stop - sl.start
        canvas = torch.zeros(m, size, size)
        _draw(canvas, src[target[sl]], torch.from_numpy(side[sl]).float(), torch.from_numpy(pos[sl]).float(),
              torch.zeros(m, 2), SRC)
        for j in range(k):
            _draw(canvas, src[frag[sl, j]], torch.from_numpy(fside[sl, j]).float(), torch.from_numpy(fpos[sl, j]).float(),
                  torch.from_numpy(fwin[sl, j]), FRAGMENT)
        if s.noise > 0:
            canvas += torch.from_numpy(noise_rng.standard_normal((m, size, size), dtype=np.float32)) * s.noise
        x[sl, 0] = (canvas.clamp_(0, 1) * 255).round_().to(torch.uint8).numpy()
    return ClutterSplit(x, y, target, frag, pool)


def _draw(canvas: torch.Tensor, src: torch.Tensor, side: torch.Tensor, pos: torch.Tensor, win: torch.Tensor,
          win_side: int) -> None:
    """Draw the window ``win`` .. ``win + win_side`` of each source (M x 8 x 8) into ``canvas`` (M x S x S) as a
    square of ``side`` pixels with its top-left corner at ``pos`` (x, y), bilinearly, keeping the brighter pixel."""
    m, size = canvas.shape[0], canvas.shape[-1]
    p = int(np.ceil(float(side.max()))) + 1 if m else 1  # patch side: the largest square plus its sub-pixel offset
    origin = pos.floor()
    frac = pos - origin
    t = torch.arange(p, dtype=torch.float32) + 0.5
    # source coordinates (in source pixels) of the patch's pixel centres, per image and axis
    u = win[:, None, :] + (t[None, :, None] - frac[:, None, :]) / side[:, None, None] * win_side  # M x P x 2
    inside = (u >= win[:, None, :]) & (u < win[:, None, :] + win_side)
    g = u / SRC * 2 - 1  # grid_sample's coordinates (align_corners=False)
    grid = torch.stack(torch.broadcast_tensors(g[:, None, :, 0], g[:, :, None, 1]), dim=-1)  # M x P x P x (x, y)
    patch = F.grid_sample(src[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    patch = patch * (inside[:, None, :, 0] & inside[:, :, None, 1])
    # scatter-max into the canvas, padded so that a patch running past the edge needs no bounds checks
    padded = torch.zeros(m, size + p, size + p)
    padded[:, :size, :size] = canvas
    ox, oy = origin[:, 0].long(), origin[:, 1].long()
    rows = (oy[:, None] + torch.arange(p)[None]).clamp_max(size + p - 1)  # M x P
    cols = (ox[:, None] + torch.arange(p)[None]).clamp_max(size + p - 1)
    idx = (torch.arange(m)[:, None, None] * (size + p) + rows[:, :, None]) * (size + p) + cols[:, None, :]
    padded.view(-1).scatter_reduce_(0, idx.reshape(-1), patch.reshape(-1), reduce="amax")
    canvas.copy_(padded[:, :size, :size])


def _save(path: Path, splits: dict[str, ClutterSplit]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{k}.{f}": getattr(v, f) for k, v in splits.items() for f in ("x", "y", "target", "fragments", "pool")}
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none


def _load(path: Path) -> dict[str, ClutterSplit] | None:
    try:
        with np.load(path) as z:
            return {k: ClutterSplit(*(z[f"{k}.{f}"] for f in ("x", "y", "target", "fragments", "pool"))) for k in SPLITS}
    except (OSError, KeyError, ValueError):  # a damaged or foreign file: generate again
        return None
