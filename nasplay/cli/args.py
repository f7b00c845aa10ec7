"""The arguments the commands share: a network (a zoo name or a genome file) and ``knob=value`` changes to it."""

from __future__ import annotations

from nasplay.complexity import measure
from nasplay.space.load import load_genome


def parse_knob_args(items: list[str]) -> dict[str, str]:
    """``["skip=none", "width=0.5"]`` -> ``{"skip": "none", "width": "0.5"}`` (values parsed by the knobs)."""
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"error: expected knob=value, got {it!r} (see 'nasplay describe --help')")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def genome_from_args(target: str, knob_args: list[str]):
    """:func:`nasplay.space.load.load_genome` with ``knob=value`` arguments from the command line."""
    return load_genome(target, parse_knob_args(knob_args), measure)
