"""Shorthands the zoo generators share."""

from __future__ import annotations

from nasplay.space.genome import SE, Act, Block, Branch, Conv, Norm, Op, Pool


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


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """A width rounded to a multiple of ``divisor``, never below ``round_limit`` of ``v`` (the MobileNet rule,
    as torchvision's ``_make_divisible`` and timm's ``make_divisible``)."""
    new = max(min_value or divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < round_limit * v else new


def inverted_residual(cin: int, out: int, expand: float, kernel: int, stride: int, act: str, *,
                      hidden: int | None = None, se: int | None = None, se_act: str | None = None) -> tuple:
    """MobileNetV2's inverted residual / EfficientNet's MBConv: a 1 x 1 expansion to ``hidden`` (``cin`` x
    ``expand`` unless given; none at ratio 1), a depthwise k x k, optional squeeze-and-excitation, a linear
    1 x 1 projection (no activation: the linear bottleneck)."""
    hidden = hidden if hidden is not None else int(round(cin * expand))
    ops: list = []
    if hidden != cin:
        ops.append(Conv(hidden, 1, norm="batch", act=act))
    ops.append(Conv(hidden, kernel, stride, depthwise=True, norm="batch", act=act))
    if se is not None:
        ops.append(SE(se, se_act or act))
    ops.append(Conv(out, 1, norm="batch"))
    return tuple(ops)


BN = Norm("batch")
LN = Norm("layer")
