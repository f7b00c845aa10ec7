"""Complexity of a genome: parameters, FLOPs, depth and layer counts, from one place.

Params and FLOPs come from building the network on the ``meta`` device (no memory, no compute) and
counting with ``torch.utils.flop_counter.FlopCounterMode`` (one image, eval mode; a multiply-add counts
2), so they are by construction what the real module has. Depth and layer counts come from the genome.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache

from nasplay.space.genome import Block, Branch, Conv, Genome, Linear, Norm, Op, Pool, Subsample
from nasplay.space.validate import conv_piece_count, walk


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


def _op_layers(op: Op, counts: Counter) -> int:
    """Add ``op``'s layers to ``counts``; return the weighted layers it puts on the path."""
    if isinstance(op, Conv):
        n = conv_piece_count(op)
        finished = 1 if op.separable else n  # pieces that get the norm and the activation
        counts["conv"] += n
        counts["norm"] += finished * (op.norm != "none")
        counts["act"] += finished * (op.act != "none")
        return n
    if isinstance(op, Linear):
        counts["linear"] += 1
        counts["act"] += op.act != "none"
        return 1
    if isinstance(op, Pool):
        counts["pool"] += 1
    elif isinstance(op, Norm):
        counts["norm"] += 1
    elif isinstance(op, Subsample):
        counts["subsample"] += 1
        counts["act"] += op.act != "none"
    else:
        counts[op.op] += 1
    return 0


def _ops(ops: tuple[Op, ...], counts: Counter) -> int:
    return sum(_op_layers(op, counts) for op in ops)


def _branch(br: Branch, counts: Counter) -> int:
    d = _ops(br.ops, counts)
    if br.split:
        d += max(_branch(b, counts) for b in br.split)
    return d


def _block(b: Block, counts: Counter) -> int:
    c: Counter = Counter()
    d = max(_branch(br, c) for br in b.branches) + _ops(b.merge, c)
    if b.skip == "projection":
        c["conv"] += 1
        c["norm"] += b.skip_norm == "batch"
        d = max(d, 1)
    d += _ops(b.post, c)
    for k, v in c.items():
        counts[k] += v * b.repeat
    return d * b.repeat


def depth(genome: Genome) -> int:
    """Weighted layers (conv pieces, linear layers, the classifier) on the longest path."""
    return _walk_counts(genome)[0]


def layer_counts(genome: Genome) -> dict[str, int]:
    """Layers by kind (``conv`` counts every real convolution, a separable one as two; aux heads excluded)."""
    return _walk_counts(genome)[1]


def _walk_counts(genome: Genome) -> tuple[int, dict[str, int]]:
    counts: Counter = Counter()
    d = sum(_block(b, counts) for b in genome.stem)
    d += sum(_block(b, counts) for st in genome.stages for b in st.blocks)
    d += _ops(genome.head.ops, counts) + 1
    counts["linear"] += 1  # the classifier (RBF units included)
    return d, {k: v for k, v in sorted(counts.items()) if v}
