"""The knobs: every knob on every zoo network either trains at a small input or is refused by name;
exact landings between zoo points; keep= holds params / FLOPs; values as the command line gives them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nasplay.cli import main as cli_main
from nasplay.complexity import apply, complexity
from nasplay.nn.build import Outputs, build
from nasplay.space.genome import Conv, Genome, Input, Pool
from nasplay.space.knobs import KnobError, knobs
from nasplay.space.shapes import walk
from nasplay.space.validate import ACTIVATIONS
from nasplay.space.zoo import get_genome, list_genomes

NAMES = list_genomes()
LENETS = {"lenet5", "lenet5_common"}
ALEXNETS = {"alexnet", "alexnet_2012"}
VGGS = {"vgg11", "vgg13", "vgg16", "vgg19"}
BASIC = {"resnet18", "resnet34"}
BOTTLENECKS = {"resnet50", "resnet101", "resnet152", "resnet50_v1", "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2"}
ALL = set(NAMES)
SE_BOTTLENECKS = {"seresnet50", "regnet_y_400mf"}  # bottleneck blocks with squeeze-and-excitation
INVERTED = {"mobilenet_v2", "efficientnet_b0"}  # inverted residuals: 1x1 expansions around a depthwise conv
NO_POOLS = {"mobilenet_v1", "regnet_y_400mf", "convnext_tiny"} | INVERTED  # strided convs downsample
INCEPTIONS = {"inception_v1", "inception_v1_2014", "inception_v3", "inception_v4", "inception_resnet_v2"}
PLAIN = LENETS | ALEXNETS | VGGS | INCEPTIONS  # no added shortcut (inception_resnet_v2: towers, see its entries)

# Which networks refuse each knob value (the rest must give a network that trains).
REFUSED: dict[tuple[str, object], set[str]] = {
    ("depth", 0.5): LENETS | {"alexnet", "inception_v1", "inception_v1_2014"},
    ("depth", 2): LENETS,
    # four stages: the ResNets have them, and the decade's four-stage networks
    ("depth", "1,1,1,1"): ALL - BASIC - BOTTLENECKS - SE_BOTTLENECKS - {"densenet121", "convnext_tiny"},
    ("bottleneck", "on"): LENETS | ALEXNETS | VGGS | {"xception", "densenet121", "mobilenet_v1", "convnext_tiny"} | INVERTED,
    ("bottleneck", "off"): LENETS | ALEXNETS | VGGS | BASIC | {"xception", "densenet121", "mobilenet_v1", "convnext_tiny"}
    | INVERTED,
    ("cardinality", 1): ALL - BOTTLENECKS - SE_BOTTLENECKS - {"alexnet_2012"},  # depthwise convs are not towers
    ("cardinality", 32): ALL - BOTTLENECKS - SE_BOTTLENECKS - {"alexnet_2012"},
    ("group_width", 8): ALL - BOTTLENECKS - SE_BOTTLENECKS,
    ("width", 0.5): {"lenet5"},  # its C3 connection table fixes the maps
    ("separable", "on"): INVERTED | {"mobilenet_v1"},  # their k x k convs are depthwise already
    ("separable", "off"): set(),
    ("factorize", "none"): set(),
    ("factorize", "stacked"): VGGS | {"xception", "mobilenet_v1", "mobilenet_v2", "regnet_y_400mf"},  # only 3x3 convs
    ("factorize", "asymmetric"): set(),
    ("skip", "none"): set(),
    ("skip", "identity"): LENETS,  # unpadded convs: no shortcut fits
    ("skip", "projection"): LENETS,
    ("skip", "scaled"): LENETS,
    ("skip_scale", 0.1): ALL - {"inception_resnet_v2"},
    ("activation", "tanh"): set(),
    ("activation", "gelu"): set(),
    ("norm", "none"): set(),
    ("norm", "batch"): set(),
    ("norm", "lrn"): set(),
    ("pool_kind", "avg"): NO_POOLS,
    ("pool_kind", "max"): NO_POOLS,
    ("pool", "overlap"): {"lenet5"} | NO_POOLS,  # trainable subsampling has no overlapping form
    ("pool", "nonoverlap"): NO_POOLS,
    ("aux", "on"): LENETS | ALEXNETS,  # too shallow
    ("aux", "off"): set(),
    ("head", "fc"): set(),
    ("head", "gap"): set(),
    ("head_width", 512): ALL - LENETS - ALEXNETS - VGGS,  # only FC heads have hidden widths
    ("input", "1x28"): set(),
    # the decade after the ten (issue 14)
    ("se", "on"): PLAIN | INCEPTIONS | {"densenet121", "mobilenet_v1"},  # no single-path residual blocks
    ("se", "off"): ALL - {"seresnet50", "efficientnet_b0", "regnet_y_400mf"},
    ("dense", "on"): PLAIN - {"inception_resnet_v2"} | {"mobilenet_v1", "convnext_tiny"},  # no residual blocks; or
    # blocks that open with a depthwise conv (it keeps the channels it reads; dense copies read more each time)
    ("dense", "off"): ALL - {"densenet121"},
    ("expand", 2): ALL - INVERTED - {"convnext_tiny"} - BOTTLENECKS - SE_BOTTLENECKS,  # bottlenecks invert
    ("drop_path", 0.1): PLAIN - {"inception_resnet_v2"} | {"densenet121", "mobilenet_v1"},  # its residuals are scaled
    ("layer_scale", 1e-6): PLAIN - {"inception_resnet_v2"} | {"densenet121", "mobilenet_v1"},
    ("stem", "patchify"): LENETS | ALEXNETS | VGGS | {"inception_v3", "inception_v4", "inception_resnet_v2", "xception"},
    ("norm", "layer"): set(),
    # ConvNeXt's roadmap steps: residual blocks with a k x k conv that keeps its width (not separable ones)
    ("depthwise", "on"): PLAIN | {"xception", "densenet121", "mobilenet_v1"},
    ("depthwise", "first"): PLAIN | {"xception", "densenet121", "mobilenet_v1"},
    ("depthwise", "off"): ALL - INVERTED - {"convnext_tiny"},  # only those have depthwise convs in residual blocks
    ("kernel", 7): PLAIN | {"xception", "densenet121", "mobilenet_v1"},
    ("block_acts", "one"): PLAIN | {"densenet121", "mobilenet_v1"},
    ("block_norms", "one"): PLAIN | {"densenet121", "mobilenet_v1"},
    ("downsample", "separate"): PLAIN | {"xception", "densenet121", "mobilenet_v1"},  # xception: pools in its blocks
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def shrink(g: Genome) -> Genome:
    """A cheap version of ``g`` to train: 32-pixel inputs, 1/16 of the width (LeNet-5's table forbids it)."""
    kw: dict[str, object] = {}
    if g.input.size > 32:
        kw["input"] = 32
    if not any(isinstance(op, Conv) and op.table is not None for st in g.stages for b in st.blocks for br in b.branches for op in br.ops):
        kw["width"] = 1 / 16
    return apply(g, **kw) if kw else g


def train_step(g: Genome, classes: int = 10) -> None:
    """Forward and backward at batch 2 in training mode: right shapes, finite loss, every parameter a gradient."""
    torch.manual_seed(0)
    net = build(g, classes).train()
    x = torch.randn(2, g.input.channels, g.input.size, g.input.size)
    out = net(x)
    logits, aux = (out.logits, out.aux) if isinstance(out, Outputs) else (out, ())
    assert logits.shape == (2, classes) and len(aux) == len(g.aux)
    y = torch.tensor([1, 3])
    loss = F.cross_entropy(logits, y) + sum(0.3 * F.cross_entropy(a, y) for a in aux)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("knob", "value"), list(REFUSED), ids=[f"{k}={v}" for k, v in REFUSED])
