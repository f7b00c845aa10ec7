"""Property tests: random genomes either build, run forward and backward with the right shapes and no NaN,
or are refused by validation with a ``ValueError`` that starts with the bad field's path. Nothing else.

Two families of draws: *shaped* genomes are built like real networks (size-preserving towers, reduction
blocks, residual blocks that end at the network's width) so that most of them build; *wild* genomes take
any value of any field, bad ones included, so that most are refused. Draws are derandomised (the same
examples every run) and small (16-40 pixel inputs, batch 2). ``NASPLAY_FUZZ_EXAMPLES=2500
NASPLAY_FUZZ_RANDOM=1 pytest tests/test_fuzz.py`` fuzzes at scale with fresh draws (``scripts/fuzz.sh``).
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasplay.complexity import complexity
from nasplay.nn.build import Outputs, build
from nasplay.space.genome import (
    CONV_FACTORS,
    POOL_KINDS,
    SKIPS,
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
from nasplay.space.validate import ACTIVATIONS

pytestmark = pytest.mark.slow  # hundreds of random networks trained a step

FIELD_PATH = re.compile(r"^(stem|stages|head|aux|input|num_classes|bn_eps)[\[\.:]")
EXAMPLES = int(os.environ.get("NASPLAY_FUZZ_EXAMPLES", "60"))  # per family; knob combinations get half
FUZZ = settings(max_examples=EXAMPLES, derandomize=not os.environ.get("NASPLAY_FUZZ_RANDOM"), database=None,
                deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
ACTS = [a for a in ACTIVATIONS if a != "none"]


# --- shaped genomes: real-network structure, random details ----------------------------------------
@st.composite
def conv(draw, out: int | None = None, *, stride: int = 1) -> Conv:
    """A conv that keeps the map size at stride 1 (odd kernels, 'same' padding), with any factorisation."""
    out = out or draw(st.sampled_from([4, 8, 8, 16]))
    kind = draw(st.sampled_from(["plain", "plain", "plain", "separable", "factor", "table"]))
    act, norm = draw(st.sampled_from(["none", "relu", "relu", *ACTS])), draw(st.sampled_from(["none", "batch"]))
    if kind == "factor":
        return Conv(out, draw(st.sampled_from([3, 5, 7])), stride, factor=draw(st.sampled_from(CONV_FACTORS[1:])),
                    mid=draw(st.sampled_from([None, 4, 8])), groups=draw(st.sampled_from([1, 1, 2])), norm=norm, act=act)
    if kind == "table":  # LeNet's C3: each output map reads a few of the (>= 3) input maps
        rows = tuple(tuple(sorted(draw(st.sets(st.integers(0, 2), min_size=1, max_size=3)))) for _ in range(out))
        return Conv(out, draw(st.sampled_from([1, 3])), stride, table=rows, bias=draw(st.booleans()), act=act)
    k = draw(st.sampled_from([1, 3, 3, 5, (1, 3), (3, 1), (1, 5)]))
    return Conv(out, k, stride, groups=draw(st.sampled_from([1, 1, 1, 2, 4])) if kind == "plain" else 1,
                separable=kind == "separable", bias=draw(st.booleans()), norm=norm, act=act)


def same_size_ops() -> st.SearchStrategy:
    return st.one_of(
        conv(), conv(), conv(),
        st.builds(Pool, kind=st.sampled_from(POOL_KINDS), kernel=st.just(3), stride=st.just(1), padding=st.just(1),
                  count_include_pad=st.booleans()),
        st.builds(Act, fn=st.sampled_from(ACTS)),
        st.builds(Norm, kind=st.sampled_from(["batch", "lrn"]), size=st.sampled_from([3, 5])),
        st.builds(Dropout, p=st.sampled_from([0.0, 0.2])),
        st.builds(Subsample, kernel=st.just(1), act=st.sampled_from(["none", "tanh"])),
    )


def shaped_branch(depth: int = 0) -> st.SearchStrategy[Branch]:
    split = st.just(()) if depth else st.one_of(st.just(()), st.just(()), st.lists(shaped_branch(1), min_size=2, max_size=3)
                                                .map(tuple))
    return st.builds(Branch, ops=st.lists(same_size_ops(), max_size=3).map(tuple), split=split)


@st.composite
def shaped_block(draw, width: int) -> Block:
    kind = draw(st.sampled_from(["towers", "residual", "residual", "reduce"]))
    if kind == "reduce":  # the only place a map shrinks: a strided conv or a pooling, with an optional projection
        op = draw(st.one_of(conv(stride=2), st.builds(Pool, kind=st.sampled_from(POOL_KINDS), kernel=st.sampled_from([2, 3]),
                                                       stride=st.just(2), padding=st.sampled_from([0, 1]), ceil=st.booleans())))
        if isinstance(op, Pool) and op.kernel == 2:
            op = Pool(op.kind, 2, 2, 0, op.ceil)
        return Block((Branch((op,)),), skip=draw(st.sampled_from(["none", "projection"])),
                     post=draw(st.lists(st.builds(Act, fn=st.sampled_from(ACTS)), max_size=1).map(tuple)))
    branches = tuple(draw(st.lists(shaped_branch(), min_size=1, max_size=3)))
    if kind == "towers":
        return Block(branches, skip=draw(st.sampled_from(["none", "projection"])), repeat=draw(st.sampled_from([1, 1, 2])))
    # residual: the branches are projected back to the network's width, then added (ResNet / Inception-ResNet)
    return Block(branches, merge=(draw(conv(width)),), skip=draw(st.sampled_from(["identity", "scaled", "projection"])),
                 scale=draw(st.sampled_from([0.1, 0.2, 1.0])), skip_norm=draw(st.sampled_from(["batch", "none"])),
                 post=draw(st.lists(st.builds(Act, fn=st.sampled_from(ACTS)), max_size=1).map(tuple)),
                 repeat=draw(st.sampled_from([1, 1, 2, 3])))


def head_ops() -> st.SearchStrategy[tuple]:
    gap = st.builds(Pool, kind=st.sampled_from(POOL_KINDS), adaptive=st.sampled_from([1, 2]))
    fc = st.builds(Linear, out=st.sampled_from([8, 16]), act=st.sampled_from(["none", "relu", "tanh"]))
    drop = st.builds(Dropout, p=st.sampled_from([0.0, 0.5]))
    return st.one_of(st.tuples(gap), st.tuples(gap, drop), st.tuples(gap, fc, drop), st.tuples(conv(), gap, fc), st.just(()))


@st.composite
def shaped_genomes(draw) -> Genome:
    width = draw(st.sampled_from([4, 8]))
    stem = (Block((Branch((draw(conv(width)),)),)),)  # the first block maps the input to the network's width
    n_stages = draw(st.integers(1, 3))
    stages = tuple(Stage(tuple(draw(st.lists(shaped_block(width), min_size=1, max_size=3)))) for _ in range(n_stages))
    aux = draw(st.lists(st.builds(Aux, stage=st.integers(-n_stages, n_stages - 1), block=st.just(0), ops=head_ops()),
                        max_size=2))
    return Genome("shaped", stem, stages, Head(draw(head_ops()), output=draw(st.sampled_from(["linear", "linear", "rbf"]))),
                  tuple(aux), Input(draw(st.sampled_from([3, 4])), draw(st.integers(16, 40))), draw(st.integers(1, 10)),
                  draw(st.sampled_from([1e-5, 1e-3])))


# --- wild genomes: any value of any field ----------------------------------------------------------
def odd_values(on: bool):
    """``mostly(usual, odd, n)``: usually ``usual``, one time in ``n`` ``odd`` (out of range: refused deep in the
    tree too); with ``on`` false, only ``usual`` values (then the wild structure still builds now and then)."""

    def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy, n: int = 8) -> st.SearchStrategy:
        return st.integers(0, n - 1).flatmap(lambda i: odd if i == 0 else usual) if on else usual

    return mostly


def wild_ops(odd: bool, head: bool = False) -> st.SearchStrategy:
    """Any op; a linear layer only where it belongs (the head), unless ``odd``."""
    mostly = odd_values(odd)
    ints = st.integers(-1, 9)
    chans = mostly(st.sampled_from([2, 4, 6, 8]), ints)
    kernels = mostly(st.one_of(st.integers(1, 5), st.tuples(st.integers(1, 5), st.integers(1, 5))),
                     st.one_of(ints, st.tuples(ints, ints), st.just("3"), st.just((1, 2, 3))))
    small = mostly(st.integers(0, 2), ints)
    tables = st.lists(st.lists(st.integers(-1, 5), max_size=3).map(tuple), max_size=9).map(tuple)
    acts = mostly(st.sampled_from(ACTIVATIONS), st.just("swish"))
    convs = st.builds(Conv, out=chans, kernel=kernels, stride=mostly(st.integers(1, 2), st.sampled_from([0, 1.5])),
                      padding=st.one_of(st.none(), small, st.tuples(small, small)), groups=mostly(st.sampled_from([1, 1, 2]), ints),
                      bias=mostly(st.booleans(), st.just("yes")), separable=st.booleans(),
                      factor=mostly(st.sampled_from([*CONV_FACTORS, "none", "none"]), st.just("winograd")),
                      mid=st.one_of(st.none(), st.none(), chans), table=st.one_of(st.none(), st.none(), st.none(), tables),
                      norm=mostly(st.sampled_from(["none", "batch"]), st.just("layer")), act=acts)
    pools = st.builds(Pool, kind=mostly(st.sampled_from(POOL_KINDS), st.just("lp")), kernel=kernels,
                      stride=st.one_of(st.none(), mostly(st.integers(1, 3), ints)), padding=small,
                      ceil=mostly(st.booleans(), st.just("no")), count_include_pad=st.booleans(),
                      adaptive=st.one_of(st.none(), st.none(), st.none(), mostly(st.integers(1, 2), ints)))
    others = st.one_of(
        st.builds(Act, fn=acts),
        st.builds(Norm, kind=mostly(st.sampled_from(["batch", "lrn"]), st.just("group")), size=mostly(st.integers(1, 5), ints),
                  alpha=mostly(st.sampled_from([1e-4, 1e-2]), st.sampled_from([-1.0, "a"])),
                  beta=mostly(st.sampled_from([0.75, 0.5]), st.just(-0.5)), k=mostly(st.sampled_from([2.0, 1.0]), st.just(0.0))),
        st.builds(Dropout, p=mostly(st.sampled_from([0.0, 0.5]), st.sampled_from([1.0, -0.1, "p"]))),
        st.builds(Subsample, kernel=mostly(st.integers(1, 2), ints), act=acts),
    )
    if head or odd:
        others = others | st.builds(Linear, out=chans, bias=mostly(st.booleans(), st.just("no")), act=acts)
    return st.one_of(convs, convs, convs, pools, others)


def wild_branch(odd: bool, depth: int = 0) -> st.SearchStrategy[Branch]:
    split = st.just(()) if depth else st.one_of(st.just(()), st.lists(wild_branch(odd, 1), max_size=2).map(tuple))
    return st.builds(Branch, ops=st.lists(wild_ops(odd), max_size=3).map(tuple), split=split)


def wild_blocks(odd: bool) -> st.SearchStrategy[Block]:
    mostly = odd_values(odd)
    return st.builds(
        Block, branches=mostly(st.lists(wild_branch(odd), min_size=1, max_size=3).map(tuple), st.just(())),
        merge=st.lists(wild_ops(odd), max_size=1).map(tuple),
        skip=mostly(st.sampled_from([*SKIPS, "none", "none", "projection"]), st.just("dense"), 30),
        scale=mostly(st.sampled_from([1.0, 0.2]), st.sampled_from([-1.0, "x"]), 30),
        skip_norm=mostly(st.sampled_from(["batch", "none"]), st.just("lrn"), 30),
        post=st.lists(wild_ops(odd), max_size=2).map(tuple), repeat=mostly(st.integers(1, 2), st.just(0), 30))


@st.composite
def wild_genomes(draw, odd: bool) -> Genome:
    mostly = odd_values(odd)
    return Genome(
        "wild",
        stem=tuple(draw(st.lists(wild_blocks(odd), max_size=2))),
        stages=tuple(draw(mostly(st.lists(st.builds(Stage, mostly(st.lists(wild_blocks(odd), min_size=1, max_size=3), st.just([]), 30)
                                                    .map(tuple)), min_size=1, max_size=3), st.just([]), 30))),
        head=Head(tuple(draw(st.lists(wild_ops(odd, head=True), max_size=3))),
                  output=draw(mostly(st.sampled_from(["linear", "rbf"]), st.just("softmax")))),
        aux=tuple(draw(st.lists(st.builds(Aux, stage=st.integers(-4, 3), block=st.integers(-3, 3),
                                          ops=st.lists(wild_ops(odd, head=True), max_size=2).map(tuple),
                                          weight=mostly(st.just(0.3), st.sampled_from([-1.0, "w"]))), max_size=2))),
        input=Input(draw(mostly(st.integers(1, 4), st.integers(-1, 0), 30)),
                    draw(mostly(st.integers(16, 40), st.integers(-1, 15), 30))),
        classes=draw(mostly(st.integers(1, 10), st.integers(-1, 0), 30)),
        bn_eps=draw(mostly(st.just(1e-5), st.sampled_from([0.0, 1, "e"]), 30)),
    )


# --- the contract --------------------------------------------------------------------------------------
def check_contract(g: Genome) -> str:
    """Build and train one step, or be refused with a field path; return which."""
    try:
        net = build(g)
    except ValueError as e:
        assert FIELD_PATH.match(str(e)), f"refusal without a field path: {e}"
        return "refused"
    torch.manual_seed(0)
    x = torch.randn(2, g.input.channels, g.input.size, g.input.size)
    out = net.train()(x)
    logits, aux = (out.logits, out.aux) if isinstance(out, Outputs) else (out, ())
    assert len(aux) == len(g.aux)
    for t in (logits, *aux):
        assert t.shape == (2, g.classes)
        assert torch.isfinite(t).all()
    sum(t.pow(2).mean() for t in (logits, *aux)).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    with torch.no_grad():
        assert net.eval()(x).shape == (2, g.classes)
    c = complexity(g)
    assert c.params == sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert c.params_aux == sum(p.numel() for p in net.aux.parameters())
    return "built"


FAMILIES = {  # the draws, and how often each side of the contract must come up at least
    "shaped": (shaped_genomes, {"built": 25}),
    "wild": (lambda: wild_genomes(odd=True), {"refused": 50}),
    "wild_in_range": (lambda: wild_genomes(odd=False), {"built": 3, "refused": 30}),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_random_genomes_build_or_are_refused(family: str, one_thread: None) -> None:
    outcomes: Counter[str] = Counter()
    draws, at_least = FAMILIES[family]

    @FUZZ
    @given(draws())
    def check(g: Genome) -> None:
        outcomes[check_contract(g)] += 1

    check()
    # the draws exercise the side of the contract they are meant for
    assert all(outcomes[k] >= n for k, n in at_least.items()), outcomes


# --- knob combinations on zoo networks ------------------------------------------------------------------
# Values of every knob; a knob added to nasplay.knobs() must be added here too.
KNOB_VALUES: dict[str, list] = {
    "depth": [0.5, 2, "1,1,1,1", "2,1,1"],
    "bottleneck": ["on", "off"],
    "cardinality": [1, 2, 32],
    "group_width": [4, 8],
    "width": [0.25, 0.5],
    "separable": ["on", "off"],
    "branches": ["single", "multi"],
    "factorize": ["none", "stacked", "asymmetric"],
    "skip": ["none", "identity", "projection", "scaled"],
    "skip_scale": [0.1, 0.5],
    "activation": ACTS,
    "norm": ["none", "batch", "lrn", "layer"],
    "pool_kind": ["max", "avg"],
    "pool": ["overlap", "nonoverlap"],
    "aux": ["on", "off"],
    "head": ["fc", "gap"],
    "head_width": [16, 64],
    "input": [32, 32, "1x28"],
    # the decade after the ten, and ConvNeXt's roadmap
    "se": ["on", "off"],
    "dense": ["on", "off"],
    "expand": [2, 4],
    "depthwise": ["on", "first", "off"],
    "kernel": [5, 7],
    "block_acts": ["one", "all"],
    "block_norms": ["one", "all"],
    "downsample": ["separate", "block"],
    "drop_path": [0.1],
    "layer_scale": [1e-6, "off"],
    "stem": ["patchify"],
}


@st.composite
def knob_draws(draw) -> tuple[str, dict]:
    """A zoo name and one to four knobs, always at a small input and (mostly) narrow, so each draw trains fast."""
    from nasplay.space.zoo import list_genomes

    name = draw(st.sampled_from(list_genomes()))
    chosen = draw(st.sets(st.sampled_from(sorted(set(KNOB_VALUES) - {"input", "width"})), min_size=1, max_size=4))
    kw = {k: draw(st.sampled_from(KNOB_VALUES[k])) for k in sorted(chosen)}
    kw["input"] = draw(st.sampled_from(KNOB_VALUES["input"]))
    if draw(st.integers(0, 4)):
        kw["width"] = draw(st.sampled_from(KNOB_VALUES["width"]))
    return name, kw


def test_a_network_with_nothing_to_train_is_refused() -> None:
    """Found by fuzzing at 2,500 draws: no weights anywhere and fixed RBF outputs; backward had nothing to differentiate."""
    g = Genome(name="wild", stem=(), stages=(Stage((Block(branches=(Branch(ops=()),)),)),), head=Head(ops=(), output="rbf"),
               input=Input(channels=1, size=16), classes=1)
    from nasplay.space.validate import validate

    with pytest.raises(ValueError, match=r"^head\.output: rbf \(fixed units\) with no trainable parameter"):
        validate(g)
    assert check_contract(g) == "refused"
    assert check_contract(g.replace(head=Head(ops=(), output="linear"))) == "built"  # a linear classifier learns
    assert check_contract(g.replace(stages=(Stage((Block(branches=(Branch(ops=(Conv(4, 3, padding=1),)),)),)),))) == "built"


def test_knob_values_cover_every_knob() -> None:
    from nasplay import knobs

    assert set(KNOB_VALUES) == set(knobs())


def test_random_knob_combinations_build_or_are_refused(one_thread: None) -> None:
    """A zoo network with random knobs: a network that trains, or a refusal that names a knob it was given."""
    from nasplay.space.knobs import apply

    outcomes: Counter[str] = Counter()

    @settings(FUZZ, max_examples=max(30, EXAMPLES // 2))
    @given(knob_draws())
    def check(draw: tuple[str, dict]) -> None:
        name, kw = draw
        try:
            g = apply(name, **kw)
        except ValueError as e:
            named = re.match(r"^(\w+)=", str(e))
            assert named and named.group(1) in kw, f"{name} {kw}: refusal that names no knob given: {e}"
            outcomes["refused"] += 1
            return
        assert g.input.size in (28, 32)
        outcomes[check_contract(g)] += 1

    check()
    assert outcomes["built"] >= 10 and outcomes["refused"] >= 5, outcomes
