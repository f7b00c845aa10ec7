"""GoogLeNet (Inception-v1), Inception-v3, Inception-v4 and Inception-ResNet-v2."""

from __future__ import annotations

from nasplay.space.genome import (
    Aux,
    Branch,
    Conv,
    Dropout,
    Genome,
    Head,
    Input,
    Linear,
    Norm,
    Pool,
    Stage,
)
from nasplay.space.zoo.parts import GAP, RELU, avgpool, cbr, maxpool, seq, towers
from nasplay.space.zoo.registry import register

# --- GoogLeNet -----------------------------------------------------------------------------------
# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of each module, Szegedy et al. 2014, Table 1.
V1_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet(*, paper: bool) -> Genome:
    """torchvision's GoogLeNet (BN, 3x3 in the '5x5' tower) or the 2014 paper's (5x5, bias, no BN, LRN)."""

    def conv(out, k=1, s=1, p=None):
        if paper:
            return Conv(out, k, s, p, bias=True, act="relu")
        return cbr(out, k, s, p)

    def module(name: str):
        c1, r3, c3, r5, c5, pp = V1_MODULES[name]
        return towers((conv(c1),), (conv(r3), conv(c3, 3)), (conv(r5), conv(c5, 5 if paper else 3)),
                      (Pool("max", 3, 1, 1, ceil=True), conv(pp)), name=f"inception{name}")

    lrn = (Norm("lrn"),) if paper else ()
    pool = seq(maxpool(3, 2, ceil=True))
    pool4 = pool if paper else seq(maxpool(2, 2, ceil=True))  # torchvision: 2x2 where the paper has 3x3

    def aux():
        return (Pool("avg", 5, 3) if paper else Pool("avg", adaptive=4), conv(128), Linear(1024, act="relu"), Dropout(0.7))

    return Genome(
        name="googlenet",
        stem=(seq(conv(64, 7, 2, 3), maxpool(3, 2, ceil=True), *lrn, conv(64), conv(192, 3), *lrn, maxpool(3, 2, ceil=True)),),
        stages=(
            Stage((module("3a"), module("3b"), pool), "inception3"),
            Stage((module("4a"), module("4b"), module("4c"), module("4d"), module("4e"), pool4), "inception4"),
            Stage((module("5a"), module("5b")), "inception5"),
        ),
        head=Head((GAP, Dropout(0.4 if paper else 0.2))),
        aux=(Aux(1, 0, aux()), Aux(1, 3, aux())),
        bn_eps=0.001,
    )


@register("inception_v1", year=2014, paper="Szegedy et al. 2014, Going deeper with convolutions (torchvision's GoogLeNet)",
          reference="torchvision:googlenet", canonical=True)
def inception_v1() -> Genome:
    return googlenet(paper=False)


@register("inception_v1_2014", year=2014, paper="Szegedy et al. 2014: 5x5 towers, conv bias, LRN, no BatchNorm")
def inception_v1_2014() -> Genome:
    return googlenet(paper=True)


# --- Inception-v3 (torchvision) ------------------------------------------------------------------
def _v3_a(pool_features: int):
    return towers((cbr(64),), (cbr(48), cbr(64, 5)), (cbr(64), Conv(96, 5, factor="stacked", norm="batch", act="relu")),
                  (avgpool(), cbr(pool_features)), name="InceptionA")


def _v3_c(c7: int):
    return towers(
        (cbr(192),),
        (cbr(c7), cbr(192, 7, factor="asymmetric", mid=c7)),
        (cbr(c7), cbr(c7, 7, factor="asymmetric_t", mid=c7), cbr(192, 7, factor="asymmetric_t", mid=c7)),
        (avgpool(), cbr(192)),
        name="InceptionC",
    )


def _split(out: int) -> tuple[Branch, ...]:
    return (Branch((cbr(out, (1, 3)),)), Branch((cbr(out, (3, 1)),)))


def _v3_e():
    return towers(
        (cbr(320),),
        Branch((cbr(384),), _split(384)),
        Branch((cbr(448), cbr(384, 3)), _split(384)),
        (avgpool(), cbr(192)),
        name="InceptionE",
    )


@register("inception_v3", year=2015, paper="Szegedy et al. 2015, Rethinking the Inception architecture",
          reference="torchvision:inception_v3", canonical=True)
def inception_v3() -> Genome:
    reduction_b = towers((cbr(384, 3, 2, 0),), (cbr(64), cbr(96, 3), cbr(96, 3, 2, 0)), (maxpool(),), name="InceptionB")
    reduction_d = towers((cbr(192), cbr(320, 3, 2, 0)),
                         (cbr(192), cbr(192, 7, factor="asymmetric", mid=192), cbr(192, 3, 2, 0)),
                         (maxpool(),), name="InceptionD")
    return Genome(
        name="inception_v3",
        input=Input(3, 299),
        stem=(seq(cbr(32, 3, 2, 0), cbr(32, 3, 1, 0), cbr(64, 3), maxpool(), cbr(80), cbr(192, 3, 1, 0), maxpool()),),
        stages=(
            Stage((_v3_a(32), _v3_a(64), _v3_a(64)), "35x35"),
            Stage((reduction_b, _v3_c(128), _v3_c(160), _v3_c(160), _v3_c(192)), "17x17"),
            Stage((reduction_d, _v3_e(), _v3_e()), "8x8"),
        ),
        head=Head((GAP, Dropout(0.5))),
        aux=(Aux(1, -1, (Pool("avg", 5, 3), cbr(128), cbr(768, 5, 1, 0), GAP), weight=0.4),),
        bn_eps=0.001,
    )


