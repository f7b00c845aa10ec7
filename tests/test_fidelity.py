"""Fidelity to the references: params, FLOPs and outputs equal torchvision's / timm's, and the papers' counts.

Params and FLOPs are compared on the ``meta`` device (no memory, no compute). Outputs are compared on
reference modules whose weights are re-drawn (kaiming normal) and whose BatchNorm statistics are random:
at the libraries' default init (BN running stats 0 / 1 and tiny weights) activations fade away and
almost any network would "match".
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from nasplay.complexity import complexity
from nasplay.nn import layers as L
from nasplay.nn.build import Outputs, build
from nasplay.reference import from_reference, reference_model
from nasplay.space.genome import Genome
from nasplay.space.zoo import entry, get_genome, list_genomes

REF_NAMES = [n for n in list_genomes() if entry(n).reference]
WITH_AUX = ("inception_v1", "inception_v3")  # the references that have auxiliary heads


def trainable(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def flops(m: nn.Module, size: int) -> int:
    m.eval()
    with FlopCounterMode(display=False) as fc:
        m(torch.empty(1, 3, size, size, device="meta"))
    return int(fc.get_total_flops())


# --- params and FLOPs (meta device) ------------------------------------------------------------------
@pytest.mark.parametrize("name", REF_NAMES)
def test_params_and_flops_equal_the_reference(name: str) -> None:
    """complexity() counts the built module (test_complexity checks that); here it meets the reference."""
    g = get_genome(name)
    c = complexity(g)
    with torch.device("meta"):
        ref = reference_model(name)
    assert trainable(ref) == c.params
    assert flops(ref, g.input.size) == c.flops
    if name in WITH_AUX:  # and without the aux heads
        bare = complexity(g.replace(aux=()))
        with torch.device("meta"):
            ref = reference_model(name, aux=False)
        assert trainable(ref) == bare.params == c.params - c.params_aux
        assert flops(ref, g.input.size) == bare.flops == c.flops
    else:
        assert not g.aux and c.params_aux == 0


# The table of ../shared/reference/architectures.md: params without / with aux, FLOPs, conv + linear layers.
TABLE = {
    "lenet5": (60_000, 60_000, 653_040, 5),
    "alexnet": (61_100_840, 61_100_840, 1_428_376_960, 8),
    "vgg16": (138_357_544, 138_357_544, 30_940_528_640, 16),
    "inception_v1": (6_624_904, 13_004_888, 2_996_752_384, 58),
    "inception_v3": (23_834_568, 27_161_264, 11_426_432_192, 95),
    "resnet50": (25_557_032, 25_557_032, 8_178_368_512, 54),
    "xception": (22_855_952, 22_855_952, 16_714_806_992, 75),
    "inception_v4": (42_679_816, 42_679_816, 24_507_949_248, 150),
    "inception_resnet_v2": (55_843_464, 55_843_464, 26_311_588_032, 245),
    "resnext50_32x4d": (25_028_904, 25_028_904, 8_460_959_744, 54),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_reference_table(name: str) -> None:
    bare, with_aux, fl, layers = TABLE[name]
    c = complexity(name)
    assert (c.params - c.params_aux, c.params, c.flops) == (bare, with_aux, fl)
    assert c.layers["conv"] + c.layers["linear"] == layers


def _ungrouped(g: Genome) -> Genome:
    def walk(x):
        if isinstance(x, dict):
            return {k: (1 if k == "groups" and x.get("op") == "conv" else walk(v)) for k, v in x.items()}
        return [walk(v) for v in x] if isinstance(x, list) else x

    return Genome.from_dict(walk(g.to_dict()))


# The papers' own variants: (params without aux, params with aux, FLOPs).
PAPERS = {
    "lenet5": (60_000, 60_000, 653_040),
    "lenet5_common": (61_706, 61_706, 833_040),
    "alexnet_2012": (60_965_224, 60_965_224, 1_448_813_632),
    "inception_v1_2014": (6_998_552, 13_378_280, 3_165_343_744),
    "resnet50_v1": (25_557_032, 25_557_032, 7_715_946_496),
}


@pytest.mark.parametrize("name", list(PAPERS))
def test_paper_variants(name: str) -> None:
    bare, with_aux, fl = PAPERS[name]
    c = complexity(name)
    assert (c.params - c.params_aux, c.params, c.flops) == (bare, with_aux, fl)


def test_alexnet_2012_single_tower() -> None:
    g = _ungrouped(get_genome("alexnet_2012"))
    assert g != get_genome("alexnet_2012")
    c = complexity(g)
    assert (c.params, c.flops) == (62_378_344, 2_270_512_192)


def test_lenet5_layers_as_published() -> None:
    """C1 156, S2 12, C3 1,516 (the partial table), S4 32, C5 48,120, F6 10,164; 840 fixed RBF centres."""
    net = build("lenet5")
    weighted = (nn.Conv2d, nn.Linear, L.TableConv2d, L.Subsample)
    per_layer = [trainable(m) for m in net.modules() if isinstance(m, weighted)]
    assert per_layer == [156, 12, 1_516, 32, 48_120, 10_164]
    (rbf,) = [m for m in net.modules() if isinstance(m, L.RBFOutput)]
    assert rbf.centres.shape == (10, 84) and not rbf.centres.requires_grad
    assert set(rbf.centres.unique().tolist()) == {-1.0, 1.0}
    assert "head.2.centres" in net.state_dict()  # a buffer: saved with the weights, never trained
    assert trainable(net) == 60_000


# --- outputs (real modules, weights transferred) -------------------------------------------------------
def randomise(m: nn.Module) -> nn.Module:
    """Re-draw weights so that activations neither vanish nor saturate, and make BN statistics random."""
    torch.manual_seed(0)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(mod.weight)
                if mod.bias is not None:
                    mod.bias.uniform_(-0.1, 0.1)
            elif isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
            # ConvNeXt's layer scale starts at 1e-6: left there, its blocks would add nothing to compare
            if isinstance(getattr(mod, "layer_scale", None), nn.Parameter):
                mod.layer_scale.uniform_(0.5, 1.5)
    return m


# Train mode once per generator: the other names differ from these only in widths and depths.
TRAIN_NAMES = ("alexnet", "vgg16", "inception_v1", "inception_v3", "resnet18", "resnet50", "resnext50_32x4d",
               "xception", "inception_v4", "inception_resnet_v2")


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest) -> tuple[str, nn.Module]:
    """One randomised reference per network (pytest groups the tests of a network together)."""
    return request.param, randomise(reference_model(request.param)).eval()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max()).item()


def _meaningful(logits: torch.Tensor) -> None:
    assert torch.isfinite(logits).all()
    assert logits.std() > 1e-3 * logits.abs().max()  # not a constant vector: the comparison can fail


@pytest.mark.slow  # full-size networks at their native input
@pytest.mark.parametrize("reference", REF_NAMES, indirect=True)
def test_eval_outputs_equal_the_reference(reference: tuple[str, nn.Module]) -> None:
    name, ref = reference
    size = get_genome(name).input.size
    ours = from_reference(name, ref)
    assert not ours.training and len(ours.aux) == len(get_genome(name).aux)
    assert trainable(ours) == trainable(ref)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    _meaningful(expected)
    assert got.shape == expected.shape == (1, 1000)
    assert rel_diff(expected, got) <= 1e-5


@pytest.mark.slow  # full-size networks at their native input
@pytest.mark.parametrize("reference", TRAIN_NAMES, indirect=True)
def test_train_outputs_equal_the_reference(reference: tuple[str, nn.Module]) -> None:
    """Train mode: BatchNorm on batch statistics, the same dropout masks, and the aux heads' outputs."""
    name, ref = reference
    size = get_genome(name).input.size
    ref.train()
    try:
        ours = from_reference(name, ref)
        assert ours.training
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            torch.manual_seed(3)
            expected = ref(x)
            torch.manual_seed(3)
            got = ours(x)
    finally:
        ref.eval()
    if name in WITH_AUX:
        assert isinstance(got, Outputs)
        # torchvision returns (logits, aux2, aux1) for GoogLeNet and (logits, aux) for Inception-v3
        ref_aux = (expected[2], expected[1]) if name == "inception_v1" else (expected[1],)
        expected = expected[0]
        assert len(got.aux) == len(ref_aux)
        for e, o in zip(ref_aux, got.aux):
            _meaningful(e)
            assert rel_diff(e, o) <= 1e-5
        got = got.logits
    _meaningful(expected)
    assert rel_diff(expected, got) <= 1e-5


