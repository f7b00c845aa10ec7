"""Knobs for the block-level steps of ConvNeXt's roadmap (Liu et al. 2022, Sec. 2): depthwise (on, or moved to the
front of the block), kernel, block_acts, block_norms and downsample. Like every knob, each works on any network
where it means something (residual stage blocks, a network with strided residual blocks) and refuses elsewhere."""

from __future__ import annotations

from dataclasses import replace

from nasplay.space.genome import ADD_SKIPS, Act, Block, Branch, Conv, Genome, Head, Norm, Op, pair
from nasplay.space.knobs.heads import main_act
from nasplay.space.knobs.tree import downsampling_pool, iter_ops, map_blocks, refuse, uses_bn
from nasplay.space.shapes import Shape, block_shape

DEPTHWISE = ("off", "on", "first")
ONE_ALL = ("all", "one")
DOWNSAMPLE = ("block", "separate")


def _residual_path(b: Block, where: str) -> tuple[Op, ...] | None:
    """The ops of a single-path residual stage block (an added shortcut), or None."""
    if where != "stage" or b.skip not in ADD_SKIPS or len(b.branches) != 1 or b.branches[0].split or b.merge:
        return None
    return b.branches[0].ops


def _set_path(b: Block, ops: tuple[Op, ...]) -> Block:
    return replace(b, branches=(replace(b.branches[0], ops=tuple(ops)),))


def _spatial(op: Op) -> bool:
    return isinstance(op, Conv) and not op.separable and op.factor == "none" and op.table is None and pair(op.kernel) != (1, 1)


def _widths_in(ops: tuple[Op, ...], cin: int) -> list[int]:
    """The channels each op of a path reads."""
    out = []
    for op in ops:
        out.append(cin)
        if isinstance(op, Conv):
            cin = op.out
    return out


# --- depthwise ------------------------------------------------------------------------------------------
def depthwise(g: Genome, value: str) -> Genome:
    """on: the k x k conv of every residual block that keeps its width becomes depthwise (one group per channel,
    ResNeXt's cardinality at its limit, as ConvNeXt's 'ResNeXt-ify'); first: also moved to the front of the block,
    at the block's input width ('moving up the depthwise conv'); off: depthwise convs of residual blocks become
    full convs."""
    changed = 0

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block:
        nonlocal changed
        ops = _residual_path(b, where)
        if ops is None:
            return b
        reads = _widths_in(ops, shape[0])
        idx = [i for i, op in enumerate(ops) if _spatial(op) and reads[i] == op.out]  # type: ignore[union-attr]
        if len(idx) != 1:
            return b
        i = idx[0]
        k: Conv = ops[i]  # type: ignore[assignment]
        if value == "off":
            if not k.depthwise:
                return b
            changed += 1
            return _set_path(b, ops[:i] + (replace(k, depthwise=False),) + ops[i + 1:])
        changed += 1
        if value == "on" or i == 0:
            return _set_path(b, ops[:i] + (replace(k, depthwise=True, groups=1),) + ops[i + 1:])
        front = replace(k, out=shape[0], depthwise=True, groups=1)
        return _set_path(b, (front,) + ops[:i] + ops[i + 1:])

    out = map_blocks(g, fn, stem=False)
    if not changed:
        raise refuse("depthwise", value, g, "it has no residual blocks with one k x k conv that keeps its width",
                     " | ".join(DEPTHWISE))
    return out


# --- kernel ---------------------------------------------------------------------------------------------
def kernel(g: Genome, k: int) -> Genome:
    """The k x k convs (k > 1) of residual stage blocks become ``k`` x ``k``, padded to keep the size (ConvNeXt's 7)."""
    if k % 2 == 0:
        raise refuse("kernel", k, g, "an even kernel cannot keep the map's size", "an odd integer >= 1")
    changed = 0

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block:
        nonlocal changed
        ops = _residual_path(b, where)
        if ops is None or not any(_spatial(op) for op in ops):
            return b
        changed += 1
        return _set_path(b, tuple(replace(op, kernel=k, padding=None) if _spatial(op) else op for op in ops))

    out = map_blocks(g, fn, stem=False)
    if not changed:
        raise refuse("kernel", k, g, "it has no residual blocks with a k x k conv (k > 1)", "an odd integer >= 1")
    return out


# --- fewer activations and norms ------------------------------------------------------------------------
def block_acts(g: Genome, value: str) -> Genome:
    """one: a residual block keeps a single activation, the one after its widest conv (between the two 1x1 convs
    of an inverted bottleneck, as a Transformer's MLP), and none after the addition; all: every conv of the
    residual blocks gets the network's activation, and the addition is followed by it again."""
    act = main_act(g)
    changed = 0

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block:
        nonlocal changed
        ops = _residual_path(b, where)
        if ops is None or not any(isinstance(op, Conv) for op in ops):
            return b
        changed += 1
        if value == "all":
            new = tuple(replace(op, act=act) if isinstance(op, Conv) else op for op in ops)
            post = b.post if any(isinstance(op, Act) for op in b.post) else (Act(act),) + b.post
            return replace(_set_path(b, new), post=post)
        convs = [i for i, op in enumerate(ops) if isinstance(op, Conv)]
        widest = max(convs, key=lambda i: ops[i].out)  # type: ignore[union-attr]
        keep = ops[widest].act if ops[widest].act != "none" else act  # type: ignore[union-attr]
        new = tuple(replace(op, act=keep if i == widest else "none") if isinstance(op, Conv) else op
                    for i, op in enumerate(ops) if not isinstance(op, Act))
        return replace(_set_path(b, new), post=tuple(op for op in b.post if not isinstance(op, Act)))

    out = map_blocks(g, fn, stem=False)
    if not changed:
        raise refuse("block_acts", value, g, "it has no single-path residual blocks with convs", " | ".join(ONE_ALL))
    return out


