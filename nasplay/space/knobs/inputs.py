"""The input knob: fit a network to another image size and channel count (ImageNet stems -> 28 / 32 px).

Below the native size the stem stops downsampling, as CIFAR ResNets do (ResNet's 7x7/2 conv + 3x3/2 max
pool becomes a 3x3/1 conv): strided stem convs run at stride 1 with at most a 3x3 kernel and padding that
keeps the size, and stem pools go (or, in parallel towers, become 3/1/1 pools so the towers still meet).
The stem keeps those of its first reductions that bring its output grid closest to the native one (32 px
keeps none; larger inputs may keep some). If the body still shrinks the map to nothing, its last
reductions go too, one at a time. An unpadded first conv is padded (LeNet-5 on 28 px MNIST), auxiliary
heads pool adaptively to the grid they were designed for, and a head's adaptive pool never asks for more
than the final map has. Inputs at least as large as the native one only change the input.
"""

from __future__ import annotations

import math
from dataclasses import replace

from nasplay.space.genome import Block, Conv, Genome, Input, Op, Pool, pair
from nasplay.space.knobs.tree import KnobError, Site, iter_ops, map_ops, op_shapes, reduces
from nasplay.space.shapes import block_shape, pool_out, walk


def _units(g: Genome, where: str) -> list[frozenset[str]]:
    """Reductions that go together: one op of a single-path block, or all of a multi-branch block's."""
    units: dict[str, set[str]] = {}
    for op, s in iter_ops(g, where=(where,)):
        if reduces(op):
            block = s.path.split(".branches")[0].split(".merge")[0].split(".post")[0]
            units.setdefault(block if s.multi else s.path, set()).add(s.path)
    return [frozenset(u) for u in units.values()]


def _dereduce(paths: set[str]):
    def fn(op: Op, s: Site) -> Op | None:
        if s.path not in paths:
            return op
        if isinstance(op, Conv):
            kh, kw = pair(op.kernel)
            kernel = op.kernel if max(kh, kw) <= 3 else (min(kh, 3), min(kw, 3)) if kh != kw else 3
            return replace(op, stride=1, kernel=kernel, padding=None)
        if s.multi:  # parallel towers must keep meeting at one grid size
            kind = op.kind if isinstance(op, Pool) else "avg"
            return Pool(kind, 3, 1, 1, count_include_pad=op.count_include_pad if isinstance(op, Pool) else True)
        return None

    return fn


def _empty(b: Block) -> bool:
    return (len(b.branches) == 1 and not b.branches[0].ops and not b.branches[0].split and not b.merge
            and not b.post and b.skip == "none")


def _drop_empty_blocks(g: Genome) -> Genome:
    """Blocks left with nothing to do (a lone pool that went) disappear; aux heads keep their blocks."""
    stages, aux = [], list(g.aux)
    for si, st in enumerate(g.stages):
        blocks: list[Block] = []
        gone: list[tuple[int, int]] = []  # (first expanded index, copies) of each dropped block
        index = 0
        for b in st.blocks:
            if _empty(b) and len(st.blocks) - len(gone) > 1:
                gone.append((index, b.repeat))
            else:
                blocks.append(b)
            index += b.repeat
        if gone:
            total, new_total = index, index - sum(r for _, r in gone)
            for ai, a in enumerate(aux):
                if a.stage % len(g.stages) != si:
                    continue
                e = a.block % total
                before = sum(r for i, r in gone if i + r <= e)
                inside = [i for i, r in gone if i <= e < i + r]
                e = max(inside[0] - before - 1, 0) if inside else e - before
                aux[ai] = replace(a, block=e if a.block >= 0 else e - new_total)
        stages.append(replace(st, blocks=tuple(blocks)))
    stem = tuple(b for b in g.stem if not _empty(b))
    return replace(g, stem=stem, stages=tuple(stages), aux=tuple(aux))


def _stem_grid(g: Genome) -> int:
    shape = (g.input.channels, g.input.size, g.input.size)
    for i, b in enumerate(g.stem):
        shape = block_shape(b, shape, f"stem[{i}]")
    return shape[1]


def _adaptive_aux(g: Genome) -> Genome:
    """Aux heads pool adaptively to the grid their pools give at the native size."""
    shapes = op_shapes(g)
    aux = []
    for ai, a in enumerate(g.aux):
        ops = []
        for i, op in enumerate(a.ops):
            if isinstance(op, Pool) and op.adaptive is None:
                _, h, _ = shapes[f"aux[{ai}].ops[{i}]"]
                kh = pair(op.kernel)[0]
                op = Pool(op.kind, adaptive=pool_out(h, kh, op.stride if op.stride is not None else kh, op.padding, op.ceil))
            ops.append(op)
        aux.append(replace(a, ops=tuple(ops)))
    return replace(g, aux=tuple(aux))


def _pad_first_conv(g: Genome) -> Genome:
    convs = [s.path for op, s in iter_ops(g, where=("stem", "stage")) if isinstance(op, Conv)]
    if not convs:
        return g

    def fn(op: Op, s: Site) -> Op:
        if s.path == convs[0] and isinstance(op, Conv) and op.stride == 1 and op.padding is not None and pair(op.padding) == (0, 0):
            return replace(op, padding=None)
        return op

    return map_ops(g, fn, where=("stem", "stage"))


def _fit_head(g: Genome) -> Genome:
    grid = walk(g).head_in
    if len(grid) != 3:
        return g
    ops = tuple(replace(op, adaptive=grid[1]) if isinstance(op, Pool) and op.adaptive is not None and op.adaptive > grid[1] else op
                for op in g.head.ops)
    return replace(g, head=replace(g.head, ops=ops))


def _valid(g: Genome) -> str:
    try:
        walk(g)
    except ValueError as e:
        return str(e)
    return ""


def adapt_input(g: Genome, channels: int | None, size: int) -> Genome:
    """``g`` fitted to ``channels`` x ``size`` x ``size`` images (see the module's docstring)."""
    inp = Input(channels or g.input.channels, size)
    native = g.input.size
    if size >= native:
        out = replace(g, input=inp)
        err = _valid(out)
        if err:
            raise KnobError(f"input={inp.channels}x{size} on {g.name}: {err}")
        return out
    native_stem = walk(g).stem[1]
    base = _adaptive_aux(g) if g.aux else g
    stem_units, body_units = _units(base, "stem"), _units(base, "stage")

    def make(stem_from: int, body_from: int) -> Genome:
        paths = set().union(*stem_units[stem_from:], *body_units[body_from:])
        out = replace(map_ops(base, _dereduce(paths), where=("stem", "stage")), input=inp)
        return _drop_empty_blocks(_pad_first_conv(out))

    # Keep the stem's first reductions that bring its output grid closest to the native one (in ratio),
    # so the body runs at the grids it was designed for; ties go to the larger grid.
    keep, best = 0, math.inf
    for j in range(len(stem_units) + 1):
        try:
            grid = _stem_grid(make(j, len(body_units)))
        except ValueError:
            continue
        gap = abs(math.log(grid / native_stem))
        if gap < best - 1e-9:
            keep, best = j, gap
    err = ""
    for k in range(len(body_units), -1, -1):
        cand = make(keep, k)
        err = _valid(cand)
        if not err:
            return _fit_head(cand)
    raise KnobError(f"input={inp.channels}x{size} on {g.name}: even without any downsampling the network does not fit: {err}")
