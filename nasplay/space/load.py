"""A genome from what a user types: a zoo name or a YAML/JSON genome file, with knob values applied."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nasplay.space.genome import Genome
from nasplay.space.knobs import apply
from nasplay.space.knobs.hold import Measure
from nasplay.space.zoo import get_genome


def load_genome(target: str, knobs: Mapping[str, Any] | None = None, measure: Measure | None = None) -> Genome:
    """A zoo name or a ``.yaml``/``.yml``/``.json`` genome file, with ``knobs`` (knob -> value) applied
    (``keep`` among them needs ``measure``, as :func:`nasplay.space.knobs.apply` says)."""
    p = Path(target)
    if p.suffix in (".yaml", ".yml", ".json") and p.exists():
        text = p.read_text()
        genome = Genome.from_json(text) if p.suffix == ".json" else Genome.from_yaml(text)
    else:
        genome = get_genome(target)
    if knobs:
        genome = apply(genome, measure=measure, **dict(knobs))
    return genome
