"""Knobs for the ideas of the decade after the ten: se, dense, expand, drop_path, layer_scale, stem, and
``norm=layer`` (in ops.py's norm knob's company). Each works on any network where it means something and
refuses, naming the knob, the value and why, where it does not."""

from __future__ import annotations

from dataclasses import replace

from nasplay.space.genome import ADD_SKIPS, SE, Block, Branch, Conv, Genome, Op, pair
from nasplay.space.knobs.tree import map_blocks, map_ops, reduces, refuse, uses_bn
from nasplay.space.knobs.wiring import _rewire, _with_convs, bottleneck_ops
from nasplay.space.shapes import Shape, block_shape, walk

SE_RATIO = 16  # Hu et al. 2017: the squeeze is 1/16 of the channels (rounded to 8, as timm's SE-ResNets)
STEMS = ("patchify",)


def _stage_blocks(g: Genome) -> list[Block]:
    return [b for st in g.stages for b in st.blocks]


def _divisible(v: float, divisor: int = 8) -> int:
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


def _has_se(g: Genome) -> bool:
    return any(isinstance(op, SE) for b in _stage_blocks(g) + list(g.stem) for br in b.branches for op in br.ops)


# --- se -------------------------------------------------------------------------------------------------
def se(g: Genome, value: str) -> Genome:
    """on: squeeze-and-excitation after the last conv of every residual stage block (single path), squeezing to
    1/16 of its channels (rounded to 8), as SE-ResNet; off: no SE anywhere."""
    if value == "off":
        if not _has_se(g):
            raise refuse("se", value, g, "it has no squeeze-and-excitation to remove", "on | off")
        strip = lambda op, s: None if isinstance(op, SE) else op  # noqa: E731
        return map_ops(g, strip)
    if _has_se(g):
        return g
    added = 0

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block:
        nonlocal added
        if where != "stage" or b.skip not in ADD_SKIPS or len(b.branches) != 1 or b.branches[0].split:
            return b
        ops = b.branches[0].ops
        if not ops or not isinstance(ops[-1], Conv):
            return b
        added += 1
        squeeze = _divisible(ops[-1].out / SE_RATIO)  # type: ignore[union-attr]
        return replace(b, branches=(replace(b.branches[0], ops=ops + (SE(squeeze),)),))

    out = map_blocks(g, fn, stem=False)
    if not added:
        raise refuse("se", value, g, "it has no single-path residual blocks ending in a conv for channel attention to "
                     "gate", "on | off")
    return out


# --- dense ----------------------------------------------------------------------------------------------
def dense(g: Genome, value: str) -> Genome:
    """off: dense blocks lose their concatenating skip (each layer reads only the one before); on: residual
    blocks that keep their grid concatenate their input instead of adding it (DenseNet's connectivity; blocks
    that change the grid lose their shortcut), without layer scale or stochastic depth."""
    blocks = _stage_blocks(g)
    if value == "off":
        if not any(b.skip == "dense" for b in blocks):
            raise refuse("dense", value, g, "it has no dense (concatenating) blocks", "on | off")
        return map_blocks(g, lambda b, shape, path, where: replace(b, skip="none") if b.skip == "dense" else b)
    if any(b.skip == "dense" for b in blocks):
        return g
    if not any(b.skip in ADD_SKIPS for b in blocks):
        raise refuse("dense", value, g, "it has no residual blocks whose shortcut could concatenate instead of add",
                     "on | off")

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block:
        b = _fit_depthwise(b, shape)  # concatenations widen what later blocks read
        if b.skip not in ADD_SKIPS:
            return b
        plain = replace(b, skip="none", scale=1.0, layer_scale=None, drop_path=0.0, drop_path_step=0.0)
        out = block_shape(replace(plain, repeat=1), shape, path)
        if out[1:] != shape[1:]:
            return plain
        convs = [op for br in b.branches for op in br.ops if isinstance(op, Conv)]
        if convs and convs[0].depthwise:
            raise refuse("dense", value, g, f"{path} opens with a depthwise conv, which keeps the channels it reads, while "
                         "dense copies read more each time", "on | off")
        return replace(plain, skip="dense")

    return map_blocks(g, fn)


def _fit_depthwise(b: Block, shape: Shape) -> Block:
    """``b`` with each depthwise conv of a single path as wide as what it reads."""
    if len(b.branches) != 1 or b.branches[0].split:
        return b
    cin, ops = shape[0], []
    for op in b.branches[0].ops:
        if isinstance(op, Conv):
            if op.depthwise and op.out != cin:
                op = replace(op, out=cin)
            cin = op.out
        ops.append(op)
    return replace(b, branches=(replace(b.branches[0], ops=tuple(ops)),))


# --- expand ---------------------------------------------------------------------------------------------
def _inverted(ops: tuple[Op, ...]) -> tuple[int, int | None, int] | None:
    """Indices (expansion 1x1, depthwise k x k or None, projection 1x1) of an inverted bottleneck path: MobileNetV2's
    1x1 up, depthwise, [SE], 1x1 down, or ConvNeXt's depthwise, 1x1 up, 1x1 down."""
    idx = [i for i, op in enumerate(ops) if isinstance(op, Conv)]
    convs = [ops[i] for i in idx]
    if any(not isinstance(op, (Conv, SE)) for op in ops) or len(convs) != 3 or any(c.separable or c.factor != "none" for c in convs):  # type: ignore[union-attr]
        return None
    a, m, c = convs

    def pw(op: Conv) -> bool:
        return pair(op.kernel) == (1, 1) and op.groups == 1 and op.stride == 1

    def dw(op: Conv, width: int) -> bool:
        return op.depthwise and op.out == width and pair(op.kernel) != (1, 1)

    if pw(a) and dw(m, a.out) and pw(c) and a.out > c.out:  # type: ignore[arg-type]
        return idx[0], idx[1], idx[2]
    if dw(a, a.out) and pw(m) and pw(c) and m.out > c.out:  # type: ignore[arg-type]
        return idx[1], None, idx[2]
    return None