def test_every_knob_on_every_network(knob: str, value: object, name: str) -> None:
    original = get_genome(name)
    if name in REFUSED[(knob, value)]:
        with pytest.raises(ValueError, match=knob):
            apply(name, **{knob: value})
        return
    g = apply(name, **{knob: value})
    walk(g)
    assert get_genome(name) == original  # pure
    if g.hash != original.hash:  # the zoo's own tests train the unchanged networks
        train_step(shrink(g))


def test_refusals_name_knob_value_allowed_and_why() -> None:
    with pytest.raises(ValueError) as e:
        apply("lenet5", skip="identity")
    msg = str(e.value)
    assert "skip='identity' has no meaning on lenet5" in msg and "none | identity | projection | scaled" in msg
    assert "\n" not in msg
    with pytest.raises(ValueError, match=r"cardinality=32 has no meaning on vgg16: .*bottleneck"):
        apply("vgg16", cardinality=32)
    with pytest.raises(ValueError, match=r"cardinality=4 has no meaning on resnet18: .*bottleneck=on"):
        apply("resnet18", cardinality=4)
    with pytest.raises(ValueError, match=r"depth='3,4,6': resnet50 has 4 stages, with 3,4,6,3 blocks"):
        apply("resnet50", depth="3,4,6")
    with pytest.raises(ValueError, match=r"depth='3,4,0,3' is not allowed"):
        apply("resnet50", depth="3,4,0,3")
    with pytest.raises(ValueError, match=r"depth='2,4,2': stage inception4 of inception_v1 needs at least 5 blocks"):
        apply("inception_v1", depth="2,4,2")
    with pytest.raises(ValueError, match=r"depth=0.5 has no meaning on alexnet: no stage can lose a block"):
        apply("alexnet", depth=0.5)
    with pytest.raises(ValueError, match=r"skip_scale=0.1 only goes with skip='scaled'"):
        apply("resnet50", skip="identity", skip_scale=0.1)


