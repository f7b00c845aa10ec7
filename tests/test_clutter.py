"""data=clutter: cluttered digits composed from scikit-learn's digits (nasplay/train/clutter.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nasplay.train import clutter
from nasplay.train.clutter import ClutterSettings, clutter_splits, generate
from nasplay.train.config import DataConfig
from nasplay.train.data import make_datamodule

SMALL = {"clutter_train": 400, "clutter_val": 100, "clutter_test": 300}


def settings(**kw) -> ClutterSettings:
    return ClutterSettings.from_config(DataConfig(name="clutter", **{**SMALL, **kw}))


def test_same_seed_same_bytes_other_seed_other_images():
    s = settings(seed=3)
    a, b = generate(s), generate(s)
    for k in clutter.SPLITS:
        assert np.array_equal(a[k].x, b[k].x) and np.array_equal(a[k].y, b[k].y)
        assert np.array_equal(a[k].fragments, b[k].fragments)
    other = generate(replace(s, seed=4))
    for k in clutter.SPLITS:
        assert not np.array_equal(a[k].pool, other[k].pool)  # another split of the sources ...
        assert (a[k].x != other[k].x).mean() > 0.5  # ... and other images
    # the data module gives the same tensors for the same seed (through the in-process cache or not)
    cfg = DataConfig(name="clutter", seed=3, **SMALL)
    x1 = make_datamodule(cfg).splits()["test"].x
    clutter._CACHE.clear()
    x2 = make_datamodule(cfg).splits()["test"].x
    assert torch.equal(x1, x2)
    assert not torch.equal(x1, make_datamodule(replace(cfg, seed=4)).splits()["test"].x)


def test_splits_come_from_disjoint_source_digits():
    _, labels = clutter.sources()
    out = generate(settings(seed=1))
    pools = {k: set(v.pool.tolist()) for k, v in out.items()}
    assert not pools["train"] & pools["val"] and not pools["train"] & pools["test"] and not pools["val"] & pools["test"]
    assert len(pools["train"] | pools["val"] | pools["test"]) == 1797
    assert abs(len(pools["test"]) - 0.2 * 1797) < 10 and abs(len(pools["val"]) - 0.1 * 1797) < 10
    for k, v in out.items():
        assert set(v.target.tolist()) <= pools[k], k  # targets from the split's own sources
        assert set(v.fragments.ravel().tolist()) <= pools[k], k  # and so are the distractor fragments
        assert v.fragments.shape == (len(v.y), 4)
        assert np.array_equal(labels[v.target], v.y)  # the label is the target digit's
    for k, v in out.items():  # every source of a class is a target equally often, to within one
        for c in range(10):
            uses = np.bincount(v.target[v.y == c], minlength=1797)[v.pool[labels[v.pool] == c]]
            assert uses.max() - uses.min() <= 1, (k, c)
    assert len(set(out["test"].target.tolist())) == 300  # 300 test images: 300 different source digits
    assert len(set(out["train"].target.tolist())) == 400


def test_shapes_dtype_labels_balance_and_normalisation():
    dm = make_datamodule(DataConfig(name="clutter", **SMALL))
    assert (dm.name, dm.channels, dm.size, dm.num_classes, dm.input) == ("clutter", 1, 32, 10, "1x32")
    s = dm.splits()
    assert (dm.num_train, dm.num_val, dm.num_test) == (400, 100, 300)
    for k, v in s.items():
        assert v.x.shape == (len(v.y), 1, 32, 32) and v.x.dtype == torch.float32 and v.y.dtype == torch.int64, k
        assert v.y.min() >= 0 and v.y.max() <= 9
        counts = v.y.bincount(minlength=10)
        assert counts.max() - counts.min() <= 1, (k, counts)  # classes in turn: balanced to one image
    assert abs(s["train"].x.mean().item()) < 1e-4 and abs(s["train"].x.std().item() - 1) < 1e-3
    assert make_datamodule(DataConfig(name="clutter")).num_test == 5000  # the default test set
    big = make_datamodule(DataConfig(name="clutter", size=64, channels=3, limit=50, **SMALL)).splits()
    assert big["train"].x.shape == (50, 3, 64, 64) and big["test"].x.shape == (300, 3, 64, 64)


def test_a_lone_digit_at_full_scale_is_the_source_image():
    """No clutter, no noise, a digit as large as an 8 x 8 canvas: every pixel is the source's, exactly."""
    images, _ = clutter.sources()
    s = settings(size=8, clutter_distractors=0, clutter_noise=0.0, clutter_scale_min=1.0, clutter_scale_max=1.0)
    out = generate(s)["train"]
    expected = np.round(images[out.target] * 255).astype(np.uint8)
    assert np.array_equal(out.x[:, 0], expected)


