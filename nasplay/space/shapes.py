"""Shape inference of a genome, before anything is built: :func:`walk` is the one place that knows how each op
changes a tensor's shape (the builder, the knobs and the complexity code use it). It checks every field it reads
(:mod:`nasplay.space.checks`) as it goes, so a genome it walks can be built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from nasplay.space.checks import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_pair,
    check_tuple,
    fail,
    is_int,
    learns,
)
from nasplay.space.genome import (
    ACTIVATIONS,
    CONV_FACTORS,
    CONV_NORMS,
    HEAD_OUTPUTS,
    NORM_KINDS,
    POOL_KINDS,
    SE,
    SKIPS,
    Act,
    Aux,
    Block,
    Branch,
    Conv,
    Dropout,
    Genome,
    Head,
    Input,
    Linear,
    Norm,
    Op,
    Pool,
    Stage,
    Subsample,
    expanded_blocks,
    pair,
)

Shape = tuple[int, ...]  # (C, H, W) for a feature map, (F,) once flattened


@dataclass(frozen=True)
class ConvPiece:
    """One real convolution of a (possibly factorised / separable) :class:`Conv` op."""

    cin: int
    cout: int
    kernel: tuple[int, int]
    stride: int
    padding: tuple[int, int]
    groups: int
    bias: bool
    norm: bool  # the conv's norm (batch / layer) after this piece
    act: bool  # activation after this piece


def _spatial(path: str, size: int, what: str) -> int:
    if size < 1:
        fail(path, f"the feature map vanishes ({what}); use a larger input or the 'input' knob")
    return size


def _fits(path: str, size: int, k: int, s: int, p: int, out: int) -> int:
    return _spatial(path, out, f"kernel {k} with padding {p} and stride {s} does not fit a {size}-pixel map")


def conv_pieces(op: Conv, cin: int, path: str) -> list[ConvPiece]:
    """The real convolutions that ``op`` stands for, in order (validated)."""
    check_int(f"{path}.out", op.out)
    k = check_pair(f"{path}.kernel", op.kernel, 1)
    check_int(f"{path}.stride", op.stride)
    check_int(f"{path}.groups", op.groups)
    check_choice(f"{path}.factor", op.factor, CONV_FACTORS)
    check_choice(f"{path}.norm", op.norm, CONV_NORMS)
    check_choice(f"{path}.act", op.act, ACTIVATIONS)
    check_bool(f"{path}.bias", op.bias)
    check_bool(f"{path}.separable", op.separable)
    check_bool(f"{path}.depthwise", op.depthwise)
    pad = (k[0] // 2, k[1] // 2) if op.padding is None else check_pair(f"{path}.padding", op.padding, 0)
    norm, act = op.norm != "none", op.act != "none"
    mid = op.out if op.mid is None else op.mid
    if op.mid is not None:
        check_int(f"{path}.mid", op.mid)
        if op.factor == "none":
            fail(f"{path}.mid", "only a factorised conv (factor stacked / asymmetric / asymmetric_t) has a mid width")
    if op.table is not None:
        if op.separable or op.factor != "none" or op.groups != 1:
            fail(f"{path}.table", "a connection table needs a plain conv (separable false, factor none, groups 1)")
        if not isinstance(op.table, tuple) or len(op.table) != op.out:
            fail(f"{path}.table", f"needs one tuple of input maps per output map ({op.out}), got {op.table!r}")
        for i, row in enumerate(op.table):
            if not row or len(set(row)) != len(row) or not all(isinstance(j, int) and 0 <= j < cin for j in row):
                fail(f"{path}.table[{i}]", f"must list distinct input maps in 0..{cin - 1}, got {row!r}")
        return [ConvPiece(cin, op.out, k, op.stride, pad, 1, op.bias, norm, act)]
    if op.depthwise:
        if op.separable or op.groups != 1 or op.table is not None:
            fail(f"{path}.depthwise", "a depthwise conv has one group per channel: separable false, groups 1, no table")
        if op.out != cin or (op.factor != "none" and mid != cin):
            fail(f"{path}.out", f"a depthwise conv keeps its channels: out (and mid) must equal the input ({cin}), "
                  f"got {op.out}")
        g = cin
    else:
        g = op.groups
    if cin % g or op.out % g or (op.factor != "none" and mid % g):
        mids = f" and mid ({mid})" if op.factor != "none" else ""
        fail(f"{path}.groups", f"{g} must divide the input ({cin}), output ({op.out}){mids} channels")
    if op.separable:
        if op.factor != "none":
            fail(f"{path}.separable", "a separable conv cannot also be factorised (set factor none)")
        if g != 1:
            fail(f"{path}.groups", "a separable conv is depthwise + pointwise; groups must be 1")
        return [
            ConvPiece(cin, cin, k, op.stride, pad, cin, False, False, False),
            ConvPiece(cin, op.out, (1, 1), 1, (0, 0), 1, op.bias, norm, act),
        ]
    if op.factor == "none":
        return [ConvPiece(cin, op.out, k, op.stride, pad, g, op.bias, norm, act)]
    n = k[0]
    if k[0] != k[1] or n < 3 or n % 2 == 0:
        fail(f"{path}.kernel", f"factor {op.factor!r} needs a square odd kernel >= 3, got {op.kernel!r}")
    if pad not in ((n // 2, n // 2), (0, 0)):
        fail(f"{path}.padding", f"a factorised conv keeps the size (padding {n // 2}) or is valid (0), got {op.padding!r}")
    same = pad[0] > 0
    if op.factor == "stacked":
        steps = (n - 1) // 2
        widths = [cin] + [mid] * (steps - 1) + [op.out]
        p = (1, 1) if same else (0, 0)
        return [
            ConvPiece(widths[i], widths[i + 1], (3, 3), op.stride if i == steps - 1 else 1, p, g, op.bias, norm, act)
            for i in range(steps)
        ]
    first, second = ((1, n), (n, 1)) if op.factor == "asymmetric" else ((n, 1), (1, n))
    p1 = (first[0] // 2, first[1] // 2) if same else (0, 0)
    p2 = (second[0] // 2, second[1] // 2) if same else (0, 0)
    return [
        ConvPiece(cin, mid, first, 1, p1, g, op.bias, norm, act),
        ConvPiece(mid, op.out, second, op.stride, p2, g, op.bias, norm, act),
    ]


def conv_piece_count(op: Conv) -> int:
    """How many real convolutions a (valid) :class:`Conv` op builds."""
    if op.separable or op.factor.startswith("asymmetric"):
        return 2
    if op.factor == "stacked":
        return (pair(op.kernel)[0] - 1) // 2
    return 1


def conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def pool_out(size: int, k: int, s: int, p: int, ceil: bool) -> int:
    if not ceil:
        return (size + 2 * p - k) // s + 1
    out = math.ceil((size + 2 * p - k) / s) + 1
    if (out - 1) * s >= size + p:  # the last window must start inside the input (torch's rule)
        out -= 1
    return out


def op_shape(op: Op, shape: Shape, path: str, *, where: str = "body") -> Shape:
    """Validate ``op`` on an input of ``shape`` and return its output shape."""
    if isinstance(op, Conv):
        if len(shape) != 3:
            fail(path, "a conv needs a feature map, but the input was already flattened")
        c, h, w = shape
        for piece in conv_pieces(op, c, path):
            (kh, kw), (ph, pw), s = piece.kernel, piece.padding, piece.stride
            h = _fits(f"{path}.kernel", h, kh, s, ph, conv_out(h, kh, s, ph))
            w = _fits(f"{path}.kernel", w, kw, s, pw, conv_out(w, kw, s, pw))
        return (op.out, h, w)
    if isinstance(op, Pool):
        check_choice(f"{path}.kind", op.kind, POOL_KINDS)
        if len(shape) != 3:
            fail(path, "pooling needs a feature map, but the input was already flattened")
        c, h, w = shape
        if op.adaptive is not None:
            check_int(f"{path}.adaptive", op.adaptive)
            return (c, op.adaptive, op.adaptive)
        k = check_pair(f"{path}.kernel", op.kernel, 1)
        s = k[0] if op.stride is None else op.stride
        check_int(f"{path}.stride", s)
        check_int(f"{path}.padding", op.padding, 0)
        check_bool(f"{path}.ceil", op.ceil)
        check_bool(f"{path}.count_include_pad", op.count_include_pad)
        if op.padding * 2 > min(k):
            fail(f"{path}.padding", f"must be at most half the kernel ({min(k) // 2}), got {op.padding}")
        h = _fits(f"{path}.kernel", h, k[0], s, op.padding, pool_out(h, k[0], s, op.padding, op.ceil))
        w = _fits(f"{path}.kernel", w, k[1], s, op.padding, pool_out(w, k[1], s, op.padding, op.ceil))
        return (c, h, w)
    if isinstance(op, Act):
        check_choice(f"{path}.fn", op.fn, ACTIVATIONS)
        return shape
    if isinstance(op, Norm):
        check_choice(f"{path}.kind", op.kind, NORM_KINDS)
        if len(shape) != 3:
            fail(path, "normalisation needs a feature map")
        check_int(f"{path}.size", op.size)
        if op.kind == "lrn":
            check_number(f"{path}.alpha", op.alpha)
            check_number(f"{path}.beta", op.beta)
            check_number(f"{path}.k", op.k, strict=True)  # k > 0 keeps the denominator away from 0
        return shape
    if isinstance(op, Dropout):
        if not (isinstance(op.p, (int, float)) and 0 <= op.p < 1):
            fail(f"{path}.p", f"must be in [0, 1), got {op.p!r}")
        return shape
    if isinstance(op, Subsample):
        check_int(f"{path}.kernel", op.kernel)
        check_choice(f"{path}.act", op.act, ACTIVATIONS)
        if len(shape) != 3:
            fail(path, "subsampling needs a feature map")
        c, h, w = shape
        return (c, _fits(f"{path}.kernel", h, op.kernel, op.kernel, 0, h // op.kernel),
                _fits(f"{path}.kernel", w, op.kernel, op.kernel, 0, w // op.kernel))
    if isinstance(op, SE):
        check_int(f"{path}.squeeze", op.squeeze)
        check_choice(f"{path}.act", op.act, ACTIVATIONS)
        if len(shape) != 3:
            fail(path, "squeeze-and-excitation needs a feature map")
        return shape
    if isinstance(op, Linear):
        if where == "body":
            fail(path, "a linear layer belongs in the head or an aux head, not in a block")
        check_int(f"{path}.out", op.out)
        check_bool(f"{path}.bias", op.bias)
        check_choice(f"{path}.act", op.act, ACTIVATIONS)
        return (op.out,)
    fail(path, f"not an op: {op!r}")
    raise AssertionError  # unreachable


def ops_shape(ops: tuple[Op, ...], shape: Shape, path: str, *, where: str = "body",
              visit: Callable[[Op, Shape, str], None] | None = None) -> Shape:
    if not isinstance(ops, tuple):
        fail(path, f"must be a tuple of ops, got {type(ops).__name__}")
    for i, op in enumerate(ops):
        p = f"{path}[{i}]"
        if visit is not None:
            visit(op, shape, p)
        shape = op_shape(op, shape, p, where=where)
    return shape


def branch_shape(br: Branch, shape: Shape, path: str, visit=None) -> Shape:
    if not isinstance(br, Branch):
        fail(path, f"expected a Branch, got {type(br).__name__}")
    check_tuple(f"{path}.split", br.split, "Branches")
    shape = ops_shape(br.ops, shape, f"{path}.ops", visit=visit)
    if br.split:
        outs = [branch_shape(b, shape, f"{path}.split[{i}]", visit) for i, b in enumerate(br.split)]
        shape = _concat(outs, f"{path}.split")
    return shape


def _concat(outs: list[Shape], path: str) -> Shape:
    hw = {o[1:] for o in outs}
    if len(hw) != 1:
        fail(path, f"parallel branches must end at the same spatial size to be concatenated, got {[o[1:] for o in outs]}")
    return (sum(o[0] for o in outs), *outs[0][1:])


def shortcut_stride(shape_in: Shape, shape_out: Shape, path: str) -> int:
    """The stride of a 1 x 1 projection that maps ``shape_in``'s grid onto ``shape_out``'s."""
    s = -(-shape_in[1] // shape_out[1])
    if (shape_in[1] - 1) // s + 1 != shape_out[1] or (shape_in[2] - 1) // s + 1 != shape_out[2]:
        fail(f"{path}.skip", f"no strided 1x1 projection maps {shape_in[1:]} to {shape_out[1:]}")
    return s


def block_shape(b: Block, shape: Shape, path: str, visit=None) -> Shape:
    return block_shapes(b, shape, path, visit)[-1]


def block_shapes(b: Block, shape: Shape, path: str, visit=None) -> list[Shape]:
    """The output shape of each of ``b``'s ``repeat`` copies (they differ when the block reduces)."""
    if not isinstance(b, Block):
        fail(path, f"expected a Block, got {type(b).__name__}")
    check_int(f"{path}.repeat", b.repeat)
    check_choice(f"{path}.skip", b.skip, SKIPS)
    check_choice(f"{path}.skip_norm", b.skip_norm, CONV_NORMS)
    check_number(f"{path}.scale", b.scale)
    check_number(f"{path}.drop_path", b.drop_path)
    check_number(f"{path}.drop_path_step", b.drop_path_step)
    last = b.drop_path + b.drop_path_step * (b.repeat - 1)
    if b.drop_path >= 1 or last >= 1:
        fail(f"{path}.drop_path", f"rates must stay below 1; its copies go from {b.drop_path:g} to {last:g}")
    if b.layer_scale is not None:  # like drop_path, it acts on an added residual only (inert otherwise)
        check_number(f"{path}.layer_scale", b.layer_scale, strict=True)
    check_tuple(f"{path}.branches", b.branches, "Branches")
    if not b.branches:
        fail(f"{path}.branches", "a block needs at least one branch")
    out = []
    for _ in range(b.repeat):
        shape_in = shape
        outs = [branch_shape(br, shape, f"{path}.branches[{i}]", visit) for i, br in enumerate(b.branches)]
        shape = _concat(outs, f"{path}.branches")
        shape = ops_shape(b.merge, shape, f"{path}.merge", visit=visit)
        if b.skip in ("identity", "scaled") and shape != shape_in:
            fail(f"{path}.skip", f"{b.skip!r} adds the input {shape_in} to the residual {shape}: shapes differ; "
                  "use 'projection' (or the skip knob, which picks it where needed)")
        if b.skip == "projection":
            shortcut_stride(shape_in, shape, path)
        if b.skip == "dense":
            if shape[1:] != shape_in[1:] or len(shape) != 3:
                fail(f"{path}.skip", f"'dense' concatenates the input {shape_in} with the output {shape}: the maps "
                      "must keep their size")
            shape = (shape_in[0] + shape[0], *shape[1:])
        shape = ops_shape(b.post, shape, f"{path}.post", visit=visit)
        out.append(shape)
    return out