def test_unknown_knobs_and_bad_values() -> None:
    with pytest.raises(ValueError, match=r"unknown knob 'skp'; did you mean skip.*knobs: depth, bottleneck"):
        apply("resnet50", skp="none")
    with pytest.raises(ValueError, match=r"unknown knob 'widht'; did you mean width"):
        apply("resnet50", widht=2)
    for knob, value, allowed in [("skip", "maybe", "none | identity"), ("width", "x", r"a number in \(0, inf\)"),
                                 ("width", 0, r"\(0, inf\)"), ("cardinality", 2.5, "integer"), ("input", "3x32x16", "square"),
                                 ("activation", "none", "relu | relu6 | tanh"), ("aux", "sometimes", "on | off"),
                                 ("depth", "a,b", "multiplier")]:
        with pytest.raises(ValueError, match=rf"{knob}=.* is not allowed.*{allowed}"):
            apply("resnet50", **{knob: value})
    with pytest.raises(ValueError, match=r"keep='speed' is not allowed; allowed: flops \| params"):
        apply("resnet50", skip="none", keep="speed")
    with pytest.raises(ValueError, match=r"keep='flops' re-solves the width"):
        apply("resnet50", width=2, keep="flops")
    with pytest.raises(ValueError, match=r"unknown network"):
        apply("resnet5", skip="none")


def test_values_as_the_command_line_gives_them() -> None:
    same = [
        (dict(skip="none", width="0.5", input="32"), dict(skip="none", width=0.5, input=32)),
        (dict(input="1x28"), dict(input=(1, 28))),
        (dict(input="(1, 28)"), dict(input=[1, 28])),
        (dict(input="1x28x28"), dict(input="1X28")),
        (dict(separable="off"), dict(separable=False)),
        (dict(aux="true"), dict(aux="on")),
        (dict(aux="false"), dict(aux=False)),
        (dict(depth="3,4,23,3"), dict(depth=[3, 4, 23, 3])),
        (dict(depth="[3, 4, 23, 3]"), dict(depth=(3, 4, 23, 3))),
        (dict(depth="2"), dict(depth=2.0)),
        (dict(cardinality="32", group_width="4"), dict(cardinality=32, group_width=4)),
        (dict(norm="BN"), dict(norm="batch")),
        (dict(skip=None, width=None), dict()),
    ]
    for a, b in same:
        assert apply("resnet50", **a).hash == apply("resnet50", **b).hash, (a, b)
    from omegaconf import OmegaConf  # as a Hydra experiment config hands them over

    cfg = OmegaConf.create({"depth": [3, 4, 23, 3], "input": {"channels": 1, "size": 28}, "width": 0.5})
    assert apply("resnet50", **cfg).hash == apply("resnet50", depth="3,4,23,3", input="1x28", width="0.5").hash
    g = apply("resnet50", skip="none", input="1x28")
    assert g.name == "resnet50+skip=none+input=1x28" and g.input == Input(1, 28)
    assert apply("resnet50") is get_genome("resnet50")
    assert apply(get_genome("vgg11"), depth="2,2,2,2,2").hash == get_genome("vgg13").hash


def test_knobs_lists_every_knob() -> None:
    table = knobs()
    need = {"skip", "factorize", "cardinality", "group_width", "separable", "depth", "width", "activation", "norm",
            "pool", "pool_kind", "head", "aux", "bottleneck", "input", "skip_scale", "head_width", "branches",
            "se", "dense", "expand", "drop_path", "layer_scale", "stem", "depthwise", "kernel", "block_acts",
            "block_norms", "downsample"}
    assert need == set(table)
    text = str(table)
    for name, spec in table.items():
        assert spec.name == name and spec.values and spec.help and name in text
        apply_ok = spec.example.split("=", 1)
        assert apply_ok[0] == name
    assert set(table["activation"].values.split(" | ")) == set(ACTIVATIONS) - {"none"}
    assert table["skip"].values == "none | identity | projection | scaled"
    assert table["skip_scale"].goes_with == "skip"


