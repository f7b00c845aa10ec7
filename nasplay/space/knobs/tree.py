"""Rewriting genomes: map every op (knowing where it sits) or every block (knowing its input shape).

The knobs are pure rewrites built on these few walkers. Op paths are the ones :func:`shapes.walk`
reports (``stages[1].blocks[0].branches[2].ops[1]``), so a knob can look up the shape an op sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from nasplay.space.genome import Block, Branch, Conv, Genome, Op, Pool, Subsample, pair
from nasplay.space.shapes import Shape, block_shape, walk


class KnobError(ValueError):
    """A knob refused a value, or its result is not a valid genome."""


def refuse(knob: str, value: Any, genome: Genome, why: str, allowed: str) -> KnobError:
    """The error for a knob value that has no meaning on ``genome`` (raise what it returns)."""
    return KnobError(f"{knob}={show(value)!r} has no meaning on {genome.name}: {why} (allowed values of {knob}: {allowed})")


def show(value: Any) -> Any:
    """A knob value as users write it (``(3, 4, 6, 3)`` -> ``'3,4,6,3'``)."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return value


@dataclass(frozen=True)
class Site:
    """Where an op sits: ``where`` is stem / stage / head / aux, ``part`` is branch / merge / post / head,
    ``multi`` says whether its block has parallel branches (so the op's output is concatenated)."""

    path: str
    where: str
    part: str
    block: Block | None
    ops: tuple[Op, ...]
    index: int
    multi: bool = False


OpResult = Op | tuple[Op, ...] | None
OpFn = Callable[[Op, Site], OpResult]


def _map_list(ops: tuple[Op, ...], path: str, fn: OpFn, where: str, part: str, block: Block | None,
              multi: bool) -> tuple[Op, ...]:
    out: list[Op] = []
    for i, op in enumerate(ops):
        r = fn(op, Site(f"{path}[{i}]", where, part, block, ops, i, multi))
        if r is None:
            continue
        out.extend(r if isinstance(r, tuple) else (r,))
    return tuple(out)


def _map_branch(br: Branch, path: str, fn: OpFn, where: str, block: Block, multi: bool) -> Branch:
    ops = _map_list(br.ops, f"{path}.ops", fn, where, "branch", block, multi)
    split = tuple(_map_branch(b, f"{path}.split[{i}]", fn, where, block, True) for i, b in enumerate(br.split))
    return replace(br, ops=ops, split=split)


def map_block_ops(b: Block, path: str, fn: OpFn, where: str) -> Block:
    multi = len(b.branches) > 1
    return replace(
        b,
        branches=tuple(_map_branch(br, f"{path}.branches[{i}]", fn, where, b, multi) for i, br in enumerate(b.branches)),
        merge=_map_list(b.merge, f"{path}.merge", fn, where, "merge", b, False),
        post=_map_list(b.post, f"{path}.post", fn, where, "post", b, False),
    )


def map_ops(genome: Genome, fn: OpFn, *, where: tuple[str, ...] = ("stem", "stage", "head", "aux")) -> Genome:
    """Apply ``fn(op, site)`` to every op in the parts named by ``where``; it returns the op, a tuple of ops
    that replace it, or ``None`` to drop it."""
    stem = tuple(map_block_ops(b, f"stem[{i}]", fn, "stem") for i, b in enumerate(genome.stem)) if "stem" in where else genome.stem
    stages = genome.stages
    if "stage" in where:
        stages = tuple(
            replace(st, blocks=tuple(map_block_ops(b, f"stages[{si}].blocks[{bi}]", fn, "stage") for bi, b in enumerate(st.blocks)))
            for si, st in enumerate(genome.stages)
        )
    head = genome.head
    if "head" in where:
        head = replace(head, ops=_map_list(head.ops, "head.ops", fn, "head", "head", None, False))
    aux = genome.aux
    if "aux" in where:
        aux = tuple(replace(a, ops=_map_list(a.ops, f"aux[{i}].ops", fn, "aux", "head", None, False)) for i, a in enumerate(aux))
    return replace(genome, stem=stem, stages=stages, head=head, aux=aux)


