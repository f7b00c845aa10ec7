"""The ideas the decade after the ten added to the genome (issue 14), each tested on its own: dense skips,
squeeze-and-excitation, LayerNorm, ReLU6, layer scale, stochastic depth, RegNet's generator; one vocabulary each."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from nasplay.complexity import complexity
from nasplay.nn import layers as L
from nasplay.nn.build import build
from nasplay.space import genome as G
from nasplay.space.genome import SE, Block, Branch, Conv, Genome, Head, Input, Norm, Stage
from nasplay.space.knobs import ops as knob_ops
from nasplay.space.knobs import wiring
from nasplay.space.validate import validate
from nasplay.space.zoo import get_genome
from nasplay.space.zoo.regnet import adjust_block_compatibility, generate_regnet, regnet


def net(*blocks: Block, size: int = 8, channels: int = 4, head: Head | None = None) -> Genome:
    return Genome("t", stem=(), stages=(Stage(tuple(blocks)),), input=Input(channels, size), classes=3,
                  **({"head": head} if head else {}))


def one(*ops, **kw) -> Block:
    return Block((Branch(tuple(ops)),), **kw)


# --- one vocabulary per kind of name -----------------------------------------------------------------------
def test_the_vocabularies_have_one_definition() -> None:
    assert tuple(L.ACTIVATIONS) == G.ACTIVATIONS  # the builder's name -> class table covers exactly the genome's names
    assert wiring.SKIPS == ("none", *G.ADD_SKIPS) and set(G.SKIPS) == {*wiring.SKIPS, "dense"}
    assert knob_ops.POOL_KINDS is G.POOL_KINDS
    from nasplay.space import validate as V

    assert V.ACTIVATIONS is G.ACTIVATIONS and V.CONV_NORMS is G.CONV_NORMS
    with pytest.raises(ValueError, match="act: 'swish' is not allowed; allowed: none, relu, relu6, tanh"):
        validate(net(one(Conv(4, 3, act="swish"))))
    with pytest.raises(ValueError, match="stages\\[0\\].blocks\\[0\\].branches\\[0\\].ops\\[0\\].kind: 'group' is not "
                       "allowed; allowed: batch, lrn, layer"):
        validate(net(one(Norm("group"))))
    with pytest.raises(ValueError, match=r"ops\[0\].norm: 'lrn' is not allowed; allowed: none, batch, layer"):
        validate(net(one(Conv(4, 3, norm="lrn"))))


# --- the hash grows without moving ---------------------------------------------------------------------------
def test_new_fields_leave_the_hash_alone_at_their_default() -> None:
    g = net(one(Conv(4, 3), skip="identity"))
    assert g.replace(ln_eps=1e-6).hash == g.hash
    assert g.replace(ln_eps=1e-5).hash != g.hash
    b = g.stages[0].blocks[0]
    for change in ({"layer_scale": 1e-6}, {"drop_path": 0.1}, {"drop_path_step": 0.01}):
        h = g.replace(stages=(Stage((dataclasses.replace(b, **change),)),))
        assert h.hash != g.hash, change
        assert Genome.from_dict(h.to_dict()) == h and Genome.from_yaml(h.to_yaml()).hash == h.hash


# --- dense connectivity --------------------------------------------------------------------------------------
def test_a_dense_block_concatenates_its_input_to_each_copy() -> None:
    g = net(one(Conv(2, 3, bias=True), skip="dense", repeat=3))
    m = build(g).eval()
    x = torch.randn(1, 4, 8, 8)
    y = m.stages[0](x)
    assert y.shape == (1, 4 + 3 * 2, 8, 8)
    assert torch.equal(y[:, :4], x)  # the input passes through untouched
    first = m.stages[0][0].branches[0](x)
    assert torch.allclose(y[:, 4:6], first)
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert [c.in_channels for c in convs] == [4, 6, 8]  # each copy reads everything before it
    with pytest.raises(ValueError, match=r"stages\[0\].blocks\[0\].skip: 'dense' concatenates the input .* keep their size"):
        validate(net(one(Conv(2, 3, stride=2), skip="dense")))


# --- squeeze-and-excitation ----------------------------------------------------------------------------------
def test_se_gates_each_channel_by_its_global_context() -> None:
    g = net(one(SE(2, "silu")))
    m = build(g).eval()
    (se,) = [mod for mod in m.modules() if isinstance(mod, L.SqueezeExcite)]
    assert sum(p.numel() for p in se.parameters()) == 4 * 2 + 2 + 2 * 4 + 4
    assert isinstance(se.act, nn.SiLU)
    x = torch.randn(2, 4, 8, 8)
    y = se(x)
    gate = y / x
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)  # one factor per sample and channel
    assert ((gate > 0) & (gate < 1)).all()
    assert complexity(g).layers["se"] == 1 and complexity(g).depth == 1  # off the path: depth counts the classifier
    with pytest.raises(ValueError, match=r"ops\[0\].squeeze: must be an integer >= 1, got 0"):
        validate(net(one(SE(0))))


# --- LayerNorm in either layout, ReLU6 -------------------------------------------------------------------------
def test_layer_norm_normalises_the_channels_at_each_position() -> None:
    g = net(one(Conv(6, 3, bias=True, norm="layer")), one(Norm("layer")))
    g = g.replace(ln_eps=1e-3)
    m = build(g).eval()
    lns = [mod for mod in m.modules() if isinstance(mod, L.LayerNorm2d)]
    assert len(lns) == 2 and all(ln.eps == 1e-3 for ln in lns)
    x = torch.randn(2, 4, 8, 8) * 5 + 3
    y = m.stages[0][0](x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 8, 8), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 8, 8), atol=1e-2)
    ref = nn.LayerNorm(6, eps=1e-3)  # channels-last, as ConvNeXt's blocks apply it
    z = m.stages[0][0].branches[0].ops[0][0](x)
    assert torch.allclose(y, ref(z.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), atol=1e-6)


def test_relu6_clips_at_six() -> None:
    m = build(net(one(Conv(4, 1, bias=True, act="relu6")))).eval()
    with torch.no_grad():
        m.stages[0][0].branches[0].ops[0][0].weight.fill_(0).add_(torch.eye(4).view(4, 4, 1, 1) * 10)
        m.stages[0][0].branches[0].ops[0][0].bias.zero_()
        y = m.stages[0](torch.ones(1, 4, 8, 8))
    assert torch.all(y == 6)


# --- layer scale and stochastic depth, owned by the builder ------------------------------------------------------
def test_layer_scale_is_a_learned_per_channel_factor_listed_first() -> None:
    g = net(one(Conv(4, 3, bias=True), skip="identity", layer_scale=0.5))
    m = build(g)
    blk = m.stages[0][0]
    assert blk.layer_scale.shape == (4, 1, 1) and torch.all(blk.layer_scale == 0.5) and blk.layer_scale.requires_grad
    assert next(iter(m.state_dict())) == "stages.0.0.layer_scale"  # before the layers, as torchvision's CNBlock
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(blk.eval()(x), x + 0.5 * blk.branches[0](x))
    assert complexity(g).params == 4 * 4 * 9 + 4 + 4 + (4 * 3 + 3)  # conv, layer scale, classifier
    # without an added shortcut it has nothing to scale: no parameter
    inert = net(one(Conv(4, 3, bias=True), layer_scale=0.5))
    assert complexity(inert).params == 4 * 4 * 9 + 4 + (4 * 3 + 3)
    with pytest.raises(ValueError, match=r"blocks\[0\].layer_scale: must be a number > 0"):
        validate(net(one(Conv(4, 3), skip="identity", layer_scale=0.0)))


def test_drop_path_drops_whole_residuals_while_training_only() -> None:
    g = net(one(Conv(4, 3, bias=True), skip="identity", drop_path=0.5, drop_path_step=0.25, repeat=2))
    m = build(g)
    assert [b.drop_path for b in m.stages[0]] == [0.5, 0.75]
    blk = m.stages[0][0]
    x = torch.randn(256, 4, 8, 8)
    with torch.no_grad():
        r = blk.branches[0](x)
        torch.manual_seed(0)
        y = blk.train()(x)
        kept = (y - x).flatten(1).abs().amax(1) > 0
        assert 0.3 < kept.float().mean() < 0.7  # about half the samples keep their residual
        assert torch.allclose((y - x)[kept], 2 * r[kept], atol=1e-5)  # scaled by 1 / (1 - p)
        assert torch.equal(y[~kept], x[~kept])
        assert torch.allclose(blk.eval()(x), x + r)
    for bad, msg in (({"drop_path": 1.0}, "rates must stay below 1"), ({"drop_path": 0.5, "drop_path_step": 0.5},
                     "rates must stay below 1; its copies go from 0.5 to 1"), ({"drop_path": -0.1}, "must be a number >= 0")):
        with pytest.raises(ValueError, match=rf"stages\[0\].blocks\[0\].drop_path\w*: {msg}"):
            validate(net(one(Conv(4, 3), skip="identity", repeat=2, **bad)))


def test_the_zoo_schedules_stochastic_depth_as_the_references() -> None:
    rates = [b.drop_path for b in build("convnext_tiny").modules() if isinstance(b, L.Block) and b.skip == "identity"]
    assert rates == pytest.approx([0.1 * k / 17 for k in range(18)], abs=1e-15)
    rates = [b.drop_path for b in build("efficientnet_b0").modules() if isinstance(b, L.Block) and b.skip == "identity"]
    assert rates == pytest.approx([0.2 * k / 16 for k in (2, 4, 6, 7, 9, 10, 12, 13, 14)], abs=1e-15)


# --- RegNet from its generator -----------------------------------------------------------------------------------
def test_regnet_widths_come_from_the_linear_rule() -> None:
    assert generate_regnet(48, 27.89, 2.09, 16) == ([48, 104, 208, 440], [1, 3, 6, 6])
    assert adjust_block_compatibility([48, 104, 208, 440], [1.0] * 4, [8] * 4) == ([48, 104, 208, 440], [8, 8, 8, 8])
    g = get_genome("regnet_y_400mf")
    assert [sum(b.repeat for b in st.blocks) for st in g.stages] == [1, 3, 6, 6]


# Other points of torchvision's RegNet family: the same generator gives their params and FLOPs.
FAMILY = {
    "regnet_x_1_6gf": dict(w0=80, wa=34.01, wm=2.25, depth=18, group_width=24),
    "regnet_x_3_2gf": dict(w0=88, wa=26.31, wm=2.25, depth=25, group_width=48),
}


@pytest.mark.parametrize("name", list(FAMILY))
def test_the_generator_gives_torchvisions_regnet_family(name: str) -> None:
    import torchvision

    from tests.test_fidelity import flops, trainable

    ref = getattr(torchvision.models, name)(weights=None)  # widths computed with tensors: not on the meta device
    c = complexity(regnet(**FAMILY[name]), input_size=64)
    assert trainable(ref) == c.params
    assert flops(ref.to("meta"), 64) == c.flops


def test_the_repair_step_rounds_as_pycls() -> None:
    """pycls rounds the bottleneck width to its group width half to even (numpy's round); torchvision's
    ``_make_divisible`` rounds half up, so its RegNetX-400MF differs in one stage: 392 / 16 = 24.5 groups."""
    from torchvision.models.regnet import BlockParams

    widths, depths = generate_regnet(24, 24.48, 2.54, 22)
    assert (widths, depths) == ([24, 64, 152, 392], [1, 2, 7, 12])
    assert adjust_block_compatibility(widths, [1.0] * 4, [16] * 4)[0] == [32, 64, 160, 384]
    assert BlockParams.from_init_params(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16).widths == [32, 64, 160, 400]


def test_width_scales_the_squeeze_of_channel_attention():
    """SE's squeeze is a fraction of the channels it gates (1/16 in SE-ResNet-50): width scales it with them."""
    from nasplay.complexity import apply
    from nasplay.space.genome import SE
    from nasplay.space.knobs.tree import iter_ops

    def squeezes(g):
        return sorted({op.squeeze for op, _ in iter_ops(g) if isinstance(op, SE)})

    assert squeezes(apply("seresnet50")) == [16, 32, 64, 128]
    assert squeezes(apply("seresnet50", width=0.5)) == [8, 16, 32, 64]
