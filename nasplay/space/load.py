"""A genome from what a user types: a zoo name or a YAML/JSON genome file, with knob values applied."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nasplay.space.genome import Genome
from nasplay.space.knobs import apply
from nasplay.space.knobs.hold import Measure
from nasplay.space.zoo import get_genome

GENOME_SUFFIXES = (".yaml", ".yml", ".json")


def is_genome_file(target: str) -> bool:
    """Whether ``target`` names a genome file (``.yaml``/``.yml``/``.json``) rather than a zoo network."""
    return isinstance(target, str) and Path(target).suffix in GENOME_SUFFIXES


def genome_label(target: str) -> str:
    """How a study names a network: a zoo name as it is, a genome file by its stem (``nets/my_net.yaml`` -> ``my_net``)."""
    return Path(target).stem if is_genome_file(target) else target


def load_genome(target: str, knobs: Mapping[str, Any] | None = None, measure: Measure | None = None) -> Genome:
    """A zoo name or a ``.yaml``/``.yml``/``.json`` genome file, with ``knobs`` (knob -> value) applied
    (``keep`` among them needs ``measure``, as :func:`nasplay.space.knobs.apply` says)."""
    p = Path(target)
    if is_genome_file(target):
        if not p.is_file():
            raise ValueError(f"{target}: no such genome file (a zoo name, or a .yaml/.yml/.json genome written by "
                             "Genome.to_yaml / to_json)")
        text = p.read_text()
        try:
            genome = Genome.from_json(text) if p.suffix == ".json" else Genome.from_yaml(text)
        except ValueError as e:
            raise ValueError(f"{target}: {e}") from None
        except Exception as e:  # noqa: BLE001 - a YAML / JSON syntax error: name the file
            raise ValueError(f"{target}: not a genome file ({type(e).__name__}: {e})") from None
    else:
        genome = get_genome(target)
    if knobs:
        genome = apply(genome, measure=measure, **dict(knobs))
    return genome
