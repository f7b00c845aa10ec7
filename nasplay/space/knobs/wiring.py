"""Knobs that rewire blocks: skip (+ skip_scale), depth, bottleneck, cardinality (+ group_width)."""

from __future__ import annotations

from dataclasses import replace

from nasplay.space.genome import ADD_SKIPS, SE, Aux, Block, Branch, Conv, Genome, Op, Subsample, pair
from nasplay.space.knobs.tree import (
    KnobError,
    block_out,
    downsampling_pool,
    has_conv,
    iter_ops,
    map_blocks,
    map_ops,
    refuse,
    round_half_up,
    show,
    uses_bn,
)
from nasplay.space.shapes import Shape, block_shape, shortcut_stride

SKIPS = ("none", *ADD_SKIPS)  # the skip knob's values: the genome's added shortcuts (dense is its own knob)
DEFAULT_SCALE = 0.2  # Inception-ResNet's residual scales are 0.1 - 0.3 (Szegedy et al. 2016, Sec. 3.3)


def _blocks(g: Genome) -> list[Block]:
    return list(g.stem) + [b for st in g.stages for b in st.blocks]



# --- skip -----------------------------------------------------------------------------------------
def _reachable(a: Shape, b: Shape) -> bool:
    try:
        shortcut_stride(a, b, "")
    except ValueError:
        return False
    return True


def _stride(b: Block) -> int:
    """The grid reduction of a block along its first path (the stride a projection must match)."""
    ops: list[Op] = []
    br = b.branches[0]
    while True:
        ops.extend(br.ops)
        if not br.split:
            break
        br = br.split[0]
    s = 1
    for op in (*ops, *b.merge, *b.post):
        if isinstance(op, Conv):
            s *= op.stride
        elif isinstance(op, Subsample):
            s *= op.kernel
        elif downsampling_pool(op):
            s *= op.stride or pair(op.kernel)[0]  # type: ignore[union-attr]
    return s


def wire(b: Block, shape: Shape, kind: str, scale: float | None, skip_norm: str, *, aligned: bool = False,
         split: bool = False) -> tuple[Block, ...] | None:
    """``b`` with a shortcut of ``kind`` (identity / scaled where its shapes allow, a projection where
    they differ, like ResNet's option B); a repeated block whose first copy changes the shape is split
    (with ``split``, any repeated block: a stage's first residual unit stands alone, as in torchvision).
    ``None`` when no strided 1 x 1 projection can map its input grid onto its output grid (with
    ``aligned``, also when that stride is not the block's own: unpadded convs shift the grid)."""
    plain = replace(b, skip="none", repeat=1, scale=1.0)
    out = block_out(plain, shape)
    later = block_out(plain, out) if b.repeat > 1 else out
    if not _reachable(shape, out) or (b.repeat > 1 and not _reachable(out, later)):
        return None
    if aligned and (shortcut_stride(shape, out, "") != _stride(b) or (b.repeat > 1 and later != out)):
        return None
    if kind == "scaled":
        scale = scale if scale is not None else b.scale if b.skip == "scaled" else DEFAULT_SCALE
    norm = b.skip_norm if b.skip == "projection" else skip_norm

    def wired(same: bool) -> Block:
        if kind == "projection" or not same:
            return replace(plain, skip="projection", skip_norm=norm)
        if kind == "scaled":
            return replace(plain, skip="scaled", scale=scale)
        return replace(plain, skip="identity")

    first, rest = wired(out == shape), wired(later == out)
    if b.repeat == 1:
        return (first,)
    if first == rest and not split:
        return (replace(first, repeat=b.repeat),)
    return (first, replace(rest, repeat=b.repeat - 1))


