"""A wheel (a non-editable install) carries conf/ and search_spaces/, and nasplay finds them there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_every_config_and_search_space(tmp_path):
    src = tmp_path / "src"  # build from a copy: an in-tree build would leave build/ and egg-info in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("nasplay", "conf", "search_spaces"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                          str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    (wheel,) = (tmp_path / "dist").glob("nasplay-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split("/data/share/nasplay/", 1)[1] for n in names if "/data/share/nasplay/" in n}
    ours = {str(p.relative_to(ROOT)) for d in ("conf", "search_spaces") for p in (ROOT / d).rglob("*") if p.is_file()}
    assert shipped == ours  # a new folder under conf/ needs its line in [tool.setuptools.data-files]
    assert "nasplay/__main__.py" in names and "nasplay/resources.py" in names


def test_installed_copy_is_found_when_the_source_tree_has_none(tmp_path, monkeypatch):
    import sysconfig

    from nasplay import resources

    monkeypatch.delenv("NASPLAY_CONF_DIR", raising=False)
    assert resources.project_dir("conf", "NASPLAY_CONF_DIR") == ROOT / "conf"  # a checkout uses its own
    monkeypatch.setenv("NASPLAY_CONF_DIR", str(tmp_path))
    assert resources.project_dir("conf", "NASPLAY_CONF_DIR") == tmp_path
    monkeypatch.delenv("NASPLAY_CONF_DIR")
    monkeypatch.setattr(resources, "SOURCE_ROOT", tmp_path / "site-packages")  # as in a wheel install
    installed = tmp_path / "prefix" / "share" / "nasplay" / "conf"
    installed.mkdir(parents=True)
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path / "prefix"))
    assert resources.project_dir("conf", "NASPLAY_CONF_DIR") == installed