# --- exact landings: where two zoo points differ only by knobs --------------------------------------
LANDINGS = [
    ("resnext50_32x4d", dict(cardinality=1, group_width=64), "resnet50"),
    ("resnet50", dict(cardinality=32, group_width=4), "resnext50_32x4d"),
    ("resnet50", dict(group_width=128), "wide_resnet50_2"),
    ("wide_resnet50_2", dict(group_width=64), "resnet50"),
    ("resnet101", dict(cardinality=32, group_width=8), "resnext101_32x8d"),
    ("resnext50_32x4d", dict(depth="3,4,23,3", group_width=8), "resnext101_32x8d"),
    ("resnet50", dict(depth="3,4,23,3"), "resnet101"),
    ("resnet50", dict(depth="3,8,36,3"), "resnet152"),
    ("resnet152", dict(depth="3,4,6,3"), "resnet50"),
    ("resnet18", dict(depth="3,4,6,3"), "resnet34"),
    ("vgg11", dict(depth="2,2,2,2,2"), "vgg13"),
    ("vgg11", dict(depth="2,2,3,3,3"), "vgg16"),
    ("vgg16", dict(depth="2,2,4,4,4"), "vgg19"),
    ("vgg19", dict(depth="1,1,2,2,2"), "vgg11"),
    ("resnet50", dict(bottleneck="off"), "resnet34"),
    ("resnet34", dict(bottleneck="on"), "resnet50"),
    ("resnet18", dict(bottleneck="on", depth="3,4,23,3"), "resnet101"),
    ("resnet50", dict(se="on"), "seresnet50"),
    ("seresnet50", dict(se="off"), "resnet50"),
]


@pytest.mark.parametrize(("src", "kw", "dst"), LANDINGS, ids=[f"{s}->{d}" for s, _, d in LANDINGS])
def test_exact_landings(src: str, kw: dict, dst: str) -> None:
    g, want = apply(src, **kw), get_genome(dst)
    assert g.hash == want.hash
    assert g.replace(name=dst) == want


ROUND_TRIPS = [
    ("xception", dict(separable="off"), dict(separable="on")),
    ("resnet50", dict(skip="none"), dict(skip="identity")),
    ("resnet18", dict(skip="none"), dict(skip="identity")),
    ("vgg16", dict(skip="identity"), dict(skip="none")),
    ("inception_v4", dict(skip="projection"), dict(skip="none")),
    ("inception_v1", dict(norm="none"), dict(norm="batch")),
    ("resnet50", dict(norm="none"), dict(norm="batch")),
    ("alexnet_2012", dict(norm="none"), dict(norm="lrn")),
    ("alexnet", dict(pool="nonoverlap"), dict(pool="overlap")),
    ("resnet50", dict(pool="nonoverlap"), dict(pool="overlap")),
    ("vgg16", dict(pool="overlap"), dict(pool="nonoverlap")),
    ("alexnet", dict(head="gap"), dict(head="fc")),
    ("inception_v3", dict(activation="tanh"), dict(activation="relu")),
    ("resnet34", dict(bottleneck="on"), dict(bottleneck="off")),
    ("convnext_tiny", dict(drop_path=0), dict(drop_path=0.1)),
    ("convnext_tiny", dict(layer_scale="off"), dict(layer_scale=1e-6)),
    ("mobilenet_v2", dict(expand=4), dict(expand=6)),
    ("efficientnet_b0", dict(expand=3), dict(expand=6)),
    ("seresnet50", dict(se="off"), dict(se="on")),
]


@pytest.mark.parametrize(("name", "there", "back"), ROUND_TRIPS, ids=[f"{n}-{t}" for n, t, _ in ROUND_TRIPS])
def test_round_trips(name: str, there: dict, back: dict) -> None:
    away = apply(name, **there)
    assert away.hash != get_genome(name).hash
    assert apply(away, **back).hash == get_genome(name).hash


