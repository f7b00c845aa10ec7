"""Your own data (``data=imagefolder``): decoded once and held in memory, its size the images' own, conversions said,
a bad file named before any study exists, and a study trained on it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from nasplay.train import folder
from nasplay.train.config import DataConfig
from nasplay.train.data import ImageFolderDataModule, make_datamodule
from nasplay.train.loader import InMemoryLoader

ROOT = Path(__file__).resolve().parents[1]


def tree(root: Path, classes=("a", "b", "c"), per_class=10, size=(8, 8), mode="RGB", seed=0) -> Path:
    """``root/<class>/<i>.png``, random pixels; ``size`` is (width, height)."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = size
            if mode == "I;16":
                img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
            else:
                img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
            img.save(root / c / f"{i:02d}.png")
    return root


def folder_cfg(path: Path, **kw) -> DataConfig:
    return DataConfig(name="imagefolder", path=str(path), batch_size=8, **kw)


def test_a_small_folder_is_decoded_once_and_held_in_memory(tmp_path, monkeypatch):
    t = tree(tmp_path / "t", per_class=10, size=(8, 8))
    calls = []
    real = folder.decode
    monkeypatch.setattr(folder, "decode", lambda *a: calls.append(a[0]) or real(*a))
    dm = make_datamodule(folder_cfg(t))
    assert isinstance(dm, ImageFolderDataModule) and dm.in_memory
    assert (dm.channels, dm.size, dm.num_classes, dm.classes) == (3, 8, 3, ["a", "b", "c"])  # the images' own size
    assert calls == []  # making the module reads headers only
    dm.check()  # the check before a study decodes each file once ...
    assert sorted(calls) == sorted(str(p) for p in t.glob("*/*.png"))
    for d in (dm, make_datamodule(folder_cfg(t))):  # ... and what it decoded is what every module of the process trains on
        d.setup("fit")
        assert isinstance(d.train_dataloader(), InMemoryLoader)
    assert len(calls) == 30
    assert (dm.num_train, dm.num_val, dm.num_test) == (21, 3, 6)  # 20 % test, then 10 % of the rest, per class
    # the pixels as PIL decodes them, normalised with the training split's per-channel statistics
    splits = dm.splits()
    first = Image.open(dm.tree.all_files[int(dm._split_index()["test"][0])][0])
    raw = torch.from_numpy(np.asarray(first, dtype=np.float32).transpose(2, 0, 1) / 255)
    train = torch.from_numpy(folder.read_images(dm.tree, 3, 8, keep=True)[dm._split_index()["train"]]).float() / 255
    mean, std = train.mean(dim=(0, 2, 3)).view(3, 1, 1), train.std(dim=(0, 2, 3)).view(3, 1, 1)
    torch.testing.assert_close(splits["test"].x[0], (raw - mean) / std)
    assert "decoded once and held in memory" in dm.notes[0] and "30 images of 3 classes at 3x8x8" in dm.notes[0]
    assert len(dm.notes) == 1  # nothing resized or converted: nothing more said


def test_a_large_folder_streams_through_loader_workers(tmp_path, monkeypatch):
    t = tree(tmp_path / "t", per_class=4, size=(8, 8))
    monkeypatch.setattr(folder, "IN_MEMORY_LIMIT", 1000)  # 12 images of 3 x 8 x 8 floats: 9 kB, over the limit
    dm = make_datamodule(folder_cfg(t, num_workers=0, val_fraction=0.25, test_fraction=0.25))
    assert not dm.in_memory and "streamed from disk, 0 loader worker process(es)" in dm.notes[0]
    loader = dm.train_dataloader()
    assert isinstance(loader, torch.utils.data.DataLoader)
    x, y = next(iter(loader))
    assert x.shape == (6, 3, 8, 8) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]
    assert make_datamodule(folder_cfg(t, in_memory=True)).in_memory  # data.in_memory=true holds it anyway


def test_size_defaults_to_the_images_own_and_a_resize_is_said(tmp_path):
    same = tree(tmp_path / "same", per_class=2, size=(12, 12))
    assert make_datamodule(folder_cfg(same)).size == 12
    dm = make_datamodule(folder_cfg(same, size=6))
    assert dm.size == 6 and dm.notes[1] == "data: 6 of 6 images (12x12) resized (shorter side) and centre-cropped to 6x6 (data.size=6)"
    dm.setup("fit")
    assert dm.splits()["train"].x.shape[1:] == (3, 6, 6)
    wide = tree(tmp_path / "wide", per_class=2, size=(12, 8))  # one size, not square: the shorter side, cropped
    dm = make_datamodule(folder_cfg(wide))
    assert dm.size == 8 and "are 12x8: centre-cropped to 8x8" in dm.notes[1]
    mixed = tree(tmp_path / "mixed", classes=("a",), per_class=2, size=(12, 12))
    tree(mixed, classes=("b",), per_class=3, size=(20, 16))
    with pytest.raises(ValueError, match=r"data.size: the 5 images under .* are not all one size \(20x16 \(3\), 12x12 \(2\)\); "
                                         r"set data.size=S"):
        make_datamodule(folder_cfg(mixed))
    assert make_datamodule(folder_cfg(mixed, size=10)).size == 10


