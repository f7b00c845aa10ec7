"""A wheel (a non-editable install) carries conf/ and search_spaces/, and nasplay finds them there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


def _pin_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("pin", ROOT / "scripts" / "pin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_constraints_pin_every_declared_dependency_inside_its_range():
    """constraints.txt (scripts/pin.py) and pyproject.toml agree: every dependency and every dependency of the extras
    the tests install is pinned, and no pin lies outside the range pyproject.toml declares."""
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    pin = _pin_module()
    pins = pin.read(ROOT / "constraints.txt")
    deps, extras = pin.declared()
    assert "dev" in pin.EXTRAS and set(pin.EXTRAS) <= set(extras)
    for req in [*deps, *(r for e in pin.EXTRAS for r in extras[e])]:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned in constraints.txt: run scripts/pin.py"
    for req in [*deps, *(r for rs in extras.values() for r in rs)]:  # an optional tool's pin must fit too
        name = canonicalize_name(req.name)
        if name in pins:
            assert req.specifier.contains(Version(pins[name]), prereleases=True), \
                f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {req}"
    assert "nasplay" not in pins and all(Version(v).local is None for v in pins.values())


def test_pinned_installs_are_what_readme_and_ci_run():
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/pip install -c constraints.txt -e . && .venv/bin/python -m nasplay experiment=ablate_skip" in readme
    assert 'pip install -q -c constraints.txt -e ".[dev]"' in (ROOT / "scripts" / "test.sh").read_text()


def test_pin_rejects_what_is_not_a_pin(tmp_path):
    pin = _pin_module()
    good = tmp_path / "ok.txt"
    good.write_text("# a comment\nTorch==2.5.1  # trailing\nhydra_core==1.3.2\n")
    assert pin.read(good) == {"torch": "2.5.1", "hydra-core": "1.3.2"}
    bad = tmp_path / "bad.txt"
    bad.write_text("torch>=2\n")
    with pytest.raises(ValueError, match="not a pin: 'torch>=2'"):
        pin.read(bad)
