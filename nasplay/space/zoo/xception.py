"""Xception (Chollet 2016), as timm's legacy_xception."""

from __future__ import annotations

from nasplay.space.genome import Block, Branch, Conv, Genome, Head, Input, Stage
from nasplay.space.zoo.parts import GAP, RELU, cbr, maxpool, seq
from nasplay.space.zoo.registry import register


def sep(out: int, act: bool = True) -> Conv:
    """Depthwise 3x3 + pointwise 1x1, then BatchNorm (and ReLU)."""
    return Conv(out, 3, separable=True, norm="batch", act="relu" if act else "none")


def _reduce(mid: int, out: int, *, start_with_relu: bool = True) -> Block:
    ops = ((RELU,) if start_with_relu else ()) + (sep(mid), sep(out, act=False), maxpool(3, 2, 1))
    return Block((Branch(ops),), skip="projection")


@register("xception", year=2016, paper="Chollet 2016, Xception: deep learning with depthwise separable convolutions",
          reference="timm:legacy_xception", canonical=True)
def xception() -> Genome:
    middle = Block((Branch((RELU, sep(728), sep(728), sep(728, act=False))),), skip="identity", repeat=8)
    return Genome(
        name="xception",
        input=Input(3, 299),
        stem=(seq(cbr(32, 3, 2, 0), cbr(64, 3, 1, 0)),),
        stages=(
            Stage((_reduce(128, 128, start_with_relu=False), _reduce(256, 256), _reduce(728, 728)), "entry"),
            Stage((middle,), "middle"),
            Stage((_reduce(728, 1024), seq(sep(1536), sep(2048))), "exit"),
        ),
        head=Head((GAP,)),
    )