def _plain(g: Genome) -> Genome:
    """Every block without its shortcut; neighbours that the shortcut alone told apart merge back into
    one repeated block (undoing the split :func:`wire` makes)."""

    def unwire(blocks: tuple[Block, ...]) -> tuple[Block, ...]:
        out: list[Block] = []
        prev_had = False
        for b in blocks:
            had = b.skip != "none"
            nb = replace(b, skip="none", scale=1.0, skip_norm="batch", layer_scale=None, drop_path=0.0,
                         drop_path_step=0.0) if had else b
            if out and (had or prev_had) and replace(out[-1], repeat=1) == replace(nb, repeat=1):
                out[-1] = replace(out[-1], repeat=out[-1].repeat + nb.repeat)
            else:
                out.append(nb)
            prev_had = had
        return tuple(out)

    return replace(g, stem=unwire(g.stem), stages=tuple(replace(st, blocks=unwire(st.blocks)) for st in g.stages))


def skip(g: Genome, value: str | None, scale: float | None) -> Genome:
    """Residual wiring. On a network with residual blocks, their shortcuts become ``value``; on a plain
    network, identity / projection / scaled add a shortcut to every stage block with a conv whose grid a
    strided 1 x 1 projection can reach (stems never get one). ``skip_scale`` sets the residual scale."""
    allowed = " | ".join(SKIPS)
    blocks = _blocks(g)
    if value is None:
        if not any(b.skip == "scaled" for b in blocks):
            raise refuse("skip_scale", scale, g, "it has no scaled residual blocks; set skip=scaled too", "a number > 0")
        return map_blocks(g, lambda b, shape, path, where: replace(b, scale=scale) if b.skip == "scaled" else b)
    if scale is not None and value != "scaled":
        raise KnobError(f"skip_scale={scale!r} only goes with skip='scaled', not skip={value!r}")
    if value == "none":
        return _plain(g)
    residual = any(b.skip != "none" for b in blocks)
    skip_norm = "batch" if uses_bn(g) else "none"
    added = 0

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block | tuple[Block, ...]:
        nonlocal added
        if where == "stem" or (residual and b.skip == "none") or (not residual and not has_conv(b)):
            return b
        new = wire(b, shape, value, scale, skip_norm, aligned=not residual, split=not residual and path.endswith(".blocks[0]"))
        if new is None:
            if residual:
                raise KnobError(f"skip={value!r} on {g.name}: no strided 1x1 projection fits {path}")
            return b
        added += 1
        return new

    out = map_blocks(g, fn)
    if not added:
        raise refuse("skip", value, g, "no stage block keeps or evenly strides its grid (unpadded convs or "
                     "overlapping pools shrink every one), so no shortcut fits", allowed)
    return out


# --- depth ----------------------------------------------------------------------------------------
def _stage_plan(g: Genome) -> list[dict]:
    """Per stage: block count, the block that repeats (last conv block that maps its own output to the
    same shape), and the fewest blocks the stage can have."""
    shape: Shape = (g.input.channels, g.input.size, g.input.size)
    for i, b in enumerate(g.stem):
        shape = block_shape(b, shape, f"stem[{i}]")
    plans = []
    for si, st in enumerate(g.stages):
        rep, removable, count = None, False, 0
        for bi, b in enumerate(st.blocks):
            path = f"stages[{si}].blocks[{bi}]"
            out = block_shape(b, shape, path)
            if has_conv(b):
                count += b.repeat
                if b.skip == "dense":  # each copy reads all before it: one more always fits, and none is fine
                    rep, removable = bi, True
                elif _keeps(b, out):
                    rep, removable = bi, out == shape
            shape = out
        least = count if rep is None else count - st.blocks[rep].repeat + (0 if removable else 1)
        plans.append({"count": count, "rep": rep, "least": least, "name": st.name or str(si)})
    return plans


def _keeps(b: Block, shape: Shape) -> bool:
    """Whether one more copy of ``b`` fits after it (maps ``shape``, its output, to itself)."""
    try:
        return block_shape(replace(b, repeat=1), shape, "block") == shape
    except ValueError:
        return False


