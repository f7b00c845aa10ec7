"""Complexity of a genome: parameters, FLOPs, depth and layer counts, from one place.

Params and FLOPs come from building the network on the ``meta`` device (no memory, no compute) and
counting with ``torch.utils.flop_counter.FlopCounterMode`` (one image, eval mode; a multiply-add counts
2), so they are by construction what the real module has. Depth and layer counts come from the genome.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from nasplay.space.genome import Genome
from nasplay.space.measure import depth, layer_counts
from nasplay.space.validate import walk


@dataclass(frozen=True)
class Complexity:
    params: int
    params_aux: int  # trainable parameters of the auxiliary heads (included in ``params``)
    flops: int
    depth: int  # weighted layers (conv / linear) on the longest input-to-logits path
    layers: dict[str, int]  # weighted and other layers by kind (aux heads excluded)
    input_size: int
    input_channels: int

    def to_dict(self) -> dict:
        return asdict(self)


def complexity(genome: Genome | str, input_size: int | None = None, num_classes: int | None = None) -> Complexity:
    """Params, FLOPs (one image, eval), depth and layer counts of ``genome`` at ``input_size``
    (default: the genome's own) with ``num_classes`` outputs (default: ``genome.classes``)."""
    if isinstance(genome, str):
        from nasplay.space.zoo import get_genome

        genome = get_genome(genome)
    if input_size is not None and input_size != genome.input.size:
        genome = genome.replace(input=genome.input.__class__(genome.input.channels, input_size))
    num_classes = genome.classes if num_classes is None else num_classes
    walk(genome, num_classes)  # before the cache: a bad genome may not even be hashable (lists for tuples)
    return _complexity(genome, num_classes)


@lru_cache(maxsize=256)
def _complexity(genome: Genome, num_classes: int) -> Complexity:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nasplay.nn.build import build

    with torch.device("meta"):
        net = build(genome, num_classes)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    params_aux = sum(p.numel() for p in net.aux.parameters() if p.requires_grad)
    net.eval()
    x = torch.empty(1, genome.input.channels, genome.input.size, genome.input.size, device="meta")
    with FlopCounterMode(display=False) as fc:
        net(x)
    return Complexity(params, params_aux, int(fc.get_total_flops()), depth(genome), layer_counts(genome),
                      genome.input.size, genome.input.channels)


def measure(genome: Genome, keep: str) -> int:
    """The compute ``keep`` holds: params without the auxiliary heads (they only train), or FLOPs, of the network
    exactly as ``genome`` describes it (its input and classes); what :func:`apply` gives ``keep`` to measure."""
    c = complexity(genome)
    return c.params - c.params_aux if keep == "params" else c.flops


def apply(genome: Genome | str, *, keep: str | None = None, tol: float = 0.02, **knobs: Any) -> Genome:
    """:func:`nasplay.space.knobs.apply` with ``keep`` measured by :func:`measure` (``nasplay.apply``)."""
    from nasplay.space.knobs import apply as apply_knobs

    return apply_knobs(genome, keep=keep, tol=tol, measure=measure, **knobs)