def test_conversions_are_said_and_16_bit_is_scaled(tmp_path):
    t = tree(tmp_path / "t", classes=("grey16",), per_class=2, mode="I;16")
    tree(t, classes=("rgba",), per_class=2, mode="RGBA")
    tree(t, classes=("palette",), per_class=2, mode="P")
    dm = make_datamodule(folder_cfg(t))
    assert dm.channels == 3  # not every image is greyscale
    line = dm.notes[-1]
    assert line.startswith("data: converted images to 8-bit RGB: ")
    for said in ("2 16-bit greyscale scaled to 8 bits (x 255/65535)", "2 alpha channel dropped (not composited)",
                 "2 palette to RGB", "2 greyscale repeated to 3 channels"):
        assert said in line
    assert len([n for n in dm.notes if "converted" in n]) == 1  # one line
    grey = tree(tmp_path / "g", classes=("x", "y"), per_class=1, mode="I;16")
    assert make_datamodule(folder_cfg(grey)).channels == 1  # every image greyscale: one channel
    p = grey / "x" / "00.png"
    Image.fromarray(np.array([[0, 257], [32768, 65535]], dtype=np.uint16)).save(p)
    assert folder.decode(str(p), 1, 2)[0].tolist() == [[0, 1], [128, 255]]  # scaled, not clipped at 255


def _corrupt(t: Path) -> list[str]:
    good = (t / "a" / "00.png").read_bytes()
    (t / "a" / "03.png").write_bytes(good[: len(good) // 2])  # truncated: the header reads, the pixels do not
    (t / "b" / "05.png").write_bytes(b"not a png at all")  # no header
    return ["a/03.png", "b/05.png"]


def test_every_bad_file_is_named_when_the_module_is_made_or_checked(tmp_path):
    t = tree(tmp_path / "t", per_class=6)
    (t / "a" / "03.png").write_bytes((t / "a" / "00.png").read_bytes()[:60])
    dm = make_datamodule(folder_cfg(t))  # the header of a truncated file reads ...
    with pytest.raises(ValueError, match=r"data.path: 1 of 18 image file\(s\) under .* do not open or decode: a/03.png "
                                         r"\(OSError: .*truncated"):
        dm.check()  # ... decoding it does not
    _corrupt(t)
    with pytest.raises(ValueError) as e:  # a file without a header: every file is decoded, all the bad ones named
        make_datamodule(folder_cfg(t))
    assert "2 of 18 image file(s)" in str(e.value) and "a/03.png (OSError" in str(e.value)
    assert "b/05.png (UnidentifiedImageError" in str(e.value)


def command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NASPLAY_CONF_DIR": str(ROOT / "conf"), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nasplay", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_a_corrupt_file_stops_the_command_before_the_study_exists(tmp_path):
    t = tree(tmp_path / "t", per_class=6)
    bad = _corrupt(t)
    r = command("data=imagefolder", f"data.path={t}", "debug=smoke", "runs_dir=runs", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: data.path: 2 of 18 image file(s)") and all(b in line for b in bad)
    assert not (tmp_path / "runs").exists()  # no study, nothing to clean up


def test_smoke_study_on_a_folder(compose, tmp_path, one_thread):
    from nasplay.experiment import run_experiment

    t = tree(tmp_path / "t", per_class=10, size=(16, 16))
    cfg = compose("data=imagefolder", f"data.path={t}", "debug=smoke", "arch=lenet5_common", "logger=none",
                  f"runs_dir={tmp_path / 'runs'}")
    buf = io.StringIO()
    result = run_experiment(cfg, console=Console(file=buf, width=200))
    out = buf.getvalue()
    assert result.counts["COMPLETE"] == 1, out
    assert "30 images of 3 classes at 3x16x16; decoded once and held in memory" in out
    genome = next((result.study_dir / "genomes").glob("*.yaml")).read_text()
    assert "size: 16" in genome and "classes: 3" in genome  # the network takes the images as they are
