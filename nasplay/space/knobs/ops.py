"""Knobs that rewrite ops in place: factorize, separable, activation, norm, pool, pool_kind."""

from __future__ import annotations

from dataclasses import replace

from nasplay.space import registry
from nasplay.space.genome import POOL_KINDS, Act, Conv, Genome, Linear, Norm, Op, Pool, Subsample, pair
from nasplay.space.knobs.tree import Site, downsampling_pool, iter_ops, map_blocks, map_ops, op_shapes, refuse, uses_bn
from nasplay.space.shapes import pool_out

FACTORIZE = ("none", "stacked", "asymmetric")
# none, batch, lrn, layer and the norms plugins register for convs (a live view of the registry)
NORMS = registry.Names(registry.NORMS, ("none",), lambda e: e.conv or e.name == "lrn")
POOL_GEOMETRY = ("overlap", "nonoverlap")
BODY = ("stem", "stage")


# --- factorize ------------------------------------------------------------------------------------
def _factorable(op: Op, smallest: int) -> bool:
    """A full square odd n x n conv (n >= ``smallest``) that keeps its size or is valid."""
    if not isinstance(op, Conv) or op.separable or op.table is not None:
        return False
    k = pair(op.kernel)
    if k[0] != k[1] or k[0] % 2 == 0 or k[0] < smallest:
        return False
    pad = (k[0] // 2, k[0] // 2) if op.padding is None else pair(op.padding)
    return pad in ((k[0] // 2, k[0] // 2), (0, 0))


def factorize(g: Genome, value: str) -> Genome:
    """none: every factorised conv becomes one n x n conv; stacked: n x n (n >= 5) -> (n-1)/2 stacked 3 x 3;
    asymmetric: n x n (n >= 3) -> 1 x n then n x 1 (an existing n x 1 then 1 x n stays)."""
    if value == "none":
        return map_ops(g, lambda op, s: replace(op, factor="none", mid=None) if isinstance(op, Conv) and op.factor != "none" else op)
    smallest = 5 if value == "stacked" else 3
    if not any(_factorable(op, smallest) for op, _ in iter_ops(g)):
        raise refuse("factorize", value, g, f"it has no full square odd conv of {smallest}x{smallest} or larger "
                     "(padded to keep its size, or valid) to factorise", " | ".join(FACTORIZE))

    def fn(op: Op, s: Site) -> Op:
        if not _factorable(op, smallest):
            return op
        assert isinstance(op, Conv)
        if value == "stacked" or op.factor in ("none", "stacked"):
            return replace(op, factor=value)
        return op  # already asymmetric (either order)

    return map_ops(g, fn)


# --- separable ------------------------------------------------------------------------------------
def separable(g: Genome, value: str) -> Genome:
    """off: depthwise + pointwise -> one full conv; on: every full k x k conv after the stem (after the
    first conv where there is no stem) -> depthwise k x k + pointwise 1 x 1, as in Xception."""
    if value == "off":
        return map_ops(g, lambda op, s: replace(op, separable=False) if isinstance(op, Conv) and op.separable else op)
    convs = [(op, s) for op, s in iter_ops(g, where=BODY) if isinstance(op, Conv)]
    first = convs[0][1].path if convs else ""

    def eligible(op: Op, s: Site) -> bool:
        return (isinstance(op, Conv) and s.where == "stage" and s.path != first and not op.separable
                and not op.depthwise and op.factor == "none" and op.table is None and pair(op.kernel) != (1, 1))

    if not any(eligible(op, s) for op, s in convs):
        if any(op.separable for op, _ in convs):  # type: ignore[union-attr]
            return g
        raise refuse("separable", value, g, "it has no full k x k conv (k > 1, not factorised, no connection table) "
                     "after its stem / first conv to split into depthwise + pointwise", "on | off")
    return map_ops(g, lambda op, s: replace(op, separable=True, groups=1) if eligible(op, s) else op, where=BODY)


# --- activation -----------------------------------------------------------------------------------
def activation(g: Genome, value: str, allowed: str) -> Genome:
    """Every activation of the network (convs, stand-alone, linear layers, subsampling) becomes ``value``."""
    count = 0

    def fn(op: Op, s: Site) -> Op:
        nonlocal count
        if isinstance(op, (Conv, Linear, Subsample)) and op.act != "none":
            count += 1
            return replace(op, act=value)
        if isinstance(op, Act) and op.fn != "none":
            count += 1
            return replace(op, fn=value)
        return op

    out = map_ops(g, fn)
    if not count:
        raise refuse("activation", value, g, "it has no activation to replace", allowed)
    return out


# --- norm -----------------------------------------------------------------------------------------
def _linear_projection(op: Conv, s: Site) -> bool:
    """Inception-ResNet's 1 x 1 merge conv before the residual add, kept linear (no BN) by design."""
    return s.part == "merge" and s.block is not None and s.block.skip != "none" and op.norm == "none"


def _layer(g: Genome, kind: str = "layer") -> Genome:
    """Every BatchNorm (after a conv, stand-alone, on a projection shortcut) becomes a LayerNorm (or a plugin's norm
    ``kind``); LRN goes. Convs that had a BatchNorm get a bias: a LayerNorm normalises across channels and does not
    absorb it (nor, not knowing better, does a plugin's norm)."""
    out = map_ops(g, lambda op, s: None if isinstance(op, Norm) and op.kind == "lrn" else
                  replace(op, kind=kind) if isinstance(op, Norm) else
                  replace(op, norm=kind, bias=True) if isinstance(op, Conv) and op.norm == "batch" else op)
    return map_blocks(out, lambda b, shape, path, where: replace(b, skip_norm=kind) if b.skip == "projection"
                      and b.skip_norm == "batch" else b)


def norm(g: Genome, value: str) -> Genome:
    """batch: BatchNorm after every conv (no bias, no LRN); none: no BatchNorm, no LRN (convs that lose their
    BatchNorm get a bias); lrn: no BatchNorm, LRN after the first two k x k convs (k > 1), as in AlexNet;
    layer: every BatchNorm becomes a LayerNorm over the channels (ConvNeXt), or, on a network without
    BatchNorm, LayerNorm after every conv. A plugin's norm goes where layer would."""
    if value not in ("none", "batch", "lrn"):
        normed = uses_bn(g) or any((isinstance(op, Norm) and op.kind in ("batch", value)) or
                                   (isinstance(op, Conv) and op.norm == value) for op, _ in iter_ops(g))
        return _layer(g if normed else norm(g, "batch"), value)
    bn = value == "batch"

    def fn(op: Op, s: Site) -> Op | None:
        if isinstance(op, Norm):
            return None
        if isinstance(op, Conv):
            if bn and op.norm != "batch" and not _linear_projection(op, s):
                return replace(op, norm="batch", bias=False)
            if not bn and op.norm != "none":
                return replace(op, norm="none", bias=True)
        return op

    out = map_ops(g, fn)
    skip_norm = "batch" if bn else "none"
    out = map_blocks(out, lambda b, shape, path, where: replace(b, skip_norm=skip_norm) if b.skip == "projection" else b)
    if value == "lrn":
        spatial = [s.path for op, s in iter_ops(out, where=BODY) if isinstance(op, Conv) and pair(op.kernel) != (1, 1)]
        if not spatial:
            raise refuse("norm", value, g, "it has no k x k conv (k > 1) for LRN to follow", " | ".join(NORMS))
        after = set(spatial[:2])
        out = map_ops(out, lambda op, s: (op, Norm("lrn")) if s.path in after else op, where=BODY)
    return out


# --- pooling --------------------------------------------------------------------------------------
def _body_pools(g: Genome) -> list[tuple[Op, Site]]:
    return [(op, s) for op, s in iter_ops(g, where=BODY) if downsampling_pool(op) or isinstance(op, Subsample)]


def pool_kind(g: Genome, value: str) -> Genome:
    """Every downsampling pool of the body becomes a max / average pool (LeNet's trainable subsampling
    becomes a plain pool, without its squashing function, as in lenet5_common). Adaptive pools, the
    stride-1 pool towers of Inception modules and aux heads keep theirs."""
    if not _body_pools(g):
        raise refuse("pool_kind", value, g, "it has no downsampling pool", " | ".join(POOL_KINDS))

    def fn(op: Op, s: Site) -> Op:
        if isinstance(op, Subsample):
            return Pool(value, op.kernel)
        if downsampling_pool(op):
            return replace(op, kind=value)
        return op

    return map_ops(g, fn, where=BODY)


def pool(g: Genome, value: str) -> Genome:
    """overlap: downsampling pools become s+1 x s+1 windows at stride s (3/2, AlexNet); nonoverlap: s x s at
    stride s (2/2, VGG). Each pool keeps its output size (padding and ceil mode chosen for it), as the AlexNet
    paper compared them ("outputs of equivalent dimensions", Sec. 3.4); where no choice keeps it, the knob refuses."""
    pools = _body_pools(g)
    if not pools:
        raise refuse("pool", value, g, "it has no downsampling pool", " | ".join(POOL_GEOMETRY))
    shapes = op_shapes(g)

    def fn(op: Op, s: Site) -> Op:
        if isinstance(op, Subsample):
            if value == "overlap":
                raise refuse("pool", value, g, f"{s.path} is LeNet's trainable subsampling, which has no overlapping form; "
                             "set pool_kind=max or avg to replace it by a pool", " | ".join(POOL_GEOMETRY))
            return op
        if not downsampling_pool(op):
            return op
        assert isinstance(op, Pool)
        kh, kw = pair(op.kernel)
        stride = op.stride if op.stride is not None else kh
        k = stride + 1 if value == "overlap" else stride
        if (kh, kw) == (k, k):
            return op
        _, h, w = shapes[s.path]
        want = (pool_out(h, kh, stride, op.padding, op.ceil), pool_out(w, kw, stride, op.padding, op.ceil))
        for ceil in (op.ceil, not op.ceil):
            for p in range(k // 2 + 1):
                if (pool_out(h, k, stride, p, ceil), pool_out(w, k, stride, p, ceil)) == want:
                    return replace(op, kernel=k, stride=stride, padding=p, ceil=ceil)
        raise refuse("pool", value, g, f"{s.path}: no padding or ceil mode gives a {k}x{k} window at stride {stride} the "
                     f"{want[0]}x{want[1]} output of its {h}x{w} input, and the two pools must hand on maps of the same size",
                     " | ".join(POOL_GEOMETRY))

    return map_ops(g, fn, where=BODY)
