"""The genome: round trips through dicts / YAML / JSON / OmegaConf, the stable hash, and validation errors."""

from __future__ import annotations

import json
import re

import pytest
import torch

from nasplay.complexity import complexity
from nasplay.nn.build import build
from nasplay.space.genome import (
    Act,
    Aux,
    Block,
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
    Subsample,
)
from nasplay.space.validate import validate
from nasplay.space.zoo import get_genome, list_genomes

NAMES = list_genomes()


# --- round trips -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_round_trips(name: str) -> None:
    g = get_genome(name)
    copies = {
        "dict": Genome.from_dict(g.to_dict()),
        "dict(defaults)": Genome.from_dict(g.to_dict(defaults=True)),
        "json": Genome.from_json(g.to_json()),
        "yaml": Genome.from_yaml(g.to_yaml()),
    }
    for how, h in copies.items():
        assert h == g, how
        assert h.hash == g.hash, how
        assert hash(h) == hash(g), how  # lists came back as tuples: usable as a cache key
    # JSON holds only plain types, and nothing is lost on the way
    assert json.loads(g.to_json()) == g.to_dict()


def test_round_trip_through_omegaconf() -> None:
    """Hydra hands genomes over as DictConfigs: they must come back equal."""
    from omegaconf import OmegaConf

    for name in ("lenet5", "inception_v3", "inception_resnet_v2"):
        g = get_genome(name)
        cfg = OmegaConf.create(g.to_dict())
        assert Genome.from_dict(OmegaConf.to_container(cfg, resolve=True)) == g


def test_to_dict_omits_defaults() -> None:
    d = get_genome("resnet18").to_dict()
    conv = d["stem"][0]["branches"][0]["ops"][0]
    assert conv == {"op": "conv", "out": 64, "kernel": 7, "stride": 2, "padding": 3, "norm": "batch", "act": "relu"}
    assert "bn_eps" not in d and "classes" not in d


def test_hand_written_yaml_builds() -> None:
    text = """
name: tiny
input: {channels: 1, size: 20}
classes: 7
stem:
  - branches: [{ops: [{op: conv, out: 8, kernel: [1, 3], norm: batch, act: relu}]}]
stages:
  - name: towers
    blocks:
      - branches:
          - ops: [{op: conv, out: 4, kernel: 1}]
          - ops: [{op: conv, out: 4, kernel: 1}]
            split:
              - ops: [{op: conv, out: 2, kernel: [1, 3]}]
              - ops: [{op: conv, out: 2, kernel: [3, 1]}]
        skip: identity
        post: [{op: act, fn: gelu}]
        repeat: 2
head:
  ops: [{op: pool, kind: avg, adaptive: 1}, {op: dropout, p: 0.1}]
"""
    g = Genome.from_yaml(text)
    assert g.stem[0].branches[0].ops[0].kernel == (1, 3)
    assert Genome.from_yaml(g.to_yaml()) == g
    out = build(g).eval()(torch.randn(2, 1, 20, 20))
    assert out.shape == (2, 7)


# --- the hash ----------------------------------------------------------------------------------------
def test_hash_is_stable() -> None:
    """Regression guard: the hash identifies architectures in W&B runs and result tables across versions."""
    assert get_genome("lenet5").hash == "55c1919f7be4"
    assert get_genome("resnet50").hash == "8adde4838072"
    assert get_genome("inception_v3").hash == "38d95da1ee62"


def test_hash_is_one_per_network_however_it_is_spelt() -> None:
    """kernel=3 and kernel=(3, 3) build the same layers, as do a pooling's stride=None and stride=kernel."""

    def square(d):  # every int kernel spelt as a pair
        if isinstance(d, dict):
            return {k: [v, v] if k == "kernel" and isinstance(v, int) else square(v) for k, v in d.items()}
        return [square(v) for v in d] if isinstance(d, list) else d

    for name in ("vgg11", "inception_v3"):
        g = get_genome(name)
        spelt = Genome.from_dict(square(g.to_dict(defaults=True)))
        assert spelt != g and spelt.hash == g.hash, name

    def net(*ops) -> Genome:
        return Genome("n", (), (Stage((Block((Branch(ops),)),)),), Head(()))

    assert net(Pool("max", 3, None, 1)).hash == net(Pool("max", (3, 3), 3, 1)).hash
    assert net(Pool("max", 3, 2, 1)).hash != net(Pool("max", 3, None, 1)).hash  # another stride is another network
    assert net(Conv(8, (1, 3))).hash != net(Conv(8, (3, 1))).hash