def _invert(b: Block, shape: Shape, ratio: float) -> tuple[Block, ...] | None:
    """A bottleneck block (1x1 reduce to w, k x k, 1x1 expand) inverted: in and out at w, ``ratio`` x w inside."""
    trio = bottleneck_ops(b) if ratio > 1 else None
    if trio is None:
        return None
    a, m, c = trio
    w = a.out
    hidden = _divisible(w * ratio)
    convs = (replace(a, out=hidden), replace(m, out=hidden), replace(c, out=w))
    inverted = replace(b, branches=(replace(b.branches[0], ops=_with_convs(b.branches[0].ops, convs)),))
    return _rewire(inverted, shape, "batch" if a.norm == "batch" else "none")


def expand(g: Genome, ratio: float) -> Genome:
    """The hidden width of every inverted bottleneck (MobileNetV2 / EfficientNet / ConvNeXt blocks that expand)
    becomes ``ratio`` x the block's input channels, rounded to 8 (the depthwise conv between follows); a ratio > 1
    inverts bottleneck blocks (1x1 reduce to w, k x k, 1x1 back to 4w): in and out at w, ``ratio`` x w inside,
    ConvNeXt's 'inverted bottleneck' step (shortcuts follow the shapes)."""
    changed = 0

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block | tuple[Block, ...]:
        nonlocal changed
        if len(b.branches) != 1 or b.branches[0].split or b.merge:
            return b
        ops = b.branches[0].ops
        found = _inverted(ops)
        if found is None:
            inverted = _invert(b, shape, ratio) if where == "stage" else None
            if inverted is not None:
                changed += 1
                return inverted
            return b
        up, dw, _ = found
        hidden = _divisible(shape[0] * ratio)
        new = list(ops)
        new[up] = replace(ops[up], out=hidden)  # type: ignore[type-var]
        if dw is not None:
            new[dw] = replace(ops[dw], out=hidden)  # type: ignore[type-var]
        changed += 1
        return replace(b, branches=(replace(b.branches[0], ops=tuple(new)),))

    out = map_blocks(g, fn, stem=False)
    if not changed:
        why = "it has no inverted bottlenecks (a 1x1 expansion around or after a depthwise conv, then a 1x1 projection)"
        if ratio > 1:
            why += " and no bottleneck blocks to invert"
        raise refuse("expand", ratio, g, why, "a number > 0")
    return out


# --- drop_path and layer_scale --------------------------------------------------------------------------
def drop_path(g: Genome, rate: float) -> Genome:
    """Stochastic depth: the k-th of the n residual stage blocks (added shortcut) drops its residual with
    probability ``rate`` x k / (n - 1) while training, from 0 at the first to ``rate`` at the last (the linear
    rule of Huang et al. 2016, as ConvNeXt schedules it); 0 turns it off."""
    n = sum(b.repeat for b in _stage_blocks(g) if b.skip in ADD_SKIPS)
    if not n:
        raise refuse("drop_path", rate, g, "it has no residual blocks (with an added shortcut) to drop", "a number in [0, 1)")
    k = 0

    def fn(b: Block, shape: Shape, path: str, where: str) -> Block:
        nonlocal k
        if where != "stage" or b.skip not in ADD_SKIPS:
            return b
        first = rate * k / (n - 1.0) if n > 1 else 0.0
        step = rate / (n - 1.0) if n > 1 and b.repeat > 1 else 0.0
        k += b.repeat
        return replace(b, drop_path=first, drop_path_step=step)

    return map_blocks(g, fn, stem=False)


def layer_scale(g: Genome, value: float | None) -> Genome:
    """A learned per-channel scale on every residual (added shortcut), initialised to ``value`` (ConvNeXt: 1e-6);
    off removes it."""
    if not any(b.skip in ADD_SKIPS for b in _stage_blocks(g)):
        raise refuse("layer_scale", value if value is not None else "off", g, "it has no residual blocks (with an added "
                     "shortcut) to scale", "a number > 0 or off")
    return map_blocks(g, lambda b, shape, path, where: replace(b, layer_scale=value) if b.skip in ADD_SKIPS else b,
                      stem=False)


# --- stem -----------------------------------------------------------------------------------------------
def stem(g: Genome, value: str) -> Genome:
    """patchify: the stem becomes one non-overlapping k x k conv at stride k (k its total stride: 4 for a ResNet)
    to the stem's output width, with bias, followed by the network's norm (LayerNorm or BatchNorm) and no
    activation, as ConvNeXt's (and ViT's) patch embedding."""
    if not g.stem:
        raise refuse("stem", value, g, "it has no stem", " | ".join(STEMS))
    shapes = walk(g)
    stride = shapes.input[1] // shapes.stem[1]
    if stride < 2 or shapes.input[1] % shapes.stem[1] or not any(reduces(op) for b in g.stem for br in b.branches
                                                                 for op in br.ops):
        raise refuse("stem", value, g, f"its stem does not downsample by a whole factor ({shapes.input[1]} -> "
                     f"{shapes.stem[1]} pixels)", " | ".join(STEMS))
    layer = any(isinstance(op, Conv) and op.norm == "layer" for b in _stage_blocks(g) for br in b.branches for op in br.ops)
    norm = "layer" if layer else "batch" if uses_bn(g) else "none"
    patch = Conv(shapes.stem[0], stride, stride, 0, bias=True, norm=norm)
    return replace(g, stem=(Block((Branch((patch,)),), name="Patchify"),))