def test_position_scale_clutter_and_noise_do_what_they_say():
    s = settings(clutter_distractors=0, clutter_noise=0.0, clutter_scale_min=0.5, clutter_scale_max=0.5)
    x = generate(s)["train"].x[:, 0].astype(np.float32)
    ink_rows, ink_cols = (x > 0).any(2), (x > 0).any(1)
    heights, widths = ink_rows.sum(1), ink_cols.sum(1)
    assert heights.max() <= 17 and widths.max() <= 17  # a 16-pixel digit (plus a sub-pixel offset)
    assert np.median(heights) >= 14
    first = ink_rows.argmax(1)
    assert first.min() <= 2 and first.max() >= 13  # placed anywhere on the canvas
    cluttered = generate(replace(s, distractors=8))["train"].x[:, 0].astype(np.float32)
    assert (cluttered > 0).mean() > 1.5 * (x > 0).mean()  # fragments add ink
    assert (cluttered >= x).all()  # and never erase the target (pixel-wise maximum)
    noisy = generate(replace(s, noise=0.1))["train"].x[:, 0].astype(np.float32) / 255
    background = x == 0
    assert 0.02 < noisy[background].mean() < 0.06  # half-normal noise of sigma 0.1 clipped at 0: mean 0.04


def test_cached_in_process_and_on_disk(tmp_path: Path):
    s = settings(seed=7)
    clutter._CACHE.clear()
    a = clutter_splits(s)
    assert clutter_splits(s) is a  # in-process
    clutter._CACHE.clear()
    b = clutter_splits(s, tmp_path)
    files = list(tmp_path.glob("clutter-*.npz"))
    assert len(files) == 1 and np.array_equal(a["test"].x, b["test"].x)
    clutter._CACHE.clear()
    c = clutter_splits(s, tmp_path)  # read back from the file
    assert all(np.array_equal(getattr(b[k], f), getattr(c[k], f)) for k in clutter.SPLITS
               for f in ("x", "y", "target", "fragments", "pool"))
    assert len({s.key(), replace(s, noise=0.2).key(), replace(s, seed=8).key()}) == 3
    dm = make_datamodule(DataConfig(name="clutter", seed=7, root=str(tmp_path / "root"), clutter_cache=True, **SMALL))
    dm.splits()
    assert len(list((tmp_path / "root" / "clutter").glob("clutter-*.npz"))) == 1


@pytest.mark.parametrize("field,value,match", [
    ("clutter_scale_min", 0.8, "clutter_scale_min <= data.clutter_scale_max"),
    ("clutter_scale_max", 1.5, "clutter_scale_max"),
    ("clutter_distractors", -1, "clutter_distractors"),
    ("clutter_noise", -0.1, "clutter_noise"),
    ("clutter_train", 0, "clutter_train"),
    ("size", 4, "data.size must be >= 8"),
])
def test_bad_settings_name_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        make_datamodule(DataConfig(name="clutter", **{field: value}))


def _pixels(split) -> np.ndarray:
    return split.x.reshape(len(split.y), -1) / 255.0


def test_no_shortcut_in_the_pixels():
    """A linear classifier on the pixels reads the digits when they sit still (the labels match the images) and is
    near chance on the cluttered images (no position, brightness or clutter statistic gives the class away)."""
    from sklearn.linear_model import LogisticRegression

    def accuracy(**kw) -> float:
        out = generate(settings(seed=0, clutter_train=3000, clutter_test=1000, **kw))
        clf = LogisticRegression(C=0.01, max_iter=300).fit(_pixels(out["train"]), out["train"].y)
        return clf.score(_pixels(out["test"]), out["test"].y)

    still = accuracy(size=8, clutter_distractors=0, clutter_noise=0.0, clutter_scale_min=1.0, clutter_scale_max=1.0)
    assert still > 0.85, still  # unseen source digits, recognised
    cluttered = accuracy()
    assert cluttered < 0.2, cluttered


@pytest.mark.slow
def test_learnable_but_not_trivial():
    """A small CNN (4 conv layers with BatchNorm, global average pooling) beats chance clearly after two epochs of
    3,000 cluttered images and stays far from solving them."""
    from torch import nn

    out = generate(settings(seed=0, clutter_train=3000, clutter_test=500))
    x = torch.from_numpy(out["train"].x).float() / 255
    mean, std = x.mean(), x.std()
    x, y = (x - mean) / std, torch.from_numpy(out["train"].y)
    torch.manual_seed(0)

    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    net = nn.Sequential(*block(1, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                        *block(64, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        for idx in torch.randperm(len(y), generator=g).split(64):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = net((torch.from_numpy(out["test"].x).float() / 255 - mean) / std).argmax(1)
    acc = (pred.numpy() == out["test"].y).mean()
    assert 0.14 < acc < 0.9, acc  # chance is 0.1; 0.14 is 3 standard errors above it at 500 images


def test_a_small_network_trains_on_it():
    from nasplay.train.config import OptimConfig, TrainerConfig
    from nasplay.train.fit import fit

    dm = make_datamodule(DataConfig(name="clutter", limit=256, **SMALL))
    out = fit("lenet5", dm, TrainerConfig(accelerator="cpu", max_epochs=1, limit_train_batches=4), OptimConfig(), seed=0)
    assert out["steps"] == 4 and np.isfinite(out["train/loss"]) and 0 <= out["test/acc"] <= 1


@pytest.mark.slow
def test_the_command_trains_lenet5_on_clutter(tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    r = subprocess.run([sys.executable, "-m", "nasplay", "data=clutter", "arch=lenet5", "debug=smoke", "logger=none",
                        f"runs_dir={tmp_path}"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 complete" in r.stdout and "lenet5" in r.stdout
    results = (tmp_path / "lenet5" / "lenet5-smoke" / "results.csv").read_text()
    assert "COMPLETE" in results
