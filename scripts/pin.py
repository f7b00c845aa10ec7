"""Write constraints.txt: the exact version of every package nasplay needs, as installed in a virtual environment.

    .venv/bin/python scripts/pin.py            # rewrite constraints.txt from the packages this Python has installed
    .venv/bin/python scripts/pin.py --check    # exit 1 if constraints.txt is not what it would write

Run it with the Python of the environment the test suite passed in: it reads that environment's installed
distributions, starting from pyproject.toml's dependencies and the extras in ``EXTRAS``, and follows their
requirements (markers evaluated for this machine) to every package they pull in. ``pip install -c
constraints.txt -e .`` then installs those versions; pyproject.toml keeps ranges, so a plain ``pip install
nasplay`` still takes any supported version. Local version labels (``+cu130``) are dropped: ``torch==2.5.1``
accepts the CPU and the CUDA builds of 2.5.1 alike.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "constraints.txt"
# The extras the test suite installs (scripts/test.sh: dev, which holds slurm's launcher); the others are optional tools.
EXTRAS = ("dev", "slurm")
HEADER = """\
# The exact versions the test suite passed with (python {python}), for reproducible installs:
#     pip install -c constraints.txt -e .          (README)      pip install -c constraints.txt -e ".[dev]"  (scripts/test.sh)
# Written by scripts/pin.py from the virtual environment's installed packages: pyproject.toml's dependencies,
# the extras {extras}, and everything they require. Do not edit by hand; rerun `.venv/bin/python scripts/pin.py`
# after changing pyproject.toml or upgrading the environment (tests/test_packaging.py checks that the two agree).
"""


def declared(pyproject: Path = ROOT / "pyproject.toml") -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    """pyproject.toml's dependencies and its optional-dependencies by extra."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    extras = {name: [Requirement(r) for r in reqs] for name, reqs in project.get("optional-dependencies", {}).items()}
    return [Requirement(r) for r in project.get("dependencies", [])], extras


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Every installed distribution the ``roots`` require, transitively: canonical name -> version."""
    env = default_environment()
    pins: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    todo = [(r, "") for r in roots]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{req.name} (required as {req}) is not installed in {sys.prefix}: install nasplay's "
                             f"dependencies there first (pip install -e \".[{','.join(EXTRAS)}]\")") from None
        pins[name] = Version(dist.version).public
        for x in ["", *sorted(req.extras)]:
            if (name, x) in done:
                continue
            done.add((name, x))
            todo += [(Requirement(r), x) for r in dist.requires or []]
    return pins


def render(pins: dict[str, str]) -> str:
    python = ".".join(map(str, sys.version_info[:3]))
    return HEADER.format(python=python, extras=", ".join(EXTRAS)) + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))


def read(path: Path = OUT) -> dict[str, str]:
    """constraints.txt as canonical name -> version."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
            if m is None:
                raise ValueError(f"{path.name}: not a pin: {line!r}")
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/pin.py", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if constraints.txt differs from what this environment gives")
    a = p.parse_args(argv)
    deps, extras = declared()
    pins = closure([*deps, *(r for e in EXTRAS for r in extras[e])])
    pins.pop("nasplay", None)
    text = render(pins)
    if a.check:
        same = OUT.exists() and read(OUT) == pins
        print(f"{OUT.name} {'is current' if same else 'differs from this environment: run scripts/pin.py'}")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(pins)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