def _move_aux(aux: Aux, si: int, start: int, old: int, new: int, total_old: int, n_stages: int) -> Aux:
    """Keep an aux head on its block when the block at expanded index ``start`` goes from ``old`` to ``new``
    copies. Inside the block, an index counted from the start keeps its copy, one counted from the end
    (Inception-v3's -1) keeps its distance to the block's last copy; both stay on copies that are left."""
    if aux.stage % n_stages != si:
        return aux
    e = aux.block % total_old
    if e >= start + old:
        e += new - old
    elif e >= start:
        if new == 0:
            e = max(start - 1, 0)
        elif aux.block >= 0:
            e = min(e, start + new - 1)
        else:
            e = max(start + new - 1 - (start + old - 1 - e), start)
    total = total_old + new - old
    return replace(aux, block=e if aux.block >= 0 else e - total)


def depth(g: Genome, value: float | tuple[int, ...]) -> Genome:
    """A multiplier on every stage's block count, or one count per stage; the stage's repeatable block
    (the last conv block that maps its own output to the same shape) takes the difference."""
    allowed = "a multiplier > 0 or one block count per stage"
    plans = _stage_plan(g)
    counts = ",".join(str(p["count"]) for p in plans)
    if all(p["rep"] is None for p in plans):
        raise refuse("depth", value, g, "no stage has a block that can repeat (each one changes the shape it "
                     "receives)", allowed)
    if isinstance(value, tuple):
        if len(value) != len(plans):
            raise KnobError(f"depth={show(value)!r}: {g.name} has {len(plans)} stages, with {counts} blocks "
                            f"({', '.join(p['name'] for p in plans)}); give one count per stage")
        targets = list(value)
    else:
        targets = [p["count"] if p["rep"] is None else max(p["least"], round_half_up(p["count"] * value)) for p in plans]
        if value < 1 and all(p["count"] == p["least"] for p in plans if p["rep"] is not None):
            least = ",".join(str(p["least"]) for p in plans)
            raise refuse("depth", value, g, f"no stage can lose a block (it has {counts} blocks per stage, at least "
                         f"{least}: its repeating blocks change the shape they receive)", allowed)
    out = g
    for si, (p, t) in enumerate(zip(plans, targets)):
        if t == p["count"]:
            continue
        if p["rep"] is None:
            raise KnobError(f"depth={show(value)!r}: stage {p['name']} of {g.name} has no block that can repeat; "
                            f"it keeps {p['count']} blocks (now {counts})")
        if t < p["least"]:
            raise KnobError(f"depth={show(value)!r}: stage {p['name']} of {g.name} needs at least {p['least']} blocks "
                            f"(now {counts})")
        st = out.stages[si]
        rep = st.blocks[p["rep"]]
        new = rep.repeat + t - p["count"]
        start = sum(b.repeat for b in st.blocks[: p["rep"]])
        total = sum(b.repeat for b in st.blocks)
        blocks = list(st.blocks)
        if new:
            blocks[p["rep"]] = replace(rep, repeat=new)
        else:
            del blocks[p["rep"]]
        aux = tuple(_move_aux(a, si, start, rep.repeat, new, total, len(out.stages)) for a in out.aux)
        stages = list(out.stages)
        stages[si] = replace(st, blocks=tuple(blocks))
        out = replace(out, stages=tuple(stages), aux=aux)
    return out


# --- bottleneck -----------------------------------------------------------------------------------
def _plain_conv(op: Op) -> bool:
    return isinstance(op, Conv) and not op.separable and op.table is None


def _square(op: Conv) -> int:
    k = pair(op.kernel)
    return k[0] if k[0] == k[1] else 0


def _convs(ops: tuple[Op, ...]) -> tuple[Op, ...]:
    """A path's ops without its channel attention (SE gates a block; it does not make it another kind)."""
    return tuple(op for op in ops if not isinstance(op, SE))


def _with_convs(ops: tuple[Op, ...], convs: tuple[Op, ...]) -> tuple[Op, ...]:
    """``ops`` (convs and SE) with its convs replaced in order by ``convs``; an SE stays after the conv it followed
    (after the last one if it followed the last one, when the count of convs changes)."""
    old = _convs(ops)
    after: dict[int, list[Op]] = {}
    i = -1
    for op in ops:
        if isinstance(op, SE):
            j = len(convs) - 1 if i == len(old) - 1 else min(i, len(convs) - 1)
            after.setdefault(j, []).append(op)
        else:
            i += 1
    out = list(after.get(-1, []))
    for j, c in enumerate(convs):
        out.append(c)
        out.extend(after.get(j, []))
    return tuple(out)


