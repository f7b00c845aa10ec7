"""ResNet, ResNeXt and Wide ResNet: one generator, as in torchvision's ResNet class."""

from __future__ import annotations

from nasplay.space.genome import SE, Block, Branch, Conv, Genome, Head, Stage
from nasplay.space.zoo.parts import GAP, RELU, cbr, make_divisible, maxpool, seq
from nasplay.space.zoo.registry import register

RESNET_PAPER = "He et al. 2015, Deep residual learning for image recognition"


def resnet(depths: tuple[int, ...], *, bottleneck: bool = True, groups: int = 1, width_per_group: int = 64,
           stride_in_1x1: bool = False, se: int = 0) -> Genome:
    """torchvision's ResNet (v1.5: stride on the 3x3) or the 2015 paper's v1 (``stride_in_1x1``); ``se`` > 0 adds
    squeeze-and-excitation with that reduction ratio after each block's last conv (timm's SE-ResNet, the
    squeeze width rounded to 8)."""
    stages = []
    cin = 64
    for i, n in enumerate(depths):
        planes = 64 * 2**i
        stride = 1 if i == 0 else 2
        if bottleneck:
            width = planes * width_per_group // 64 * groups
            cout = planes * 4

            def body(s: int, width=width, cout=cout) -> tuple:
                s1, s3 = (s, 1) if stride_in_1x1 else (1, s)
                attn = (SE(make_divisible(cout / se, 8, round_limit=0.0)),) if se else ()
                return (cbr(width, 1, s1), cbr(width, 3, s3, groups=groups), Conv(cout, 1, norm="batch"), *attn)
        else:
            cout = planes

            def body(s: int, cout=cout) -> tuple:
                attn = (SE(make_divisible(cout / se, 8, round_limit=0.0)),) if se else ()
                return (cbr(cout, 3, s), Conv(cout, 3, norm="batch"), *attn)

        first = Block((Branch(body(stride)),), skip="projection" if stride != 1 or cin != cout else "identity", post=(RELU,))
        blocks = [first]
        if n > 1:
            blocks.append(Block((Branch(body(1)),), skip="identity", post=(RELU,), repeat=n - 1))
        stages.append(Stage(tuple(blocks), f"layer{i + 1}"))
        cin = cout
    return Genome(
        name="resnet",
        stem=(seq(cbr(64, 7, 2, 3), maxpool(3, 2, 1)),),
        stages=tuple(stages),
        head=Head((GAP,)),
    )


_VARIANTS = {
    "resnet18": dict(depths=(2, 2, 2, 2), bottleneck=False),
    "resnet34": dict(depths=(3, 4, 6, 3), bottleneck=False),
    "resnet50": dict(depths=(3, 4, 6, 3)),
    "resnet101": dict(depths=(3, 4, 23, 3)),
    "resnet152": dict(depths=(3, 8, 36, 3)),
    "resnext50_32x4d": dict(depths=(3, 4, 6, 3), groups=32, width_per_group=4),
    "resnext101_32x8d": dict(depths=(3, 4, 23, 3), groups=32, width_per_group=8),
    "wide_resnet50_2": dict(depths=(3, 4, 6, 3), width_per_group=128),
}
_PAPERS = {
    "resnext": (2016, "Xie et al. 2016, Aggregated residual transformations (ResNeXt)"),
    "wide": (2016, "Zagoruyko & Komodakis 2016, Wide residual networks"),
}


def _register(name: str, kw: dict) -> None:
    year, paper = _PAPERS.get(name.split("_")[0].rstrip("0123456789"), (2015, RESNET_PAPER))
    register(name, year=year, paper=paper, reference=f"torchvision:{name}",
             canonical=name in ("resnet50", "resnext50_32x4d"))(lambda: resnet(**kw))


for _name, _kw in _VARIANTS.items():
    _register(_name, _kw)


@register("resnet50_v1", year=2015, paper=RESNET_PAPER + " (v1: stride on the first 1x1 conv)")
def resnet50_v1() -> Genome:
    return resnet((3, 4, 6, 3), stride_in_1x1=True)
