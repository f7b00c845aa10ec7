"""RegNet (Radosavovic et al. 2020): a network generated from a few numbers, as pycls defines it."""

from __future__ import annotations

import math

from nasplay.space.genome import SE, Block, Branch, Conv, Genome, Head, Stage
from nasplay.space.zoo.parts import GAP, RELU, cbr, seq
from nasplay.space.zoo.registry import register

QUANT = 8  # widths are multiples of 8


def generate_regnet(w0: float, wa: float, wm: float, depth: int, q: int = QUANT) -> tuple[list[int], list[int]]:
    """pycls's ``generate_regnet``: per-block widths from the linear rule u_j = w0 + wa * j, quantized in the
    log domain to w0 * wm^k and rounded to multiples of ``q``; blocks of equal width form a stage. Returns
    the stage widths and depths."""
    ks = [round(math.log((w0 + wa * j) / w0) / math.log(wm)) for j in range(depth)]
    widths = [int(round(w0 * wm**k / q)) * q for k in ks]
    stage_widths = sorted(set(widths))
    return stage_widths, [widths.count(w) for w in stage_widths]


def adjust_block_compatibility(widths: list[int], bottleneck: list[float], groups: list[int]) -> tuple[list[int], list[int]]:
    """pycls's repair step: group widths no larger than the bottleneck width, which becomes a multiple of them."""
    vs = [int(max(1, w * b)) for w, b in zip(widths, bottleneck)]
    gs = [int(min(g, v)) for g, v in zip(groups, vs)]
    ms = [math.lcm(g, int(b)) if b > 1 else g for g, b in zip(gs, bottleneck)]
    vs = [max(m, int(round(v / m) * m)) for v, m in zip(vs, ms)]
    return [int(v / b) for v, b in zip(vs, bottleneck)], gs


def regnet(w0: float, wa: float, wm: float, depth: int, group_width: int, *, se_ratio: float = 0.0,
           bottleneck: float = 1.0, stem: int = 32) -> Genome:
    """RegNetX (``se_ratio`` 0) or RegNetY: a 3x3/2 stem, then stages of residual bottleneck blocks (1x1, grouped
    3x3 of ``group_width`` channels per group with the stage's stride 2, optional SE to ``se_ratio`` of the
    block's input width, linear 1x1) whose widths and depths :func:`generate_regnet` gives."""
    widths, depths = generate_regnet(w0, wa, wm, depth)
    widths, gws = adjust_block_compatibility(widths, [bottleneck] * len(widths), [group_width] * len(widths))
    stages, cin = [], stem
    for i, (w, d, gw) in enumerate(zip(widths, depths, gws)):
        blocks = []
        for j in range(d):
            c, s = (cin, 2) if j == 0 else (w, 1)
            wb = int(round(w * bottleneck))
            ops = [cbr(wb, 1), cbr(wb, 3, s, groups=wb // gw)]
            if se_ratio:
                ops.append(SE(int(round(se_ratio * c)), "relu"))
            ops.append(Conv(w, 1, norm="batch"))
            skip = "projection" if c != w or s != 1 else "identity"
            blocks.append(Block((Branch(tuple(ops)),), skip=skip, post=(RELU,)))
        first, rest = blocks[0], blocks[1:]
        folded = (first,) + ((Block(rest[0].branches, skip="identity", post=(RELU,), repeat=len(rest)),) if rest else ())
        stages.append(Stage(folded, f"block{i + 1}"))
        cin = w
    return Genome(
        name="regnet",
        stem=(seq(cbr(stem, 3, 2)),),
        stages=tuple(stages),
        head=Head((GAP,)),
    )


REGNET_PAPER = "Radosavovic et al. 2020, Designing network design spaces"


@register("regnet_y_400mf", year=2020, paper=REGNET_PAPER + " (RegNetY-400MF: w0 48, wa 27.89, wm 2.09, depth 16, "
          "group width 8, SE 0.25)", reference="torchvision:regnet_y_400mf")
def regnet_y_400mf() -> Genome:
    return regnet(48, 27.89, 2.09, 16, 8, se_ratio=0.25)
