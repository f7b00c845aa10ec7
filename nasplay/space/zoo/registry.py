"""The zoo's registry: names -> small pure generators of genomes (held in :data:`nasplay.space.registry.NETWORKS`).

A leaf, as timm's ``_registry.py``: it imports no network file. The families (``classic.py``, ``resnet.py`` ...)
register themselves with :func:`register` when the package :mod:`nasplay.space.zoo` imports them, which happens
before any name can be looked up here (importing this module imports its package first)."""

from __future__ import annotations

import difflib
import fnmatch
import sys
from collections.abc import Callable

from nasplay.space import registry
from nasplay.space.genome import Genome
from nasplay.space.registry import NETWORKS

Entry = registry.Network  # a registered network: its generator and where it comes from
_CACHE: dict[str, Genome] = {}


def register(name: str, *, year: int, paper: str, reference: str = "", canonical: bool = False):
    """Decorator: register ``fn() -> Genome`` under ``name`` (``nasplay.register``); a duplicate name raises ``ValueError``.

    ``year`` and ``paper`` place it in ``nasplay list`` (oldest first); ``reference`` is ``"torchvision:NAME"`` or
    ``"timm:NAME"`` where a reference implementation exists."""
    module = sys._getframe(1).f_globals.get("__name__", "")

    def deco(fn: Callable[[], Genome]) -> Callable[[], Genome]:
        old = NETWORKS.peek(name)
        if old is not None:
            raise ValueError(f"zoo name {name!r} is already registered (by {old.make.__qualname__} in {old.module})")
        NETWORKS.add(Entry(name, fn, year, paper, reference, canonical, builtin=module.startswith("nasplay."), module=module))
        return fn

    return deco


def entry(name: str) -> Entry:
    if name not in NETWORKS:
        # The references' own names count too: 'googlenet' should point to inception_v1.
        entries = NETWORKS.entries()
        known = {e.name: e.name for e in entries} | {e.reference.split(":")[-1]: e.name for e in entries if e.reference}
        close = list(dict.fromkeys(known[m] for m in difflib.get_close_matches(name, list(known), n=4, cutoff=0.5)))[:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown network {name!r}{hint} (nasplay list shows all {len(entries)})")
    return NETWORKS.get(name)


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
    order = NETWORKS.names()
    names = [e.name for e in NETWORKS.entries() if fnmatch.fnmatch(e.name, pattern)
             and (canonical is None or e.canonical == canonical)]
    return sorted(names, key=lambda n: (NETWORKS.get(n).year, order.index(n)))


CANONICAL = ("lenet5", "alexnet", "vgg16", "inception_v1", "inception_v3", "resnet50", "xception",
             "inception_v4", "inception_resnet_v2", "resnext50_32x4d")

