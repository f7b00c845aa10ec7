"""Built networks leave Python: ``torch.jit.script`` and ``torch.export`` on the zoo, each at the smallest input it takes.

Scripting is tested on every zoo network. ``torch.export`` traces the same modules and costs about as much again
(6 s for Inception-ResNet-v2, 5 s for ResNet-152 on a loaded 2-core machine: about 60 s for the whole zoo), so it
runs on a representative set, chosen to contain every layer class and every kind of skip the zoo builds;
``test_the_exported_set_covers_every_layer_and_skip`` fails when a network brings a new one, so the set grows with
the zoo. The export of a trained study's network (``nasplay export``) is tested end to end in test_export_cli.py.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

from nasplay.nn import layers as L
from nasplay.nn.build import build
from nasplay.space.genome import Genome, Input
from nasplay.space.shapes import walk
from nasplay.space.zoo import get_genome, list_genomes

# One network per layer class and skip kind (see the module docstring), the cheapest that has it.
EXPORTED = ("lenet5", "lenet5_common", "alexnet_2012", "inception_v1", "resnet18", "inception_v4", "inception_resnet_v2",
            "densenet121", "efficientnet_b0", "convnext_tiny", "mobilenet_v1")


@functools.cache
def smallest(name: str) -> Genome:
    """The zoo network at the smallest square input its shapes allow."""
    g = get_genome(name)
    for size in range(1, g.input.size + 1):
        try:
            walk(g.replace(input=Input(g.input.channels, size)))
        except ValueError:
            continue
        return g.replace(input=Input(g.input.channels, size))
    raise AssertionError(f"{name}: no input size up to {g.input.size} walks")


def _net_and_input(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    g = smallest(name)
    torch.manual_seed(0)
    net = build(g, num_classes=10).eval()
    return net, torch.randn(2, g.input.channels, g.input.size, g.input.size)


@pytest.mark.parametrize("name", list_genomes())
def test_every_zoo_network_scripts(name: str, one_thread) -> None:
    net, x = _net_and_input(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in favour of torch.export
        scripted = torch.jit.script(net)
    # without the profiling executor's optimisation passes, which cost seconds per network on the first call
    with torch.no_grad(), torch.jit.optimized_execution(False):
        want, got = net(x), scripted(x)
    assert got.shape == (2, 10)
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # the same kernels in the same order


@pytest.mark.parametrize("name", EXPORTED)
def test_representative_networks_export(name: str, one_thread) -> None:
    net, x = _net_and_input(name)
    exported = torch.export.export(net, (x,))
    with torch.no_grad():
        want, got = net(x), exported.module()(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _kinds(name: str) -> set[str]:
    """The layer classes and skip kinds a network builds (a meta-device build: no memory, no initialisation)."""
    with torch.device("meta"):
        net = build(get_genome(name), num_classes=10)
    kinds = {type(m).__name__ for m in net.modules()}
    kinds |= {f"skip={m.skip}" for m in net.modules() if isinstance(m, L.Block)}
    kinds |= {f"drop_path={m.drop_path > 0}" for m in net.modules() if isinstance(m, L.Block)}
    kinds |= {f"layer_scale={m.layer_scale is not None}" for m in net.modules() if isinstance(m, L.Block)}
    kinds |= {f"split={m.split is not None}" for m in net.modules() if isinstance(m, L.Branch)}
    return kinds


def test_the_exported_set_covers_every_layer_and_skip() -> None:
    every = set().union(*(_kinds(n) for n in list_genomes()))
    covered = set().union(*(_kinds(n) for n in EXPORTED))
    assert "skip=projection" in every and "TableConv2d" in every and "split=True" in every  # the walk sees them
    assert every - covered == set(), f"add a network that has {sorted(every - covered)} to EXPORTED"


def test_training_with_aux_heads_still_returns_them(one_thread) -> None:
    """The scriptable forward keeps the eager training output of networks with auxiliary heads."""
    net, x = _net_and_input("inception_v1")
    out = net.train()(x)
    assert out.logits.shape == (2, 10) and len(out.aux) == 2 and all(a.shape == (2, 10) for a in out.aux)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(net)
    assert scripted(x).shape == (2, 10)  # scripted: the logits only, in either mode