# --- Inception-v4 and Inception-ResNet-v2 (timm) -------------------------------------------------
V4_PAPER = "Szegedy et al. 2016, Inception-v4, Inception-ResNet and the impact of residual connections"


def _avgpool_exclusive():
    return avgpool(include_pad=False)


@register("inception_v4", year=2016, paper=V4_PAPER,
          reference="timm:inception_v4", canonical=True)
def inception_v4() -> Genome:
    a = towers((cbr(96),), (cbr(64), cbr(96, 3)), (cbr(64), cbr(96, 5, factor="stacked")),
               (_avgpool_exclusive(), cbr(96)), name="InceptionA", repeat=4)
    red_a = towers((cbr(384, 3, 2, 0),), (cbr(192), cbr(224, 3), cbr(256, 3, 2, 0)), (maxpool(),), name="ReductionA")
    b = towers((cbr(384),), (cbr(192), cbr(256, 7, factor="asymmetric", mid=224)),
               (cbr(192), cbr(224, 7, factor="asymmetric_t", mid=192), cbr(256, 7, factor="asymmetric_t", mid=224)),
               (_avgpool_exclusive(), cbr(128)), name="InceptionB", repeat=7)
    red_b = towers((cbr(192), cbr(192, 3, 2, 0)), (cbr(256), cbr(320, 7, factor="asymmetric", mid=256), cbr(320, 3, 2, 0)),
                   (maxpool(),), name="ReductionB")
    c = towers((cbr(256),), Branch((cbr(384),), (Branch((cbr(256, (1, 3)),)), Branch((cbr(256, (3, 1)),)))),
               Branch((cbr(384), cbr(512, 3, factor="asymmetric_t", mid=448)), (Branch((cbr(256, (1, 3)),)), Branch((cbr(256, (3, 1)),)))),
               (_avgpool_exclusive(), cbr(256)), name="InceptionC", repeat=3)
    return Genome(
        name="inception_v4",
        input=Input(3, 299),
        stem=(
            seq(cbr(32, 3, 2, 0), cbr(32, 3, 1, 0), cbr(64, 3)),
            towers((maxpool(),), (cbr(96, 3, 2, 0),), name="Mixed3a"),
            towers((cbr(64), cbr(96, 3, 1, 0)), (cbr(64), cbr(64, 7, factor="asymmetric", mid=64), cbr(96, 3, 1, 0)), name="Mixed4a"),
            towers((cbr(192, 3, 2, 0),), (maxpool(),), name="Mixed5a"),
        ),
        stages=(Stage((a,), "35x35"), Stage((red_a, b), "17x17"), Stage((red_b, c), "8x8")),
        head=Head((GAP,)),
        bn_eps=0.001,
    )


def _res(branches, out: int, scale: float, repeat: int = 1, relu: bool = True, name: str = ""):
    return towers(*branches, merge=(Conv(out, 1, bias=True),), skip="scaled", scale=scale,
                  post=(RELU,) if relu else (), repeat=repeat, name=name)


@register("inception_resnet_v2", year=2016, paper=V4_PAPER,
          reference="timm:inception_resnet_v2", canonical=True)
def inception_resnet_v2() -> Genome:
    b35 = ((cbr(32),), (cbr(32), cbr(32, 3)), (cbr(32), cbr(64, 5, factor="stacked", mid=48)))
    b17 = ((cbr(192),), (cbr(128), cbr(192, 7, factor="asymmetric", mid=160)))
    b8 = ((cbr(192),), (cbr(192), cbr(256, 3, factor="asymmetric", mid=224)))
    mixed_5b = towers((cbr(96),), (cbr(48), cbr(64, 5)), (cbr(64), cbr(96, 5, factor="stacked")),
                      (_avgpool_exclusive(), cbr(64)), name="Mixed5b")
    mixed_6a = towers((cbr(384, 3, 2, 0),), (cbr(256), cbr(256, 3), cbr(384, 3, 2, 0)), (maxpool(),), name="Mixed6a")
    mixed_7a = towers((cbr(256), cbr(384, 3, 2, 0)), (cbr(256), cbr(288, 3, 2, 0)),
                      (cbr(256), cbr(288, 3), cbr(320, 3, 2, 0)), (maxpool(),), name="Mixed7a")
    return Genome(
        name="inception_resnet_v2",
        input=Input(3, 299),
        stem=(seq(cbr(32, 3, 2, 0), cbr(32, 3, 1, 0), cbr(64, 3), maxpool(), cbr(80), cbr(192, 3, 1, 0), maxpool()),),
        stages=(
            Stage((mixed_5b, _res(b35, 320, 0.17, 10, name="Block35")), "35x35"),
            Stage((mixed_6a, _res(b17, 1088, 0.10, 20, name="Block17")), "17x17"),
            Stage((mixed_7a, _res(b8, 2080, 0.20, 9, name="Block8"), _res(b8, 2080, 1.0, relu=False, name="Block8"),
                   seq(cbr(1536))), "8x8"),
        ),
        head=Head((GAP,)),
        bn_eps=0.001,
    )