def block_norms(g: Genome, value: str) -> Genome:
    """one: a residual block keeps the norm of its first conv only (before its 1x1 convs, as ConvNeXt's; the convs
    that lose theirs get a bias); all: every conv of the residual blocks gets the network's norm."""
    kind = "layer" if any(isinstance(op, Conv) and op.norm == "layer" for op, _ in iter_ops(g)) else "batch"
    if value == "all" and not uses_bn(g) and kind != "layer":
        raise refuse("block_norms", value, g, "it has no normalisation to give every conv", " | ".join(ONE_ALL))
    changed = 0

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block:
        nonlocal changed
        ops = _residual_path(b, where)
        if ops is None or not any(isinstance(op, Conv) for op in ops):
            return b
        convs = [i for i, op in enumerate(ops) if isinstance(op, Conv)]
        if value == "all":
            new = tuple(replace(op, norm=kind, bias=kind == "layer") if isinstance(op, Conv) and op.norm == "none" else op
                        for op in ops)
        else:
            first = ops[convs[0]]
            norm = first.norm if first.norm != "none" else kind  # type: ignore[union-attr]
            new = tuple(replace(op, norm=norm) if i == convs[0] else
                        replace(op, norm="none", bias=True) if isinstance(op, Conv) and op.norm != "none" else op
                        for i, op in enumerate(ops))
        changed += new != ops
        return _set_path(b, new)

    out = map_blocks(g, fn, stem=False)
    if not changed and not any(_residual_path(b, "stage") for st in g.stages for b in st.blocks):
        raise refuse("block_norms", value, g, "it has no single-path residual blocks with convs", " | ".join(ONE_ALL))
    return out


# --- separate downsampling layers ---------------------------------------------------------------------------
def _merge_equal(blocks: list[Block]) -> tuple[Block, ...]:
    out: list[Block] = []
    for b in blocks:
        if out and replace(out[-1], repeat=1) == replace(b, repeat=1):
            out[-1] = replace(out[-1], repeat=out[-1].repeat + b.repeat)
        else:
            out.append(b)
    return tuple(out)


def downsample(g: Genome, value: str) -> Genome:
    """separate: the stride and the width change of each stage's first residual block move into a layer of their
    own before it (the network's norm, then a non-overlapping s x s conv at stride s with bias, as ConvNeXt and
    Swin's patch merging), the block becomes an identity block like the others, and a norm follows the global
    pooling of the head (Liu et al. 2022: normalisation wherever the resolution changes); block: as it is."""
    blocks = [b for st in g.stages for b in st.blocks]
    if value == "block":
        if any(b.name == "Downsample" for b in blocks):
            raise refuse("downsample", value, g, "putting separate downsampling layers back into blocks is not "
                         "supported", " | ".join(DOWNSAMPLE))
        return g
    kind = "layer" if any(isinstance(op, Conv) and op.norm == "layer" for op, _ in iter_ops(g)) else \
        "batch" if uses_bn(g) else "none"
    changed = 0
    shape: Shape = (g.input.channels, g.input.size, g.input.size)
    for i, b in enumerate(g.stem):
        shape = block_shape(b, shape, f"stem[{i}]")
    stages = []
    for si, st in enumerate(g.stages):
        new: list[Block] = []
        for bi, b in enumerate(st.blocks):
            path = f"stages[{si}].blocks[{bi}]"
            out = block_shape(b, shape, path)
            first = replace(b, repeat=1)
            ops = _residual_path(first, "stage")
            first_out = block_shape(first, shape, path)
            if b.skip == "projection" and ops is not None:
                if any(downsampling_pool(op) for op in ops):
                    raise refuse("downsample", value, g, f"{path} downsamples by pooling inside its residual path; only "
                                 "strided convs move out into a layer of their own", " | ".join(DOWNSAMPLE))
                s = -(-shape[1] // first_out[1])
                d = first_out[0]
                norm = (Norm(kind),) if kind != "none" else ()
                if s > 1:
                    new.append(Block((Branch((*norm, Conv(d, s, s, 0, bias=True))),), name="Downsample"))
                elif first_out[0] != shape[0]:
                    new.append(Block((Branch((*norm, Conv(d, 1, bias=True))),), name="Downsample"))
                fixed = []
                for op in ops:
                    if isinstance(op, Conv):
                        op = replace(op, stride=1)
                        if not fixed and op.depthwise:  # a depthwise conv reads the block input
                            op = replace(op, out=d)
                    fixed.append(op)
                first = replace(_set_path(first, tuple(fixed)), skip="identity", skip_norm="batch")
                new.append(first)
                if b.repeat > 1:
                    new.append(replace(b, repeat=b.repeat - 1))
                changed += 1
            else:
                new.append(b)
            shape = out
        stages.append(replace(st, blocks=_merge_equal(new)))
    if not changed:
        if any(_residual_path(b, "stage") is not None for b in blocks):
            return g  # its residual blocks keep their shapes already: the changes happen outside them
        raise refuse("downsample", value, g, "it has no residual blocks with a projection shortcut (where the stride "
                     "or width changes) to separate", " | ".join(DOWNSAMPLE))
    head = g.head
    if kind != "none" and not any(isinstance(op, Norm) for op in head.ops):
        head = Head(head.ops + (Norm(kind),), head.output)
    return replace(g, stages=tuple(stages), head=head)