def bottleneck_ops(b: Block) -> tuple[Conv, Conv, Conv] | None:
    """The three convs of a single-path bottleneck block (1x1 reduce, k x k at the same width, 1x1 expand; an SE
    between or after them is allowed)."""
    if len(b.branches) != 1 or b.branches[0].split or b.merge:
        return None
    ops = _convs(b.branches[0].ops)
    if len(ops) != 3 or not all(_plain_conv(op) for op in ops):
        return None
    a, m, c = ops  # type: ignore[misc]
    # a reduction (not MobileNetV2's inverted expansion) around a k x k conv that is not depthwise
    if (_square(a) == 1 and _square(c) == 1 and _square(m) >= 3 and a.out == m.out and c.stride == 1 and a.groups == 1
            and a.out <= c.out and not m.depthwise):
        return a, m, c
    return None


def _basic_ops(b: Block) -> tuple[Conv, Conv] | None:
    """The two convs of a single-path basic block (two k x k convs, k >= 3)."""
    if len(b.branches) != 1 or b.branches[0].split or b.merge:
        return None
    ops = _convs(b.branches[0].ops)
    if len(ops) != 2 or not all(_plain_conv(op) for op in ops):
        return None
    x, y = ops  # type: ignore[misc]
    if _square(x) >= 3 and _square(x) == _square(y) and x.factor == y.factor == "none":
        return x, y
    return None


def _reduce_1x1(op: Op) -> bool:
    return _plain_conv(op) and _square(op) == 1 and op.stride == 1 and op.groups == 1  # type: ignore[arg-type]


def _tower_reduces(b: Block) -> list[int]:
    """Branches of a multi-branch block that open with a 1x1 reduction before a larger conv or a split."""
    if len(b.branches) < 2:
        return []
    return [i for i, br in enumerate(b.branches)
            if br.ops and _reduce_1x1(br.ops[0]) and (br.split or any(isinstance(op, Conv) for op in br.ops[1:]))]


def _rewire(b: Block, shape: Shape, skip_norm: str) -> tuple[Block, ...]:
    if b.skip in ("identity", "projection"):
        return wire(b, shape, "identity", None, skip_norm) or (b,)
    return (b,)


def bottleneck(g: Genome, value: str) -> Genome:
    """off: bottleneck blocks (1x1, k x k, 1x1 x4) become basic pairs of k x k convs at the bottleneck width,
    and Inception towers lose the 1x1 reductions before their larger convs; on: basic blocks become
    bottlenecks (1x1 at the block's width, its k x k, 1x1 to 4x the width). Shortcuts follow the shapes."""
    skip_norm = "batch" if uses_bn(g) else "none"
    changed = 0

    def off(b: Block, shape: Shape, path: str, where: str) -> Block | tuple[Block, ...]:
        nonlocal changed
        trio = bottleneck_ops(b) if where == "stage" else None
        if trio:
            a, m, c = trio
            first = replace(m, stride=a.stride * m.stride, groups=1)
            second = replace(m, stride=1, groups=1, norm=c.norm, act=c.act, bias=c.bias)
            changed += 1
            ops = _with_convs(b.branches[0].ops, (first, second))
            return _rewire(replace(b, branches=(replace(b.branches[0], ops=ops),)), shape, skip_norm)
        drop = _tower_reduces(b)
        if drop:
            changed += 1
            branches = tuple(replace(br, ops=br.ops[1:]) if i in drop else br for i, br in enumerate(b.branches))
            return replace(b, branches=branches)
        return b

    def on(b: Block, shape: Shape, path: str, where: str) -> Block | tuple[Block, ...]:
        nonlocal changed
        pair_ = _basic_ops(b) if where == "stage" else None
        if not pair_:
            return b
        x, y = pair_
        w = y.out
        ops = (replace(x, kernel=1, stride=1, padding=None, out=w, groups=1), replace(x, out=w),
               replace(y, kernel=1, stride=1, padding=None, out=4 * w, groups=1))
        changed += 1
        return _rewire(replace(b, branches=(Branch(_with_convs(b.branches[0].ops, ops)),)), shape, skip_norm)

    out = map_blocks(g, off if value == "off" else on)
    if changed:
        return out
    if value == "on" and any(bottleneck_ops(b) or _tower_reduces(b) for b in _blocks(g)):
        return g  # already has its 1x1 reductions
    why = ("it has no 1x1 reductions (no bottleneck blocks, no Inception towers with 1x1 reduce convs)" if value == "off"
           else "it has neither basic residual blocks (two k x k convs) to turn into bottlenecks nor 1x1 reductions")
    raise refuse("bottleneck", value, g, why, "on | off")


