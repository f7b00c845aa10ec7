"""MobileNet v1 and v2 and EfficientNet: depthwise-separable stacks, inverted residuals, MBConv with SE."""

from __future__ import annotations

import math

from nasplay.space.genome import Block, Branch, Conv, Dropout, Genome, Head, Input, Stage
from nasplay.space.zoo.parts import GAP, inverted_residual, make_divisible, seq
from nasplay.space.zoo.registry import register


def _stage(blocks: list[tuple[tuple, str, float]], name: str, step: float = 0.0) -> Stage:
    """Consecutive equal blocks folded into one repeated block (whose stochastic depth grows by ``step``)."""
    out: list[Block] = []
    for ops, skip, rate in blocks:
        prev = out[-1] if out else None
        if prev is not None and prev.branches[0].ops == ops and prev.skip == skip:
            out[-1] = Block(prev.branches, skip=skip, repeat=prev.repeat + 1, drop_path=prev.drop_path,
                            drop_path_step=step if rate else 0.0)
        else:
            out.append(Block((Branch(ops),), skip=skip, drop_path=rate))
    return Stage(tuple(out), name)


# --- MobileNet v1 (timm's mobilenetv1_100) ----------------------------------------------------------
# (output channels, stride) of each depthwise-separable layer, Howard et al. 2017, Table 1
V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1))


def mobilenet_v1(width: float = 1.0, act: str = "relu6") -> Genome:
    """A 3x3/2 conv, then depthwise 3x3 + pointwise 1x1 pairs, each with BN and ``act`` (timm's ReLU6)."""
    cin = make_divisible(32 * width)
    stages, cur, names = [], [], ("conv1", "conv2", "conv3", "conv4", "conv5")
    for out, s in V1_LAYERS:
        out = make_divisible(out * width)
        if s == 2 and cur:
            stages.append(_stage(cur, names[len(stages)]))
            cur = []
        cur.append(((Conv(cin, 3, s, depthwise=True, norm="batch", act=act), Conv(out, 1, norm="batch", act=act)), "none", 0.0))
        cin = out
    stages.append(_stage(cur, names[len(stages)]))
    return Genome(
        name="mobilenet_v1",
        stem=(seq(Conv(make_divisible(32 * width), 3, 2, norm="batch", act=act)),),
        stages=tuple(stages),
        head=Head((GAP,)),
    )


@register("mobilenet_v1", year=2017, paper="Howard et al. 2017, MobileNets: efficient convolutional neural networks "
          "for mobile vision applications (timm's mobilenetv1_100, ReLU6)", reference="timm:mobilenetv1_100")
def mobilenet_v1_100() -> Genome:
    return mobilenet_v1()


# --- MobileNet v2 (torchvision) ---------------------------------------------------------------------
# (expansion t, output channels c, repeats n, first stride s), Sandler et al. 2018, Table 2
V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(width: float = 1.0, last: int = 1280, dropout: float = 0.2) -> Genome:
    """Inverted residuals with linear bottlenecks and ReLU6; identity shortcuts where the shape is kept."""
    cin = make_divisible(32 * width)
    stages = []
    for i, (t, c, n, s) in enumerate(V2_SETTING):
        out = make_divisible(c * width)
        blocks = []
        for j in range(n):
            stride = s if j == 0 else 1
            ops = inverted_residual(cin, out, t, 3, stride, "relu6")
            blocks.append((ops, "identity" if stride == 1 and cin == out else "none", 0.0))
            cin = out
        stages.append(_stage(blocks, f"bottleneck{i + 1}"))
    last_w = make_divisible(last * max(1.0, width))
    stages.append(Stage((seq(Conv(last_w, 1, norm="batch", act="relu6")),), "conv_last"))
    return Genome(
        name="mobilenet_v2",
        stem=(seq(Conv(make_divisible(32 * width), 3, 2, norm="batch", act="relu6")),),
        stages=tuple(stages),
        head=Head((GAP, Dropout(dropout))),
    )


@register("mobilenet_v2", year=2018, paper="Sandler et al. 2018, MobileNetV2: inverted residuals and linear bottlenecks",
          reference="torchvision:mobilenet_v2")
def mobilenet_v2_100() -> Genome:
    return mobilenet_v2()


# --- EfficientNet (torchvision) ---------------------------------------------------------------------
# (expansion, kernel, first stride, input channels, output channels, layers) of B0, Tan & Le 2019, Table 1
B0_SETTING = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
              (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


def efficientnet(width: float = 1.0, depth: float = 1.0, size: int = 224, dropout: float = 0.2,
                 drop_path: float = 0.2) -> Genome:
    """EfficientNet at compound-scaling coefficients ``width`` and ``depth`` (channels rounded to 8, layer counts
    rounded up): MBConv blocks (SiLU, squeeze-and-excitation to a quarter of the block's input channels), and
    stochastic depth growing linearly over the blocks up to ``drop_path`` (which no block reaches)."""
    setting = [(e, k, s, make_divisible(i * width), make_divisible(o * width), int(math.ceil(n * depth)))
               for e, k, s, i, o, n in B0_SETTING]
    total = sum(n for *_, n in setting)
    stages, k_block = [], 0
    for si, (e, k, s, cin, out, n) in enumerate(setting):
        blocks = []
        for j in range(n):
            c = cin if j == 0 else out
            stride = s if j == 0 else 1
            ops = inverted_residual(c, out, e, k, stride, "silu", hidden=make_divisible(c * e), se=max(1, c // 4))
            rate = drop_path * float(k_block) / total  # torchvision's expression, for the same floats
            residual = stride == 1 and c == out
            blocks.append((ops, "identity" if residual else "none", rate if residual else 0.0))
            k_block += 1
        stages.append(_stage(blocks, f"mbconv{si + 1}", drop_path / total))
    last = 4 * setting[-1][4]
    stages.append(Stage((seq(Conv(last, 1, norm="batch", act="silu")),), "conv_last"))
    return Genome(
        name="efficientnet",
        input=Input(3, size),
        stem=(seq(Conv(setting[0][3], 3, 2, norm="batch", act="silu")),),
        stages=tuple(stages),
        head=Head((GAP, Dropout(dropout))),
    )


@register("efficientnet_b0", year=2019, paper="Tan & Le 2019, EfficientNet: rethinking model scaling for "
          "convolutional neural networks", reference="torchvision:efficientnet_b0")
def efficientnet_b0() -> Genome:
    return efficientnet()
