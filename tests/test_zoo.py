"""The zoo's registry, and the networks no library implements (run at their native size)."""

from __future__ import annotations

import pytest
import torch

from nasplay.complexity import complexity
from nasplay.nn.build import Outputs, build
from nasplay.space.genome import Block, Branch, Conv, Genome, Input, Stage
from nasplay.space.zoo import CANONICAL, entry, get_genome, list_genomes, register
from nasplay.space.zoo import registry as reg

CANONICAL_NAMES = ("lenet5", "alexnet", "vgg16", "inception_v1", "inception_v3", "resnet50", "xception",
                   "inception_v4", "inception_resnet_v2", "resnext50_32x4d")
NEIGHBOURS = ("resnet18", "resnet34", "resnet101", "resnet152", "vgg11", "vgg13", "vgg19", "resnext101_32x8d",
              "wide_resnet50_2")
PAPER_VARIANTS = ("alexnet_2012", "inception_v1_2014", "lenet5_common", "resnet50_v1")
DECADE = ("densenet121", "mobilenet_v1", "seresnet50", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf",
          "convnext_tiny")  # the decade after the ten (issue 14), in the order of their papers
# The libraries' implementations of each name (issue 2, item 5).
REFERENCES = {
    "alexnet": "torchvision:alexnet", "vgg11": "torchvision:vgg11", "vgg13": "torchvision:vgg13",
    "vgg16": "torchvision:vgg16", "vgg19": "torchvision:vgg19", "inception_v1": "torchvision:googlenet",
    "inception_v3": "torchvision:inception_v3", "resnet18": "torchvision:resnet18", "resnet34": "torchvision:resnet34",
    "resnet50": "torchvision:resnet50", "resnet101": "torchvision:resnet101", "resnet152": "torchvision:resnet152",
    "resnext50_32x4d": "torchvision:resnext50_32x4d", "resnext101_32x8d": "torchvision:resnext101_32x8d",
    "wide_resnet50_2": "torchvision:wide_resnet50_2", "xception": "timm:legacy_xception",
    "inception_v4": "timm:inception_v4", "inception_resnet_v2": "timm:inception_resnet_v2",
    "densenet121": "torchvision:densenet121", "seresnet50": "timm:seresnet50", "mobilenet_v1": "timm:mobilenetv1_100",
    "mobilenet_v2": "torchvision:mobilenet_v2", "efficientnet_b0": "torchvision:efficientnet_b0",
    "regnet_y_400mf": "torchvision:regnet_y_400mf", "convnext_tiny": "torchvision:convnext_tiny",
}


def test_all_names_are_registered() -> None:
    names = set(list_genomes())
    assert set(CANONICAL_NAMES + NEIGHBOURS + PAPER_VARIANTS + DECADE) == names
    assert set(CANONICAL) == set(CANONICAL_NAMES) == set(list_genomes(canonical=True))
    assert set(list_genomes(canonical=False)) == names - set(CANONICAL_NAMES)


def test_references_are_recorded() -> None:
    assert {n: entry(n).reference for n in list_genomes() if entry(n).reference} == REFERENCES


@pytest.mark.parametrize("name", list_genomes())
def test_generators_are_pure_and_named(name: str) -> None:
    g = get_genome(name)
    assert isinstance(g, Genome) and g.name == name
    assert get_genome(name) is g  # cached
    made = entry(name).make()
    assert made.replace(name=name) == g  # a fresh call of the generator gives the same genome
    e = entry(name)
    assert (2016 <= e.year <= 2022 if name in DECADE else 1998 <= e.year <= 2016) and e.paper


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match=r"unknown network 'resnet05'; did you mean resnet50"):
        get_genome("resnet05")
    with pytest.raises(ValueError, match=r"did you mean .*vgg16"):
        get_genome("vgg_16")
    with pytest.raises(ValueError, match=r"'googlenet'; did you mean inception_v1"):  # the reference's own name
        get_genome("googlenet")
    with pytest.raises(ValueError, match=r"unknown network 'qwertyuiop' \(nasplay list shows all \d+\)"):
        get_genome("qwertyuiop")


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="'resnet50' is already registered"):
        register("resnet50", year=2015, paper="again")(lambda: get_genome("resnet18"))
    assert entry("resnet50").make().stages == get_genome("resnet50").stages  # the first one is kept


def test_register_a_new_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reg.NETWORKS, "_entries", dict(reg.NETWORKS._entries))  # the registry of networks (space/registry.py)
    monkeypatch.setattr(reg, "_CACHE", dict(reg._CACHE))

    @register("tiny_test_net", year=2016, paper="a test")
    def tiny() -> Genome:
        return Genome("whatever", stem=(), stages=(Stage((Block((Branch((Conv(4, 3),)),)),)),), input=Input(1, 8))

    assert get_genome("tiny_test_net").name == "tiny_test_net"
    assert "tiny_test_net" in list_genomes("tiny*")
    assert build("tiny_test_net").eval()(torch.randn(1, 1, 8, 8)).shape == (1, 1000)


def test_list_genomes_globs_in_paper_order() -> None:
    assert list_genomes("resnet*") == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50_v1"]
    assert list_genomes("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert set(list_genomes("*inception*")) == {"inception_v1", "inception_v1_2014", "inception_v3", "inception_v4",
                                               "inception_resnet_v2"}
    assert list_genomes("resnext*", canonical=True) == ["resnext50_32x4d"]
    assert list_genomes("nothing*") == []
    years = [entry(n).year for n in list_genomes()]
    assert years == sorted(years) and list_genomes()[0] == "lenet5"
    assert [n for n in list_genomes() if n in DECADE] == list(DECADE)
    assert list_genomes()[-len(DECADE):] == list(DECADE)  # after the ten and their neighbours, not among the ten
    assert not set(DECADE) & set(list_genomes(canonical=True))


# The networks no library implements: built and trained one step at their native size.
@pytest.mark.parametrize("name", ["lenet5", "lenet5_common", "alexnet_2012", "inception_v1_2014", "resnet50_v1"])
def test_paper_variants_train_at_native_size(name: str) -> None:
    torch.manual_seed(0)
    g = get_genome(name)
    net = build(g).train()
    x = torch.randn(2, g.input.channels, g.input.size, g.input.size)
    out = net(x)
    logits, aux = (out.logits, out.aux) if isinstance(out, Outputs) else (out, ())
    assert len(aux) == len(g.aux)
    assert logits.shape == (2, g.classes) and all(a.shape == (2, g.classes) for a in aux)
    loss = sum(t.float().pow(2).mean() for t in (logits, *aux))
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == complexity(g).params
    net.eval()
    assert net(x).shape == (2, g.classes)  # eval: logits only, aux heads idle
