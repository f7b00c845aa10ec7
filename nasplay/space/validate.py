"""Validation of a genome before anything is built: :func:`validate` raises a ``ValueError`` whose message starts
with the path of the bad field (``stages[2].blocks[0].branches[1].ops[0].groups``) and says what is allowed.

The rules are :mod:`nasplay.space.checks`; they are applied while :mod:`nasplay.space.shapes` infers every op's
shape, since most of them (a kernel that fits its map, groups that divide the channels) are about shapes.
"""

from __future__ import annotations

from nasplay.space.genome import ACTIVATIONS, CONV_NORMS, Genome
from nasplay.space.shapes import walk

__all__ = ["ACTIVATIONS", "CONV_NORMS", "validate"]  # live views of nasplay.space.registry, as genome.py has them


def validate(genome: Genome, num_classes: int | None = None) -> Genome:
    """Raise ``ValueError`` naming the bad field if ``genome`` cannot be built; return it otherwise."""
    walk(genome, num_classes)
    return genome

