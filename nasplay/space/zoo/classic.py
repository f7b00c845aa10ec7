"""LeNet-5, AlexNet and VGG: plain stacks of convolutions."""

from __future__ import annotations

from nasplay.space.genome import Block, Conv, Dropout, Genome, Head, Input, Linear, Norm, Pool, Stage, Subsample
from nasplay.space.zoo.parts import maxpool, seq
from nasplay.space.zoo.registry import register

# LeNet-5's C3 table (LeCun et al. 1998, Table I): the S2 maps each C3 map reads.
LENET_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def lenet(*, table: bool = True, trainable_subsampling: bool = True, rbf: bool = True, act: str = "scaled_tanh") -> Genome:
    def sub():
        return Subsample(2, act=act) if trainable_subsampling else Pool("avg", 2)

    return Genome(
        name="lenet5",
        input=Input(1, 32),
        classes=10,
        stem=(),
        stages=(
            Stage((seq(Conv(6, 5, padding=0, bias=True, act=act), sub()),), "C1-S2"),
            Stage((seq(Conv(16, 5, padding=0, bias=True, act=act, table=LENET_C3_TABLE if table else None), sub()),), "C3-S4"),
            Stage((seq(Conv(120, 5, padding=0, bias=True, act=act)),), "C5"),
        ),
        head=Head((Linear(84, act=act),), output="rbf" if rbf else "linear"),
    )


@register("lenet5", year=1998, paper="LeCun et al. 1998, Gradient-based learning applied to document recognition", canonical=True)
def lenet5() -> Genome:
    return lenet()


@register("lenet5_common", year=1998, paper="LeNet-5 as commonly reimplemented: full C3, average pooling, linear output")
def lenet5_common() -> Genome:
    return lenet(table=False, trainable_subsampling=False, rbf=False, act="tanh")


def alexnet_genome(widths, groups, size, lrn: bool, pad1: int) -> Genome:
    c1, c2, c3, c4, c5 = widths
    g2, g4, g5 = groups
    norm = (Norm("lrn"),) if lrn else ()
    return Genome(
        name="alexnet",
        input=Input(3, size),
        stem=(seq(Conv(c1, 11, 4, pad1, bias=True, act="relu"), *norm, maxpool()),),
        stages=(
            Stage((seq(Conv(c2, 5, 1, 2, groups=g2, bias=True, act="relu"), *norm, maxpool()),), "conv2"),
            Stage((
                seq(Conv(c3, 3, bias=True, act="relu")),
                seq(Conv(c4, 3, groups=g4, bias=True, act="relu")),
                seq(Conv(c5, 3, groups=g5, bias=True, act="relu"), maxpool()),
            ), "conv3-5"),
        ),
        head=Head((Pool("avg", adaptive=6), Dropout(0.5), Linear(4096, act="relu"), Dropout(0.5), Linear(4096, act="relu"))),
    )


@register("alexnet", year=2012, paper="Krizhevsky et al. 2012 (torchvision's single-tower variant)",
          reference="torchvision:alexnet", canonical=True)
def alexnet() -> Genome:
    return alexnet_genome((64, 192, 384, 256, 256), (1, 1, 1), 224, lrn=False, pad1=2)


@register("alexnet_2012", year=2012, paper="Krizhevsky et al. 2012: two towers (groups 2 on conv2/4/5), LRN, 227 input")
def alexnet_2012() -> Genome:
    g = alexnet_genome((96, 256, 384, 384, 256), (2, 2, 2), 227, lrn=True, pad1=0)
    return g.replace(head=Head(g.head.ops[1:]))  # 6x6 already: no adaptive pooling


VGG_CFGS = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def vgg(depths: tuple[int, ...]) -> Genome:
    widths = (64, 128, 256, 512, 512)
    stages = tuple(
        Stage((Block(seq(Conv(w, 3, bias=True, act="relu")).branches, repeat=n), seq(maxpool(2, 2))), f"conv{i + 1}")
        for i, (w, n) in enumerate(zip(widths, depths))
    )
    return Genome(
        name="vgg",
        stem=(),
        stages=stages,
        head=Head((Pool("avg", adaptive=7), Linear(4096, act="relu"), Dropout(0.5), Linear(4096, act="relu"), Dropout(0.5))),
    )


def _register_vgg(name: str, depths: tuple[int, ...]) -> None:
    register(name, year=2014, paper="Simonyan & Zisserman 2014, Very deep convolutional networks",
             reference=f"torchvision:{name}", canonical=name == "vgg16")(lambda: vgg(depths))


for _name, _depths in VGG_CFGS.items():
    _register_vgg(_name, _depths)
