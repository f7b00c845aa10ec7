"""Shorthands the zoo generators share."""

from __future__ import annotations

from nasplay.space.genome import Act, Block, Branch, Conv, Op, Pool


def cbr(out: int, k=1, s: int = 1, p=None, **kw) -> Conv:
    """Conv -> BatchNorm -> ReLU without bias (torchvision's BasicConv2d, timm's ConvNormAct)."""
    return Conv(out, k, s, p, norm="batch", act="relu", **kw)


def seq(*ops: Op, **kw) -> Block:
    """A single-path block."""
    return Block(branches=(Branch(tuple(ops)),), **kw)


def towers(*branches: tuple[Op, ...] | Branch, **kw) -> Block:
    """A multi-branch block whose branch outputs are concatenated."""
    return Block(branches=tuple(b if isinstance(b, Branch) else Branch(tuple(b)) for b in branches), **kw)


def maxpool(k: int = 3, s: int = 2, p: int = 0, ceil: bool = False) -> Pool:
    return Pool("max", k, s, p, ceil=ceil)


def avgpool(k: int = 3, s: int = 1, p: int = 1, include_pad: bool = True) -> Pool:
    return Pool("avg", k, s, p, count_include_pad=include_pad)


GAP = Pool("avg", adaptive=1)
RELU = Act("relu")