NO_OPS = [
    ("resnet50", dict(skip="identity")), ("xception", dict(separable="on")), ("inception_v3", dict(norm="batch")),
    ("alexnet", dict(pool="overlap")), ("vgg16", dict(pool="nonoverlap", pool_kind="max", head="fc")),
    ("resnext50_32x4d", dict(cardinality=32)), ("resnext50_32x4d", dict(group_width=4)), ("inception_v1", dict(aux="on")),
    ("resnet50", dict(head="gap", bottleneck="on", factorize="none")), ("inception_resnet_v2", dict(skip="scaled")),
    ("lenet5", dict(input="1x32", norm="none", pool="nonoverlap")), ("vgg16", dict(width=1, depth=1.0)),
    ("inception_v3", dict(depth="3,5,3")),
    ("convnext_tiny", dict(drop_path=0.1, layer_scale=1e-6, expand=4, norm="layer", stem="patchify")),
    ("seresnet50", dict(se="on")), ("densenet121", dict(dense="on")), ("mobilenet_v2", dict(expand=6)),
]


@pytest.mark.parametrize(("name", "kw"), NO_OPS, ids=[f"{n}-{'-'.join(kw)}" for n, kw in NO_OPS])
def test_a_knob_at_the_networks_own_value_changes_nothing(name: str, kw: dict) -> None:
    assert apply(name, **kw).hash == get_genome(name).hash


def test_reference_figures_reached_by_knobs() -> None:
    # The 2012 channels in a single tower (the reference table's figure), and GoogLeNet without aux heads.
    c = complexity(apply("alexnet_2012", cardinality=1))
    assert (c.params, c.flops) == (62_378_344, 2_270_512_192)
    assert complexity(apply("inception_v1", aux="off")).params == 6_624_904
    assert complexity(apply("inception_v1_2014", aux="off")).params == 6_998_552
    assert apply("inception_v1", aux="off").hash == apply("inception_v1", aux="off", norm="batch").hash


# --- what each knob does ---------------------------------------------------------------------------
def _ops(g: Genome) -> list:
    from nasplay.space.knobs.tree import iter_ops

    return [op for op, _ in iter_ops(g)]