# --- cardinality ----------------------------------------------------------------------------------
def grouping(g: Genome) -> tuple[int, int] | None:
    """(groups, channels per group) of the k x k conv of the first bottleneck block: ResNeXt's "C x d" (Table 3
    names its templates 1x64d ... 32x4d by the first stage's), or ``None`` without bottleneck blocks."""
    for b in _blocks(g):
        trio = bottleneck_ops(b)
        if trio:
            m = trio[1]
            return m.groups, m.out // m.groups
    return None


def cardinality(g: Genome, card: int | None, group_width: int | None) -> Genome:
    """Groups of the k x k conv of every bottleneck block (ResNeXt); ``group_width`` is the channels per
    group of the first bottleneck stage, later stages keep their ratio to it (as torchvision's
    width_per_group). Alone, ``cardinality`` keeps the width and ``group_width`` keeps the groups. On
    networks whose towers are grouped convs (the two-tower AlexNet), ``cardinality`` sets their groups."""
    knob, value = ("cardinality", card) if card is not None else ("group_width", group_width)
    trios = [(i, bottleneck_ops(b)) for i, b in enumerate(_blocks(g))]
    trios = [(i, t) for i, t in trios if t]
    if trios:
        base = grouping(g)[1]  # channels per group of the first bottleneck

        def fn(b: Block, shape: Shape, path: str, where: str) -> Block:
            trio = bottleneck_ops(b) if where == "stage" else None
            if not trio:
                return b
            a, m, c = trio
            groups = card if card is not None else m.groups
            if group_width is not None:
                width = groups * max(1, round_half_up(group_width * (m.out / m.groups) / base))
            else:
                width = m.out if m.out % groups == 0 else groups * max(1, round_half_up(m.out / groups))
            mid = m.mid if m.mid is None or m.mid % groups == 0 else groups * max(1, round_half_up(m.mid / groups))
            ops = _with_convs(b.branches[0].ops, (replace(a, out=width), replace(m, out=width, groups=groups, mid=mid), c))
            return replace(b, branches=(replace(b.branches[0], ops=ops),))

        return map_blocks(g, fn)
    # grouped convs as towers; a depthwise conv (a group per channel) is another idea, not cardinality
    grouped = [s.path for op, s in iter_ops(g) if _plain_conv(op) and 1 < op.groups < op.out]  # type: ignore[union-attr]
    if not grouped:
        hint = "; its basic blocks become bottlenecks with bottleneck=on" if any(
            _basic_ops(b) for st in g.stages for b in st.blocks) else ""
        raise refuse(knob, value, g, f"it has no bottleneck blocks (1x1, k x k, 1x1) and no grouped convs (towers){hint}",
                     "an integer >= 1")
    if group_width is not None:
        raise refuse("group_width", group_width, g, "channels per group are set on bottleneck blocks; its towers "
                     f"({', '.join(grouped)}) take cardinality alone", "an integer >= 1")
    return map_ops(g, lambda op, s: replace(op, groups=card) if s.path in grouped else op)