@dataclass(frozen=True)
class Shapes:
    """Shapes inferred for a genome: what each stage's blocks output, and the head's input."""

    input: Shape
    stem: Shape
    blocks: tuple[tuple[Shape, ...], ...]  # per stage, per expanded block
    head_in: Shape
    logits: int


def walk(genome: Genome, num_classes: int | None = None, visit: Callable[[Op, Shape, str], None] | None = None) -> Shapes:
    """Validate ``genome`` and infer its shapes; ``visit(op, in_shape, path)`` sees every op in order."""
    if not isinstance(genome, Genome):
        raise ValueError(f"genome: expected a Genome, got {type(genome).__name__}")
    num_classes = genome.classes if num_classes is None else num_classes
    check_int("num_classes", num_classes)
    for name, cls in (("input", Input), ("head", Head)):
        if not isinstance(getattr(genome, name), cls):
            fail(name, f"expected {cls.__name__}, got {type(getattr(genome, name)).__name__}")
    for name in ("stem", "stages", "aux"):
        check_tuple(name, getattr(genome, name), {"stem": "Blocks", "stages": "Stages", "aux": "Aux heads"}[name])
    check_int("input.channels", genome.input.channels)
    check_int("input.size", genome.input.size)
    for eps in ("bn_eps", "ln_eps"):
        if not (isinstance(getattr(genome, eps), float) and getattr(genome, eps) > 0):
            fail(eps, f"must be a positive float, got {getattr(genome, eps)!r}")
    shape: Shape = (genome.input.channels, genome.input.size, genome.input.size)
    inp = shape
    for i, b in enumerate(genome.stem):
        shape = block_shape(b, shape, f"stem[{i}]", visit)
    stem = shape
    if not genome.stages:
        fail("stages", "a network needs at least one stage")
    per_stage = []
    for si, st in enumerate(genome.stages):
        if not isinstance(st, Stage):
            fail(f"stages[{si}]", f"expected a Stage, got {type(st).__name__}")
        check_tuple(f"stages[{si}].blocks", st.blocks, "Blocks")
        if not st.blocks:
            fail(f"stages[{si}].blocks", "a stage needs at least one block")
        outs = []
        for bi, b in enumerate(st.blocks):
            p = f"stages[{si}].blocks[{bi}]"
            shapes = block_shapes(b, shape, p, visit)
            outs.extend(shapes)
            shape = shapes[-1]
        per_stage.append(tuple(outs))
    check_choice("head.output", genome.head.output, HEAD_OUTPUTS)
    head_in = shape
    shape = ops_shape(genome.head.ops, shape, "head.ops", where="head", visit=visit)
    for ai, a in enumerate(genome.aux):
        p = f"aux[{ai}]"
        if not isinstance(a, Aux):
            fail(p, f"expected an Aux head, got {type(a).__name__}")
        check_number(f"{p}.weight", a.weight)
        if not (is_int(a.stage) and -len(genome.stages) <= a.stage < len(genome.stages)):
            fail(f"{p}.stage", f"must index one of the {len(genome.stages)} stages, got {a.stage!r}")
        n = len(per_stage[a.stage])
        if not (is_int(a.block) and -n <= a.block < n):
            fail(f"{p}.block", f"must index one of the {n} blocks of stage {a.stage}, got {a.block!r}")
        ops_shape(a.ops, per_stage[a.stage][a.block], f"{p}.ops", where="head", visit=visit)
    if not learns(genome):
        fail("head.output", "rbf (fixed units) with no trainable parameter on the path to it (no conv, linear layer, "
                             "batch norm, trainable subsampling or projection shortcut): the network cannot learn; add a "
                             "layer with weights or use head.output=linear")
    return Shapes(inp, stem, tuple(per_stage), head_in, num_classes)


def expanded(genome: Genome) -> list[list[Block]]:
    return [expanded_blocks(s) for s in genome.stages]
