"""Complexity of a genome (parameters, FLOPs, depth and layer counts, from one place), and the one door that
turns an arm into the genome that trains (:func:`resolve`).

Params and FLOPs come from building the network on the ``meta`` device (no memory, no compute) and
counting with ``torch.utils.flop_counter.FlopCounterMode`` (one image, eval mode; a multiply-add counts
2), so they are by construction what the real module has. Depth and layer counts come from the genome.
Holding compute (``keep``) is :mod:`nasplay.space.knobs.hold`'s, with :func:`measure` passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from nasplay.space.genome import Genome
from nasplay.space.knobs import apply as apply_knobs
from nasplay.space.knobs import hold
from nasplay.space.load import load_genome
from nasplay.space.measure import depth, layer_counts
from nasplay.space.shapes import walk
from nasplay.space.validate import validate
from nasplay.space.zoo import get_genome


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
        genome = get_genome(genome)
    if input_size is not None and input_size != genome.input.size:
        genome = genome.replace(input=genome.input.__class__(genome.input.channels, input_size))
    num_classes = genome.classes if num_classes is None else num_classes
    walk(genome, num_classes)  # before the cache: a bad genome may not even be hashable (lists for tuples)
    return _complexity(genome, num_classes)


@lru_cache(maxsize=256)
def _complexity(genome: Genome, num_classes: int) -> Complexity:
    # torch (and the builder, which imports it) load here, not at import: `nasplay --help` and the CLI stay fast
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
    return apply_knobs(genome, keep=keep, tol=tol, measure=measure, **knobs)


def resolve(arch: str | Genome, knobs: dict[str, Any], data_shape: tuple[int, int, int], *, keep: str | None = None,
            keep_by: str | None = None, reference: Genome | None = None, tol: float = 0.02,
            base: dict[str, Any] | None = None, where: str = "") -> Genome:
    """The genome an arm trains: the zoo network ``arch`` (a genome file's path, or a genome) with ``knobs``, fitted to the data's
    ``(channels, size, classes)``; the only place that turns an arm into a network (the plan, the trial, the
    conditional search, the reports and :func:`nasplay.train.fit.fit` call it).

    The classes are set first, so that ``keep`` measures every genome as it will train (a 10-class head,
    not the zoo's 1000). With ``keep``, the knobs an arm shares with ``base`` (``arch.knobs``: a smaller
    width or depth for a CPU budget) size the reference network first; the arm's own knobs then apply
    with its widths re-solved to that reference's FLOPs or params at the data's input. Knob values go
    through :func:`nasplay.space.knobs.apply`, whose ``ValueError`` names the knob and the allowed values. With
    a ``reference`` genome (another network: ``experiment.keep_to``), the widths are solved to its compute.
    With ``keep_by`` (an integer knob: ``group_width``) that knob is re-solved instead of every width.
    ``where`` prefixes an error's message (``arm 'skip=none': ...``).
    """
    channels, size, classes = data_shape
    prefix = f"{where}: " if where else ""
    try:
        g = (load_genome(arch) if isinstance(arch, str) else arch).replace(classes=classes)  # a zoo name or a genome file
        kw: dict[str, Any] = dict(knobs)
        shared = {k: v for k, v in kw.items() if keep is not None and base and k in base and base[k] == v and k != "input"}
        if shared:
            g = apply(g, **shared)
            kw = {k: v for k, v in kw.items() if k not in shared}
        if (g.input.channels, g.input.size) != (channels, size):
            kw.setdefault("input", f"{channels}x{size}")  # the input knob applies last, after the others
        if keep is not None and keep_by is not None:
            if reference is None:  # the base network as arch.knobs size it, at the data's input
                reference = apply(g, **{k: v for k, v in kw.items() if k == "input"})
            start = kw.get(keep_by)
            if start is None:
                start = hold.current_value(apply(g, **kw), keep_by)
            solved = hold.solve_knob(lambda v: apply(g, **{**kw, keep_by: v}), start, reference, keep, tol, measure,
                                     name=keep_by, label=g.name)
            return hold.check_groups(solved, keep)
        if keep is not None and reference is None:
            kw.update(keep=keep, tol=tol)
        if kw:
            g = apply(g, **kw)
        if keep is not None and reference is not None:
            g = validate(hold.solve_widths(g, reference, keep, tol, measure).replace(name=f"{g.name}+keep={keep}"))
        if keep is not None:
            hold.check_groups(g, keep)
    except ValueError as e:
        raise ValueError(f"{prefix}{e}") from None
    return g
