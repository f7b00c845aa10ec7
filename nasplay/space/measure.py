"""Depth and layer counts of a genome, read from the genome alone (params and FLOPs need a build:
:mod:`nasplay.complexity`)."""

from __future__ import annotations

from collections import Counter

from nasplay.space.genome import Block, Branch, Conv, Genome, Linear, Norm, Op, Pool, Subsample
from nasplay.space.shapes import conv_piece_count


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