def test_hash_ignores_name_and_tells_networks_apart() -> None:
    g = get_genome("resnet50")
    assert g.replace(name="something else").hash == g.hash
    assert re.fullmatch(r"[0-9a-f]{12}", g.hash)
    hashes = {get_genome(n).hash for n in NAMES}
    assert len(hashes) == len(NAMES)


def _leaves(d, path=()):
    """Paths of every scalar in a plain genome dict (the ``op`` tags excepted)."""
    if isinstance(d, dict):
        for k, v in d.items():
            if k != "op":
                yield from _leaves(v, (*path, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _mutated(d, path):
    d = json.loads(json.dumps(d))
    *parents, last = path
    node = d
    for p in parents:
        node = node[p]
    v = node[last]
    if isinstance(v, bool):
        node[last] = not v
    elif isinstance(v, (int, float)):
        node[last] = v * 2 + 1
    elif isinstance(v, str):
        node[last] = v + "x"
    elif v is None:
        node[last] = 1
    else:  # pragma: no cover
        raise TypeError(v)
    return d


# A small genome where every field of every dataclass appears (defaults are written out too).
KITCHEN_SINK = Genome(
    name="sink",
    input=Input(3, 32),
    stem=(Block((Branch((Conv(8, 3, table=((0, 1),) * 8, bias=True, act="tanh"), Subsample(2, act="tanh"))),)),),
    stages=(
        Stage((
            Block((Branch((Conv(8, 3, separable=True, norm="batch"),)),
                   Branch((Conv(8, 1),), (Branch((Conv(4, 5, factor="asymmetric", mid=6),)), Branch((Pool("avg", 3, 1, 1),))))),
                  merge=(Conv(8, 1, bias=True), Norm("lrn")), skip="scaled", scale=0.2, post=(Act("relu"), Dropout(0.1)),
                  repeat=2, name="b"),
            Block((Branch((Conv(16, 3, 2, groups=2),)),), skip="projection", skip_norm="none"),
        ), "s"),
    ),
    head=Head((Pool("max", adaptive=1), Linear(10, act="relu")), output="linear"),
    aux=(Aux(0, 1, (Norm("batch"), Pool("avg", 2)), weight=0.5),),
    classes=5,
    bn_eps=1e-3,
)


@pytest.mark.parametrize("name", ["sink", "lenet5"])
def test_hash_changes_with_every_field(name: str) -> None:
    g = KITCHEN_SINK if name == "sink" else get_genome(name)
    validate(g)
    d = g.to_dict(defaults=True)
    leaves = [p for p in _leaves(d) if p != ("name",)]
    assert len(leaves) > 40
    for path in leaves:
        assert Genome.from_dict(_mutated(d, path)).hash != g.hash, path


def test_hash_changes_with_structure() -> None:
    g = KITCHEN_SINK
    assert g.replace(aux=()).hash != g.hash
    assert g.replace(stages=g.stages[:1] + g.stages[:1]).hash != g.hash
    b = g.stages[0].blocks[0]
    fewer = b.__class__(b.branches[:1], b.merge, b.skip, b.scale, b.skip_norm, b.post, b.repeat, b.name)
    assert g.replace(stages=(Stage((fewer, *g.stages[0].blocks[1:]), "s"),)).hash != g.hash


# --- validation ----------------------------------------------------------------------------------------
def _net(*blocks: Block, size: int = 32, channels: int = 3, **kw) -> Genome:
    return Genome("bad", stem=(), stages=(Stage(tuple(blocks)),), input=Input(channels, size), **kw)


def _seq(*ops, **kw) -> Block:
    return Block((Branch(tuple(ops)),), **kw)


OK = _seq(Conv(8, 3, act="relu"))

# id -> (genome, the field path the message must start with, a fragment naming what is allowed)
BAD: dict[str, tuple[Genome, str, str]] = {
    "groups": (
        Genome("bad", stem=(), input=Input(3, 32), stages=(
            Stage((OK,)), Stage((OK,)),
            Stage((Block((Branch((Conv(8, 1),)), Branch((Conv(10, 3, groups=4),)))),)),
        )),
        "stages[2].blocks[0].branches[1].ops[0].groups", "must divide the input (8), output (10)"),
    "kernel larger than the map": (_net(_seq(Conv(8, 7, padding=0)), size=5), "stages[0].blocks[0].branches[0].ops[0].kernel",
                                   "does not fit a 5-pixel map"),
    "pool larger than the map": (_net(OK, _seq(Pool("max", 9, 1)), size=8), "stages[0].blocks[1].branches[0].ops[0].kernel",
                                 "does not fit"),
    "vanishing map at a small input": (
        _net(*[_seq(Conv(8, 3, padding=0), Pool("max", 2)) for _ in range(3)], size=20),
        "stages[0].blocks[2].branches[0].ops[1].kernel", "use a larger input or the 'input' knob"),
    "unknown activation": (_net(_seq(Conv(8, 3, act="swish"))), "stages[0].blocks[0].branches[0].ops[0].act",
                           "allowed: none, relu, relu6, tanh"),
    "unknown standalone activation": (_net(OK, _seq(Act("mish"))), "stages[0].blocks[1].branches[0].ops[0].fn", "allowed:"),
    "identity skip on mismatched shapes": (_net(_seq(Conv(8, 3), skip="identity")), "stages[0].blocks[0].skip", "'projection'"),
    "scaled skip on a strided block": (_net(OK, _seq(Conv(8, 3, 2), skip="scaled")), "stages[0].blocks[1].skip", "'projection'"),
    "unknown skip": (_net(_seq(Conv(8, 3), skip="densest")), "stages[0].blocks[0].skip",
                     "allowed: none, identity, projection, scaled, dense"),
    "projection that no 1x1 can do": (_net(_seq(Conv(8, 3, padding=3), skip="projection")), "stages[0].blocks[0].skip",
                                      "no strided 1x1 projection"),
    "aux block index": (_net(OK, aux=(Aux(0, 3, ()),)), "aux[0].block", "must index one of the 1 blocks"),
    "aux stage index": (_net(OK, aux=(Aux(1, 0, ()),)), "aux[0].stage", "must index one of the 1 stages"),
    "aux weight": (_net(OK, aux=(Aux(0, 0, (), weight=-1.0),)), "aux[0].weight", ">= 0"),
    "aux op": (_net(OK, aux=(Aux(0, 0, (Linear(4), Pool("avg", 2))),)), "aux[0].ops[1]", "needs a feature map"),
    "linear in a block": (_net(OK, _seq(Linear(10))), "stages[0].blocks[1].branches[0].ops[0]", "belongs in the head"),
    "linear in a merge": (_net(Block((Branch(()),), merge=(Linear(3),))), "stages[0].blocks[0].merge[0]", "belongs in the head"),
    "table out of range": (_net(_seq(Conv(2, 3, table=((0, 1), (2, 3))))), "stages[0].blocks[0].branches[0].ops[0].table[1]",
                           "distinct input maps in 0..2"),
    "table of the wrong length": (_net(_seq(Conv(3, 3, table=((0,), (1,))))), "stages[0].blocks[0].branches[0].ops[0].table",
                                  "one tuple of input maps per output map (3)"),
    "table with groups": (_net(_seq(Conv(2, 3, groups=2, table=((0,), (1,))))), "stages[0].blocks[0].branches[0].ops[0].table",
                          "needs a plain conv"),
    "mid on a plain conv": (_net(_seq(Conv(8, 3, mid=4))), "stages[0].blocks[0].branches[0].ops[0].mid", "factor stacked"),
    "even kernel factorised": (_net(_seq(Conv(8, 4, factor="stacked"))), "stages[0].blocks[0].branches[0].ops[0].kernel",
                               "square odd kernel"),
    "unknown factor": (_net(_seq(Conv(8, 3, factor="winograd"))), "stages[0].blocks[0].branches[0].ops[0].factor",
                       "allowed: none, stacked, asymmetric, asymmetric_t"),
    "separable and factorised": (_net(_seq(Conv(8, 5, separable=True, factor="stacked"))),
                                 "stages[0].blocks[0].branches[0].ops[0].separable", "factor none"),
    "separable with groups": (_net(_seq(Conv(8, 3, separable=True, groups=2)), channels=4),
                              "stages[0].blocks[0].branches[0].ops[0].groups", "groups must be 1"),
    "zero channels": (_net(_seq(Conv(0, 3))), "stages[0].blocks[0].branches[0].ops[0].out", "integer >= 1"),
    "float stride": (_net(_seq(Conv(8, 3, 1.5))), "stages[0].blocks[0].branches[0].ops[0].stride", "integer >= 1"),
    "bad kernel type": (_net(_seq(Conv(8, "3"))), "stages[0].blocks[0].branches[0].ops[0].kernel", "integer or a pair"),
    "conv norm": (_net(_seq(Conv(8, 3, norm="lrn"))), "stages[0].blocks[0].branches[0].ops[0].norm",
                  "allowed: none, batch, layer"),
    "conv bias not a bool": (_net(_seq(Conv(8, 3, bias="yes"))), "stages[0].blocks[0].branches[0].ops[0].bias", "true or false"),
    "pool kind": (_net(_seq(Pool("lp", 2))), "stages[0].blocks[0].branches[0].ops[0].kind", "allowed: max, avg"),
    "pool padding": (_net(_seq(Pool("max", 3, 1, 2))), "stages[0].blocks[0].branches[0].ops[0].padding", "at most half the kernel"),
    "pool ceil not a bool": (_net(_seq(Pool("avg", 2, ceil="no"))), "stages[0].blocks[0].branches[0].ops[0].ceil", "true or false"),
    "norm kind": (_net(_seq(Norm("group"))), "stages[0].blocks[0].branches[0].ops[0].kind", "allowed: batch, lrn"),
    "lrn alpha": (_net(_seq(Norm("lrn", alpha="big"))), "stages[0].blocks[0].branches[0].ops[0].alpha", "must be a number"),
    "dropout p": (_net(_seq(Dropout(1.0))), "stages[0].blocks[0].branches[0].ops[0].p", "[0, 1)"),
    "subsample larger than the map": (_net(_seq(Subsample(4)), size=3), "stages[0].blocks[0].branches[0].ops[0].kernel", "does not fit"),
    "concat of different sizes": (_net(Block((Branch((Conv(8, 3),)), Branch((Conv(8, 3, 2),))))), "stages[0].blocks[0].branches",
                                  "same spatial size"),
    "nested split of different sizes": (
        _net(Block((Branch((Conv(8, 1),), (Branch((Conv(4, 3),)), Branch((Pool("max", 2),)))),))),
        "stages[0].blocks[0].branches[0].split", "same spatial size"),
    "no branches": (_net(Block(())), "stages[0].blocks[0].branches", "at least one branch"),
    "repeat 0": (_net(_seq(Conv(8, 3), repeat=0)), "stages[0].blocks[0].repeat", "integer >= 1"),
    "scale not a number": (_net(_seq(Conv(3, 3), skip="scaled", scale="x")), "stages[0].blocks[0].scale", "must be a number"),
    "empty stage": (Genome("bad", stem=(), stages=(Stage(()),)), "stages[0].blocks", "at least one block"),
    "no stages": (Genome("bad", stem=(OK,), stages=()), "stages", "at least one stage"),
    "stem block": (Genome("bad", stem=(_seq(Conv(8, 3, groups=5)),), stages=(Stage((OK,)),)), "stem[0].branches[0].ops[0].groups",
                   "must divide"),
    "list instead of tuple": (_net(Block([Branch((Conv(8, 3),))])), "stages[0].blocks[0].branches", "must be a tuple"),
    "conv in the head after flattening": (_net(OK, head=Head((Linear(10), Conv(3, 1)))), "head.ops[1]", "needs a feature map"),
    "head output": (_net(OK, head=Head((), output="softmax")), "head.output", "allowed: linear, rbf"),
    "input size": (_net(OK, size=0), "input.size", "integer >= 1"),
    "input channels": (_net(OK, channels=-1), "input.channels", "integer >= 1"),
    "classes": (_net(OK, classes=0), "num_classes", "integer >= 1"),
    "bn_eps": (_net(OK, bn_eps=0.0), "bn_eps", "positive float"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_validation_names_the_field(case: str) -> None:
    genome, path, allowed = BAD[case]
    for check in (validate, build, complexity):  # validation runs before any torch module exists
        with pytest.raises(ValueError) as e:
            check(genome)
        msg = str(e.value)
        assert msg.startswith(path + ": "), f"{check.__name__}: {msg}"
        assert allowed in msg, msg


def test_validation_at_the_input_the_caller_asks_for() -> None:
    """A network valid at 224 pixels is refused at 16 with the path of the op where the map vanishes."""
    with pytest.raises(ValueError, match=r"^stages\[\d+\]\.blocks\[\d+\]\.branches\[\d+\]\.ops\[\d+\]\.kernel: .*vanishes"):
        complexity("vgg16", input_size=16)
    with pytest.raises(ValueError, match=r"^(stem|stages)\[\d+\].*: the feature map vanishes"):
        build(get_genome("inception_v3").replace(input=Input(3, 64)))


def test_every_zoo_genome_validates() -> None:
    for name in NAMES:
        assert validate(get_genome(name)) is get_genome(name)


# --- errors from dicts --------------------------------------------------------------------------------
def _resnet_dict() -> dict:
    return get_genome("resnet18").to_dict()


def _with(d: dict, path: tuple, value) -> dict:
    node = d
    for p in path[:-1]:
        node = node[p]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


OP0 = ("stages", 1, "blocks", 0, "branches", 0, "ops", 0)
BAD_DICTS = {
    "unknown op": (OP0 + ("op",), "deconv", "stages[1].blocks[0].branches[0].ops[0].op", "allowed: ['act', 'conv'"),
    "op without a tag": (OP0, {"out": 3}, "stages[1].blocks[0].branches[0].ops[0]", "'op' key"),
    "unknown field of an op": (OP0 + ("dilation",), 2, "stages[1].blocks[0].branches[0].ops[0].dilation", "allowed: out, kernel"),
    "unknown field of a block": (("stages", 0, "blocks", 0, "shortcut"), "yes", "stages[0].blocks[0].shortcut", "allowed: branches"),
    "unknown field of the genome": (("depth",), 18, "depth", "allowed: name, stem, stages"),
    "missing field": (OP0 + ("out",), KeyError, "stages[1].blocks[0].branches[0].ops[0].out", "required"),
    "a list expected": (("stages", 0, "blocks"), {"branches": []}, "stages[0].blocks", "expected a list"),
    "a mapping expected": (("head",), [1, 2], "head", "expected a mapping"),
}


@pytest.mark.parametrize("case", list(BAD_DICTS))
def test_from_dict_names_the_field(case: str) -> None:
    path, value, field, allowed = BAD_DICTS[case]
    d = _with(_resnet_dict(), path, value)
    with pytest.raises(ValueError) as e:
        Genome.from_dict(d)
    assert str(e.value).startswith(field + ": "), str(e.value)
    assert allowed in str(e.value)


def test_from_dict_then_validation_names_the_field() -> None:
    """Values of the wrong kind pass the dataclass constructor but not validation."""
    d = _with(_resnet_dict(), OP0 + ("kernel",), [3, 3, 3])
    with pytest.raises(ValueError, match=r"^stages\[1\]\.blocks\[0\]\.branches\[0\]\.ops\[0\]\.kernel: must be an integer or a pair"):
        build(Genome.from_dict(d))


# --- shape inference -----------------------------------------------------------------------------------
def test_aux_head_on_a_repeated_reducing_block() -> None:
    """Each copy of a repeated block has its own output shape; an aux head fed by an early copy sees that one."""
    g = _net(_seq(Conv(8, 3, 2, act="relu"), repeat=3), aux=(Aux(0, 0, (Conv(4, 1),)), Aux(0, -2, ())), classes=5)
    net = build(g)
    out = net(torch.randn(2, 3, 32, 32))
    assert out.logits.shape == (2, 5) and [a.shape for a in out.aux] == [(2, 5), (2, 5)]
    assert net.aux[0][-1].in_features == 4 * 16 * 16 and net.aux[1][-1].in_features == 8 * 8 * 8
    assert complexity(g).params == sum(p.numel() for p in net.parameters())


def test_a_stacked_factorisation_of_a_3x3_is_the_plain_conv_it_computes():
    """(n-1)/2 stacked 3x3 convs for n = 3 is one 3x3 conv: the genome (and its hash) says so, so that a 7x7 stem
    factorised and then shrunk to 3x3 for a small input is the same architecture as the unfactorised network."""
    from nasplay.complexity import resolve
    from nasplay.space.genome import Conv

    assert Conv(8, kernel=3, factor="stacked", mid=4) == Conv(8, kernel=3)
    assert Conv(8, kernel=5, factor="stacked").factor == "stacked" and Conv(8, kernel=3, factor="asymmetric").factor == "asymmetric"
    small = (1, 32, 10)
    assert resolve("resnet50", {"width": 0.125, "factorize": "stacked"}, small).hash == resolve("resnet50", {"width": 0.125}, small).hash
    assert resolve("lenet5", {"factorize": "stacked"}, small).hash != resolve("lenet5", {}, small).hash  # its 5x5s do stack
