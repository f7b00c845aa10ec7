"""The zoo's registry: names -> small pure generators of genomes.

A leaf, as timm's ``_registry.py``: it imports no network file. The families (``classic.py``, ``resnet.py`` ...)
register themselves with :func:`register` when the package :mod:`nasplay.space.zoo` imports them, which happens
before any name can be looked up here (importing this module imports its package first)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from nasplay.space.genome import Genome


@dataclass(frozen=True)
class Entry:
    """A registered network: its generator and where it comes from."""

    name: str
    make: Callable[[], Genome]
    year: int
    paper: str
    reference: str = ""  # "torchvision:NAME" or "timm:NAME" when a reference implementation exists
    canonical: bool = False  # one of the ten classic networks


_REGISTRY: dict[str, Entry] = {}
_CACHE: dict[str, Genome] = {}


def register(name: str, *, year: int, paper: str, reference: str = "", canonical: bool = False):
    """Decorator: register ``fn() -> Genome`` under ``name``; a duplicate name raises ``ValueError``."""

    def deco(fn: Callable[[], Genome]) -> Callable[[], Genome]:
        if name in _REGISTRY:
            raise ValueError(f"zoo name {name!r} is already registered (by {_REGISTRY[name].make.__qualname__})")
        _REGISTRY[name] = Entry(name, fn, year, paper, reference, canonical)
        return fn

    return deco


def entry(name: str) -> Entry:
    if name not in _REGISTRY:
        # The references' own names count too: 'googlenet' should point to inception_v1.
        known = {n: n for n in _REGISTRY} | {e.reference.split(":")[-1]: n for n, e in _REGISTRY.items() if e.reference}
        close = list(dict.fromkeys(known[m] for m in difflib.get_close_matches(name, list(known), n=4, cutoff=0.5)))[:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown network {name!r}{hint} (nasplay list shows all {len(_REGISTRY)})")
    return _REGISTRY[name]


def get_genome(name: str) -> Genome:
    """The named genome of the zoo; an unknown name raises ``ValueError`` with the closest names."""
    e = entry(name)
    if name not in _CACHE:
        g = e.make()
        if g.name != name:
            g = g.replace(name=name)
        _CACHE[name] = g
    return _CACHE[name]


def list_genomes(pattern: str = "*", *, canonical: bool | None = None) -> list[str]:
    """Registered names matching a glob, in the order of their papers."""
    names = [n for n, e in _REGISTRY.items() if fnmatch.fnmatch(n, pattern)]
    if canonical is not None:
        names = [n for n in names if _REGISTRY[n].canonical == canonical]
    return sorted(names, key=lambda n: (_REGISTRY[n].year, list(_REGISTRY).index(n)))


CANONICAL = ("lenet5", "alexnet", "vgg16", "inception_v1", "inception_v3", "resnet50", "xception",
             "inception_v4", "inception_resnet_v2", "resnext50_32x4d")