class OpCounter(TorchDispatchMode):
    """Counts the aten operators a forward + backward runs."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def _ops(m: nn.Module, x: torch.Tensor) -> Counter[str]:
    with OpCounter() as oc:
        out = m.train()(x)
        outs = [out] if isinstance(out, torch.Tensor) else [out[0], *(out[1] if isinstance(out, Outputs) else out[1:])]
        sum(o.sum() for o in outs).backward()
    return oc.counts


@pytest.mark.parametrize("name", TRAIN_NAMES)
def test_same_operations_as_the_reference(name: str) -> None:
    """Same speed needs the same work: a training step runs the reference's aten operators, as many times.

    Ours may run an activation in place where the reference does not (one allocation less), never the reverse.
    """
    with torch.device("meta"):
        ref = reference_model(name)
        ours = from_reference(name, ref)
        x = torch.empty(2, 3, get_genome(name).input.size, get_genome(name).input.size)
    theirs, mine = _ops(ref, x), _ops(ours, x)
    for op in ("relu", "elu", "leaky_relu", "silu", "add"):
        assert mine[op + "_"] >= theirs[op + "_"], op
        for c in (mine, theirs):
            c[op] += c.pop(op + "_", 0)
    assert mine == theirs


@pytest.mark.parametrize("name", WITH_AUX)
def test_reference_without_aux_heads(name: str) -> None:
    """A reference built with aux_logits=False gives a network without aux heads, with the same outputs."""
    ref = randomise(reference_model(name, aux=False)).eval()
    ours = from_reference(name, ref)
    assert len(ours.aux) == 0 and trainable(ours) == trainable(ref)
    size = get_genome(name).input.size
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert rel_diff(ref(x), ours(x)) <= 1e-5


def test_from_reference_refuses_another_architecture() -> None:
    import torchvision

    with pytest.raises(ValueError, match="shape mismatch|not the same architecture"):
        from_reference("resnet50", torchvision.models.resnet101(weights=None))
    with pytest.raises(ValueError, match="shape mismatch|not the same architecture"):
        from_reference("resnext50_32x4d", torchvision.models.resnet50(weights=None))


def test_reference_model_only_for_networks_with_a_reference() -> None:
    with pytest.raises(ValueError, match="lenet5: no torchvision or timm implementation"):
        reference_model("lenet5")


# --- the decade after the ten (issue 14): also at another size, and in training with stochastic depth ---------
DECADE = {  # the libraries' parameter counts
    "densenet121": 7_978_856, "seresnet50": 28_088_024, "mobilenet_v1": 4_231_976, "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548, "regnet_y_400mf": 4_344_144, "convnext_tiny": 28_589_128,
}
SMALL = 64  # another size, small enough for every test to stay fast on a CPU
# Native-size FLOPs as FlopCounterMode counts them on the references (a multiply-add is 2).
DECADE_FLOPS = {
    "densenet121": 5_668_323_328, "seresnet50": 8_183_398_400, "mobilenet_v1": 1_137_480_704,
    "mobilenet_v2": 601_548_544, "efficientnet_b0": 771_629_504, "regnet_y_400mf": 803_685_696,
    "convnext_tiny": 8_911_062_528,
}


def test_the_decade_is_registered_with_its_references() -> None:
    assert set(DECADE) <= set(REF_NAMES)
    assert {n: (complexity(n).params, complexity(n).flops) for n in DECADE} == {
        n: (DECADE[n], DECADE_FLOPS[n]) for n in DECADE}


@pytest.mark.parametrize("name", list(DECADE))
def test_params_and_flops_at_another_size(name: str) -> None:
    c = complexity(name, input_size=SMALL)
    with torch.device("meta"):
        ref = reference_model(name)
    assert trainable(ref) == c.params == DECADE[name]
    assert flops(ref, SMALL) == c.flops < DECADE_FLOPS[name] / 10


@pytest.mark.parametrize("reference", list(DECADE), indirect=True)
def test_outputs_at_another_size_in_eval_and_training(reference: tuple[str, nn.Module]) -> None:
    """Eval, then train mode (batch statistics, dropout and stochastic depth drawing the same random numbers)."""
    name, ref = reference
    ours = from_reference(name, ref)
    x = torch.randn(1, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    _meaningful(expected)
    assert rel_diff(expected, got) <= 1e-5
    ref.train()
    ours.train()
    try:
        x = torch.randn(4, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            torch.manual_seed(3)
            expected = ref(x)
            torch.manual_seed(3)
            got = ours(x)
            torch.manual_seed(4)
            other = ours(x)
    finally:
        ref.eval()
    _meaningful(expected)
    assert rel_diff(expected, got) <= 1e-5
    # where the network draws random numbers in training (dropout, stochastic depth) another seed differs
    random = any(isinstance(m, nn.Dropout) and m.p > 0 for m in ours.modules()) or any(
        getattr(m, "drop_path", 0) for m in ours.modules())
    assert (rel_diff(expected, other) > 1e-3) == random