def iter_ops(genome: Genome, *, where: tuple[str, ...] = ("stem", "stage", "head", "aux")) -> Iterator[tuple[Op, Site]]:
    """Every op with its site, in network order."""
    found: list[tuple[Op, Site]] = []

    def see(op: Op, site: Site) -> Op:
        found.append((op, site))
        return op

    map_ops(genome, see, where=where)
    return iter(found)


def op_shapes(genome: Genome) -> dict[str, Shape]:
    """The input shape of every op by path (the first copy's, for repeated blocks); validates ``genome``."""
    shapes: dict[str, Shape] = {}
    walk(genome, visit=lambda op, shape, path: shapes.setdefault(path, shape))
    return shapes


def uses_bn(g: Genome) -> bool:
    """Whether the network normalises its convs with BatchNorm (new layers follow suit)."""
    return any(isinstance(op, Conv) and op.norm == "batch" for op, _ in iter_ops(g))


def has_conv(b: Block) -> bool:
    return any(isinstance(op, Conv) for _, op in block_ops(b))


def block_ops(b: Block, path: str = "") -> list[tuple[str, Op]]:
    """``(path, op)`` of every op of a block (branches, their splits, merge, post), paths as the validator writes them."""
    found: list[tuple[str, Op]] = []
    map_block_ops(b, path, lambda op, site: found.append((site.path, op)) or op, "stage")
    return found


def iter_blocks(genome: Genome) -> Iterator[tuple[str, Block]]:
    """Every stem and stage block with its path, in network order."""
    for i, b in enumerate(genome.stem):
        yield f"stem[{i}]", b
    for si, st in enumerate(genome.stages):
        for bi, b in enumerate(st.blocks):
            yield f"stages[{si}].blocks[{bi}]", b


BlockFn = Callable[[Block, Shape, str, str], Block | tuple[Block, ...] | None]


def map_blocks(genome: Genome, fn: BlockFn, *, stem: bool = True) -> Genome:
    """Apply ``fn(block, input_shape, path, where)`` to every block in order, tracking shapes through the
    rewritten blocks; ``fn`` returns a block, several blocks, or ``None`` to drop it. Aux heads keep
    pointing at the same expanded blocks when a block is split (dropping blocks is not tracked)."""
    shape: Shape = (genome.input.channels, genome.input.size, genome.input.size)

    def run(blocks: tuple[Block, ...], prefix: str, where: str, enabled: bool) -> tuple[Block, ...]:
        nonlocal shape
        out: list[Block] = []
        for i, b in enumerate(blocks):
            path = f"{prefix}[{i}]"
            r = fn(b, shape, path, where) if enabled else b
            new = () if r is None else r if isinstance(r, tuple) else (r,)
            for nb in new:
                shape = block_shape(nb, shape, path)
                out.append(nb)
        return tuple(out)

    new_stem = run(genome.stem, "stem", "stem", stem)
    stages = []
    for si, st in enumerate(genome.stages):
        stages.append(replace(st, blocks=run(st.blocks, f"stages[{si}].blocks", "stage", True)))
    return replace(genome, stem=new_stem, stages=tuple(stages))


def block_out(b: Block, shape: Shape, path: str = "block") -> Shape:
    return block_shape(b, shape, path)








def downsampling_pool(op: Op) -> bool:
    """A pool that reduces the grid (not an adaptive one, not a stride-1 pool tower)."""
    if not isinstance(op, Pool) or op.adaptive is not None:
        return False
    stride = op.stride if op.stride is not None else pair(op.kernel)[0]
    return stride > 1


def reduces(op: Op) -> bool:
    """Whether ``op`` reduces the grid by a stride (strided conv, downsampling pool, subsampling)."""
    if isinstance(op, Conv):
        return op.stride > 1
    if isinstance(op, Subsample):
        return op.kernel > 1
    return downsampling_pool(op)


def lcm(*xs: int) -> int:
    out = 1
    for x in xs:
        out = out * x // math.gcd(out, x)
    return out


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))