def test_the_decades_knobs() -> None:
    from nasplay.nn import layers as L

    g = apply("resnet50", stem="patchify")
    (patch,) = g.stem[0].branches[0].ops
    assert (patch.kernel, patch.stride, patch.out, patch.bias, patch.norm, patch.act) == (4, 4, 64, True, "batch", "none")
    assert walk(g).stem == walk(get_genome("resnet50")).stem  # the same grid and width as the classic stem
    ln = build(apply("resnet50", norm="layer"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ln.modules())
    assert sum(isinstance(m, L.LayerNorm2d) for m in ln.modules()) == 53  # 49 convs and 4 projections
    rates = [b.drop_path for st in build(apply("resnet50", drop_path=0.1)).stages for b in st]
    assert rates == pytest.approx([0.1 * k / 15 for k in range(16)])
    scales = [b.layer_scale for st in build(apply("resnet50", layer_scale=0.5)).stages for b in st]
    assert all(s is not None and torch.all(s == 0.5) for s in scales) and len(scales) == 16
    dense = apply("resnet18", dense="on")
    assert [b.skip for st in dense.stages for b in st.blocks] == ["dense", "dense", "none", "dense", "none", "dense",
                                                                 "none", "dense"]
    assert walk(dense).head_in[0] == 512 + 512  # the last stage: its strided block gives 512, the dense copy adds 512
    assert complexity(apply("mobilenet_v2", expand=3)).params < complexity("mobilenet_v2").params
    hidden = [op.out for op in _ops(apply("efficientnet_b0", expand=4)) if isinstance(op, Conv) and op.depthwise]
    assert hidden[:3] == [32, 64, 96]  # the t=1 block keeps its width; then 4 x 16, 4 x 24
    with pytest.raises(ValueError, match=r"drop_path=1 is not allowed; allowed: a number in \[0, 1\)"):
        apply("resnet50", drop_path=1)
    inverted = apply("resnet50", expand=4)  # ConvNeXt's inverted bottleneck: in and out at w, 4w inside
    assert [op.out for op in inverted.stages[0].blocks[0].branches[0].ops] == [256, 256, 64]
    assert walk(inverted).head_in[0] == 512 and inverted.stages[0].blocks[0].skip == "identity"
    with pytest.raises(ValueError, match=r"expand=0.5 has no meaning on resnet50: it has no inverted bottlenecks"):
        apply("resnet50", expand=0.5)
    with pytest.raises(ValueError, match=r"expand=2.0 has no meaning on vgg16: .* and no bottleneck blocks to invert"):
        apply("vgg16", expand=2)
    with pytest.raises(ValueError, match=r"stem='patchify' has no meaning on inception_v3: its stem does not downsample "
                       r"by a whole factor \(299 -> 35 pixels\)"):
        apply("inception_v3", stem="patchify")
    with pytest.raises(ValueError, match=r"stem='conv' is not allowed; allowed: patchify"):
        apply("resnet50", stem="conv")


def test_knob_semantics() -> None:
    plain = apply("resnet50", skip="none")
    assert all(b.skip == "none" for st in plain.stages for b in st.blocks)
    vgg = apply("vgg11", skip="identity")
    skips = [(b.skip, b.repeat) for st in vgg.stages for b in st.blocks if isinstance(b.branches[0].ops[0], Conv)]
    assert skips == [("projection", 1), ("projection", 1), ("projection", 1), ("identity", 1), ("projection", 1),
                     ("identity", 1), ("identity", 1), ("identity", 1)]  # conv5 keeps 512 channels: identity
    assert all(b.skip_norm == "none" for st in vgg.stages for b in st.blocks if b.skip == "projection")  # no BN in VGG
    scaled = apply("resnet50", skip="scaled", skip_scale=0.3)
    assert {b.scale for st in scaled.stages for b in st.blocks if b.skip == "scaled"} == {0.3}
    assert {b.scale for st in apply("inception_v4", skip="scaled").stages for b in st.blocks if b.skip == "scaled"} == {0.2}
    v3 = apply("inception_v3", factorize="none")
    assert all(op.factor == "none" and op.mid is None for op in _ops(v3) if isinstance(op, Conv))
    stacked = apply("resnet50", factorize="stacked")
    assert stacked.stem[0].branches[0].ops[0].factor == "stacked"  # the 7x7 as three 3x3s
    asym = [op for op in _ops(apply("vgg11", factorize="asymmetric")) if isinstance(op, Conv)]
    assert all(op.factor == "asymmetric" for op in asym)
    sep = apply("resnet18", separable="on")
    assert not sep.stem[0].branches[0].ops[0].separable and sum(op.separable for op in _ops(sep) if isinstance(op, Conv)) == 16
    assert not any(op.separable for op in _ops(apply("xception", separable="off")) if isinstance(op, Conv))
    lrn = apply("resnet50", norm="lrn")
    assert not any(getattr(op, "norm", "none") == "batch" for op in _ops(lrn) if isinstance(op, Conv))
    assert sum(op.op == "norm" for op in _ops(lrn)) == 2
    nobn = apply("inception_v3", norm="none")
    assert all(op.bias for op in _ops(nobn) if isinstance(op, Conv))
    assert apply("inception_resnet_v2", norm="batch").hash == get_genome("inception_resnet_v2").hash  # linear 1x1s stay linear
    avg = apply("alexnet", pool_kind="avg")
    assert all(op.kind == "avg" for op in _ops(avg) if isinstance(op, Pool) and op.adaptive is None)
    lenet = apply("lenet5", pool_kind="max", pool="overlap")
    assert [(op.kind, op.kernel, op.stride) for op in _ops(lenet) if isinstance(op, Pool)] == [("max", 3, 2), ("max", 3, 2)]
    gap = apply("vgg16", head="gap")
    assert gap.head.ops == (Pool("avg", adaptive=1), get_genome("vgg16").head.ops[-1])
    fc = apply("resnet18", head="fc", head_width=1024)
    assert [op.op for op in fc.head.ops] == ["pool", "dropout", "linear", "dropout", "linear"] and fc.head.ops[0].adaptive == 7
    assert apply("vgg16", aux="on").aux[0].stage == 3 and apply("inception_v3", aux="off").aux == ()
    wide = apply("resnet50", width=2)
    assert wide.stem[0].branches[0].ops[0].out == 128
    assert apply("resnext50_32x4d", width=0.3).stages[0].blocks[0].branches[0].ops[1].out % 32 == 0
    irv2 = apply("inception_resnet_v2", width=0.37)  # towers round on their own; the residual still adds up
    walk(irv2)


def test_depth_keeps_aux_heads_on_their_blocks() -> None:
    g = apply("inception_v1", depth="2,7,2")
    assert [a.block for a in g.aux] == [0, 3]
    assert sum(b.repeat for b in g.stages[1].blocks) == 8  # 4e repeats; the pool block stays
    v3 = apply("inception_v3", depth="3,7,3")
    assert v3.aux[0].block == -1 and sum(b.repeat for b in v3.stages[1].blocks) == 7  # still after the stage
    fewer = apply("inception_v3", depth="3,4,3")  # the last C module goes; the aux head follows the stage's end
    assert fewer.aux[0].block == -1 and len(fewer.stages[1].blocks) == 4


# --- the input knob: every network fits MNIST, digits, CIFAR and 64-pixel images ------------------
@pytest.mark.parametrize("inp", ["1x28", "1x32", "3x32", "3x64"])
@pytest.mark.parametrize("name", NAMES)
def test_input_fits_every_network(name: str, inp: str) -> None:
    g = apply(name, input=inp)
    c, s = map(int, inp.split("x"))
    assert g.input == Input(c, s)
    shapes = walk(g)
    assert min(shapes.head_in[1:]) >= 1
    train_step(shrink(g))


def test_input_adapts_stems_like_cifar_networks() -> None:
    r = apply("resnet50", input=32)
    assert r.stem[0].branches[0].ops == (Conv(64, 3, norm="batch", act="relu"),)  # 3x3/1, no max pool
    assert walk(r).head_in == (2048, 4, 4)
    assert walk(apply("resnet50", input=128)).stem == (64, 64, 64)  # keeps the stride-2 conv, drops the pool
    lenet = apply("lenet5", input="1x28")
    assert lenet.stages[0].blocks[0].branches[0].ops[0].padding is None and walk(lenet).head_in == (120, 1, 1)
    assert apply("lenet5", input="1x32").hash == get_genome("lenet5").hash
    vgg = apply("vgg16", input=28)  # 28 -> 14 -> 7 -> 3 -> 1: the fifth pool goes
    assert walk(vgg).head_in == (512, 1, 1) and vgg.head.ops[0].adaptive == 1
    v3 = apply("inception_v3", input="1x28")
    assert walk(v3).stem[1:] == (24, 24) and v3.aux[0].ops[0] == Pool("avg", adaptive=5)
    big = apply("alexnet", input=448)
    assert big.stem == get_genome("alexnet").stem and walk(big).head_in[1] == 13
    with pytest.raises(ValueError, match=r"input=1x4 on lenet5: even without any downsampling"):
        apply("lenet5", input=4)


def test_apply_builds_no_module(monkeypatch) -> None:
    """Knobs are pure dataclass rewrites of the genome: applying them to every network constructs no torch module
    (which is what keeps them fast enough to check every arm of a study before it starts)."""
    built = []
    init = torch.nn.Module.__init__

    def counting(self, *a, **k):
        built.append(type(self).__name__)
        init(self, *a, **k)

    monkeypatch.setattr(torch.nn.Module, "__init__", counting)
    out = [apply(name, skip="none", factorize="asymmetric", activation="gelu", norm="batch", input="1x28") for name in NAMES]
    assert built == [] and all(isinstance(g, Genome) for g in out)
    build(out[0], 10)
    assert built  # the counter sees a build: the assertion above can fail


# --- keep: re-solved widths hold params or FLOPs -----------------------------------------------------
def _measure(g: Genome, keep: str) -> int:
    c = complexity(g)
    return c.params - c.params_aux if keep == "params" else c.flops


@pytest.mark.parametrize(("name", "kw", "keep"), [
    ("resnet50", dict(bottleneck="off"), "flops"),
    ("resnet18", dict(depth=2), "params"),
    ("vgg11", dict(head="gap", input=32), "params"),
    ("inception_v1_2014", dict(factorize="asymmetric", aux="off"), "flops"),
    ("lenet5_common", dict(pool_kind="max", head="gap"), "params"),
])
def test_keep_holds_the_measure(name: str, kw: dict, keep: str) -> None:
    ref = apply(name, input=kw["input"]) if "input" in kw else get_genome(name)
    free = apply(name, **kw)
    held = apply(name, keep=keep, **kw)
    target = _measure(ref, keep)
    assert abs(_measure(free, keep) / target - 1) > 0.02  # the knobs alone move it
    assert abs(_measure(held, keep) / target - 1) <= 0.02
    assert held.name.endswith(f"+keep={keep}")
    if name != "lenet5_common":  # one channel of LeNet's C5 is about 1% of its params
        tight = apply(name, keep=keep, tol="0.005", **kw)
        assert abs(_measure(tight, keep) / target - 1) <= 0.005


def test_keep_refuses_what_it_cannot_solve() -> None:
    assert apply("lenet5", activation="relu", keep="flops").hash == apply("lenet5", activation="relu").hash  # nothing to do
    with pytest.raises(ValueError, match=r"keep='params' cannot re-solve the widths of lenet5.*connection table"):
        apply("lenet5", head="gap", keep="params")
    with pytest.raises(ValueError, match=r"keep='flops': no uniform width multiplier brings"):
        apply("resnet18", depth=2, keep="flops", tol=1e-9)
    with pytest.raises(ValueError, match=r"tol="):
        apply("resnet18", depth=2, keep="flops", tol=2)


def test_keep_respects_groups() -> None:
    g = apply("resnext50_32x4d", cardinality=64, group_width=4, keep="flops")
    assert all(op.out % op.groups == 0 for op in _ops(g) if isinstance(op, Conv))
    assert abs(complexity(g).flops / complexity("resnext50_32x4d").flops - 1) <= 0.02


def test_activations_all_train() -> None:
    for act in ACTIVATIONS[1:]:
        g = apply("resnet18", activation=act, input=32, width=1 / 16)
        assert {op.act for op in _ops(g) if isinstance(op, Conv)} <= {act, "none"}
        train_step(g)
    train_step(apply("lenet5_common", activation="relu", norm="batch"))


# --- the command line ---------------------------------------------------------------------------------
def test_describe_with_knobs(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["describe", "resnet50", "skip=none", "input=32"]) == 0
    out = capsys.readouterr().out
    assert "resnet50+skip=none+input=3x32" in out and "3x32x32" in out
    assert cli_main(["describe", "resnet50", "skp=none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown knob 'skp'; did you mean skip") and err.count("\n") == 1
    assert cli_main(["describe", "lenet5", "skip=identity"]) == 2
    assert "skip='identity' has no meaning on lenet5" in capsys.readouterr().err


def test_knobs_command(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["knobs"]) == 0
    out = capsys.readouterr().out
    assert all(f"{k}: " in out for k in knobs())
    assert cli_main(["knobs", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "skip=identity          refused  no stage block" in out and "activation=tanh        changed" in out
    assert "aux=off                same" in out
    assert cli_main(["knobs", "lenet6"]) == 2 and "unknown network 'lenet6'" in capsys.readouterr().err
    assert cli_main(["knobs", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "se=on                  changed" in out and "expand=4               changed" in out
    assert "dense=off              refused  it has no dense (concatenating) blocks" in out


def test_a_refused_knob_is_a_value_error_naming_the_knob_the_value_and_what_is_allowed() -> None:
    """Callers (the plan, the CLI) catch ``ValueError``: a bad value and a knob without meaning both reach them, naming
    the knob, the value and the allowed values, and the genome they were applied to is left as it was."""
    before = get_genome("resnet50").hash
    for knobs_, words in [({"skip": "sometimes"}, ["skip='sometimes' is not allowed", "none | identity | projection | scaled"]),
                          ({"cardinality": 8}, ["cardinality=8 has no meaning on lenet5", "an integer >= 1"])]:
        with pytest.raises(ValueError) as e:
            apply("resnet50" if "skip" in knobs_ else "lenet5", **knobs_)
        assert isinstance(e.value, KnobError) and all(w in str(e.value) for w in words), str(e.value)
    assert get_genome("resnet50").hash == before


def test_pool_geometry_keeps_every_output_size_or_refuses():
    """AlexNet's comparison (Sec. 3.4) holds the pools' outputs equal: every map after a pool keeps its size, at the
    input the network trains on (the pool knob applies after the input knob); where no padding or ceil mode can keep
    it, the knob refuses (no silent change of size)."""
    from nasplay.space.shapes import walk

    for name, size in (("alexnet", 15), ("vgg11", 16), ("inception_v1", 32)):
        base = apply(name, input=f"1x{size}")
        for value in ("overlap", "nonoverlap"):
            g = apply(name, pool=value, input=f"1x{size}")
            assert (walk(g).stem, walk(g).blocks) == (walk(base).stem, walk(base).blocks)  # every block's output shape
    with pytest.raises(KnobError, match=r"pool='nonoverlap' has no meaning on alexnet\+input=1,16: .*no padding or ceil mode "
                                        r"gives a 2x2 window at stride 2 the 7x7 output of its 16x16 input"):
        apply("alexnet", pool="nonoverlap", input="1x16")
