"""complexity(): params, FLOPs, depth and layer counts from the genome equal what the built module has."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasplay.complexity import complexity
from nasplay.nn import layers as L
from nasplay.nn.build import build
from nasplay.space.genome import Act, Aux, Block, Branch, Conv, Dropout, Genome, Head, Input, Linear, Norm, Pool, Stage
from nasplay.space.zoo import get_genome, list_genomes


def trainable(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def real_flops(net: nn.Module, g: Genome) -> int:
    net.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(torch.randn(1, g.input.channels, g.input.size, g.input.size))
    return int(fc.get_total_flops())


TINY = Genome(
    name="tiny",
    input=Input(3, 24),
    stem=(Block((Branch((Conv(16, 3, 2, norm="batch", act="relu"),)),)),),
    stages=(
        Stage((
            Block((Branch((Conv(8, 1),), (Branch((Conv(8, 3, factor="asymmetric", mid=4),)), Branch((Conv(8, (3, 1)),)))),
                   Branch((Conv(16, 5, factor="stacked", groups=2, act="tanh"),)),
                   Branch((Pool("avg", 3, 1, 1), Conv(8, 1, bias=True)))),
                  merge=(Conv(16, 1),), skip="scaled", scale=0.3, post=(Act("gelu"),), repeat=2),
            Block((Branch((Conv(32, 3, 2, separable=True, norm="batch", act="relu"), Norm("lrn"))),), skip="projection"),
        )),
    ),
    head=Head((Pool("max", adaptive=2), Dropout(0.2), Linear(20, act="relu"))),
    aux=(Aux(0, 0, (Conv(4, 1), Pool("avg", 3))),),
    classes=7,
)

REAL = [("tiny", None), ("lenet5", None), ("lenet5_common", None), ("resnet18", 64), ("inception_v1", 96),
        ("inception_v3", None), ("xception", 71), ("inception_resnet_v2", 75), ("alexnet_2012", None), ("resnext50_32x4d", 64)]


@pytest.mark.parametrize(("name", "size"), REAL)
def test_params_and_flops_equal_the_real_module(name: str, size: int | None) -> None:
    g = TINY if name == "tiny" else get_genome(name)
    if size is not None:
        g = g.replace(input=Input(g.input.channels, size))
    c = complexity(g)
    torch.manual_seed(0)
    net = build(g)
    assert c.params == trainable(net)
    assert c.params_aux == trainable(net.aux)
    assert c.flops == real_flops(net, g)
    assert (c.input_size, c.input_channels) == (g.input.size, g.input.channels)


def test_input_size_and_classes_arguments() -> None:
    g = get_genome("resnet18")
    c = complexity(g, input_size=32, num_classes=10)
    net = build(g.replace(input=Input(3, 32)), num_classes=10)
    assert c.params == trainable(net) == complexity("resnet18").params - 512 * 990 - 990
    assert c.flops == real_flops(net, g.replace(input=Input(3, 32)))
    assert c.input_size == 32
    assert complexity("resnet18", input_size=224) == complexity("resnet18")


def test_complexity_is_json_ready() -> None:
    d = complexity("inception_v1").to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) >= {"params", "params_aux", "flops", "depth", "layers", "input_size", "input_channels"}


# Weighted layers on the longest path, derived from the papers (comments) rather than from the code.
DEPTHS = {
    "lenet5": 5, "lenet5_common": 5, "alexnet": 8, "alexnet_2012": 8,
    "vgg11": 11, "vgg13": 13, "vgg16": 16, "vgg19": 19,
    "resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152, "resnet50_v1": 50,
    "resnext50_32x4d": 50, "resnext101_32x8d": 101, "wide_resnet50_2": 50,
    "inception_v1": 22, "inception_v1_2014": 22,  # "22 layers deep when counting only layers with parameters"
    # stem 5, 3 x A (1x1, 3x3, 3x3), B 3, 4 x C (1x1 + four 7-tap convs), D 4, 2 x E (1x1, 3x3, 1x3|3x1), fc
    "inception_v3": 5 + 3 * 3 + 3 + 4 * 5 + 4 + 2 * 3 + 1,
    # stem 3 + 1 + 4 + 1, 4 x A 3, red-A 3, 7 x B 5, red-B 4, 3 x C (1x1, 1x3, 3x1, 1x3|3x1), fc
    "inception_v4": 9 + 4 * 3 + 3 + 7 * 5 + 4 + 3 * 4 + 1,
    # stem 5, 5b 3, 10 x (3 + linear 1x1), 6a 3, 20 x (3 + 1), 7a 3, 10 x (3 + 1), conv 7b, fc
    "inception_resnet_v2": 5 + 3 + 10 * 4 + 3 + 20 * 4 + 3 + 10 * 4 + 1 + 1,
    # Chollet's 36 convs, of which 34 separable count twice (depthwise and pointwise), and the fc
    "xception": 2 + 2 * 34 + 1,
    # the decade after: squeeze-and-excitation gates the path without lengthening it (SE-ResNet-50 stays 50)
    "densenet121": 121,  # the name: conv, 2 x (6 + 12 + 24 + 16) dense layers, 3 transitions, fc
    "seresnet50": 50,
    "mobilenet_v1": 28,  # "counting depthwise and pointwise convolutions as separate layers, MobileNet has 28 layers"
    "mobilenet_v2": 1 + 2 + 16 * 3 + 1 + 1,  # stem, t=1 block (dw, project), 16 x (expand, dw, project), 1x1, fc
    "efficientnet_b0": 1 + 2 + 15 * 3 + 1 + 1,  # as MobileNetV2, 16 MBConv blocks
    "regnet_y_400mf": 1 + 16 * 3 + 1,  # stem, 16 bottleneck blocks, fc
    "convnext_tiny": 1 + 18 * 3 + 3 + 1,  # patchify stem, 18 blocks (dw 7x7, two 1x1), 3 downsampling convs, fc
}


def test_depth() -> None:
    assert set(DEPTHS) == set(list_genomes())
    assert {n: complexity(n).depth for n in DEPTHS} == DEPTHS


def test_depth_of_a_hand_made_genome() -> None:
    # stem 1; block: max(branches: 1 + max(2, 1) = 3, stacked 5x5 = 2, pool + 1) + merge 1 = 4, twice;
    # projection block: separable 2; head linear 1 + classifier 1; the aux head is off the path
    assert complexity(TINY).depth == 1 + 2 * 4 + 2 + 2


_KINDS = {
    nn.Conv2d: "conv", L.TableConv2d: "conv", nn.Linear: "linear", L.RBFOutput: "linear",
    nn.BatchNorm2d: "norm", nn.LocalResponseNorm: "norm", L.LayerNorm2d: "norm", L.SqueezeExcite: "se",
    L.Subsample: "subsample", nn.Dropout: "dropout",
    nn.MaxPool2d: "pool", nn.AvgPool2d: "pool", nn.AdaptiveAvgPool2d: "pool", nn.AdaptiveMaxPool2d: "pool",
    **{cls: "act" for name, cls in L.ACTIVATIONS.items() if name != "none"},
}


def module_counts(net: nn.Module) -> dict[str, int]:
    """Layers by kind in the built module, aux heads excluded; an SE module counts as one layer."""
    aux = {id(m) for m in net.aux.modules()}
    aux |= {id(m) for se in net.modules() if isinstance(se, L.SqueezeExcite) for m in se.modules() if m is not se}
    counts = Counter(_KINDS[type(m)] for m in net.modules() if type(m) in _KINDS and id(m) not in aux)
    return dict(sorted(counts.items()))


@pytest.mark.parametrize("name", ["tiny", *list_genomes()])
def test_layer_counts_equal_the_modules(name: str) -> None:
    g = TINY if name == "tiny" else get_genome(name)
    with torch.device("meta"):  # structure only: no memory, no init
        net = build(g)
    assert complexity(g).layers == module_counts(net)
