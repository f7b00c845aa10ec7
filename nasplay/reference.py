"""Weight transfer from the reference implementations (torchvision / timm) into our networks.

Our builder registers modules in the order the references do — branches in concatenation order,
nested splits depth-first, BatchNorm after its conv — except for two conventions: shortcut layers
come after a block's residual branch, and auxiliary heads after the body, before the classifier.
:func:`reference_order` brings a reference's state dict into that order; tensors are then matched
one to one, and every shape must agree — up to trailing unit dimensions: a linear layer over the
channels at each position (ConvNeXt's) is our 1 x 1 conv, its ``(out, in)`` weight our ``(out, in, 1, 1)``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from nasplay.nn.build import build
from nasplay.space.genome import Genome
from nasplay.space.zoo import entry, get_genome

SHORTCUT_NAMES = ("downsample", "skip", "skipbn", "shortcut", "proj")
_AUX = re.compile(r"aux", re.IGNORECASE)


def reference_order(keys: list[str], head_tensors: int) -> list[str]:
    """Reorder reference state-dict keys: shortcut layers last within their block, aux heads before
    the final ``head_tensors`` entries (the classifier)."""
    keys = list(keys)
    # 1. shortcut layers after the rest of their block
    out: list[str] = []
    pending: dict[str, list[str]] = {}
    for k in keys:
        parts = k.split(".")
        cut = next((i for i, p in enumerate(parts) if p in SHORTCUT_NAMES), None)
        if cut is not None:
            pending.setdefault(".".join(parts[:cut]) + ".", []).append(k)
            continue
        out.append(k)
    for parent, ks in pending.items():
        last = max((i for i, k in enumerate(out) if k.startswith(parent)), default=len(out) - 1)
        out[last + 1:last + 1] = ks
    # 2. auxiliary heads just before the classifier
    aux = [k for k in out if _AUX.search(k)]
    body = [k for k in out if not _AUX.search(k)]
    cut = len(body) - head_tensors
    return body[:cut] + aux + body[cut:]


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items()}


def transfer(ours: nn.Module, reference: nn.Module) -> nn.Module:
    """Copy ``reference``'s parameters and buffers into ``ours``, matched in order; shapes must agree."""
    mine = _state(ours)
    head_tensors = sum(1 for k in mine if k.startswith("head."))
    theirs = _state(reference)
    order = reference_order(list(theirs), head_tensors)
    if len(order) != len(mine):
        raise ValueError(f"reference has {len(order)} tensors in its state dict, ours has {len(mine)}: "
                         "not the same architecture (aux heads on one side only?)")
    new = {}
    for (k, v), rk in zip(mine.items(), order):
        rv = theirs[rk]
        if _core(v.shape) != _core(rv.shape) or v.dim() < rv.dim():
            raise ValueError(f"shape mismatch: our {k} {tuple(v.shape)} vs reference {rk} {tuple(rv.shape)}")
        new[k] = rv.detach().clone().reshape(v.shape)
    ours.load_state_dict(new)
    return ours


def _core(shape: torch.Size) -> tuple[int, ...]:
    """A shape without its trailing unit dimensions."""
    dims = list(shape)
    while dims and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def _has_aux(reference: nn.Module) -> bool:
    return any(_AUX.search(k) for k in reference.state_dict())


def _classes(reference: nn.Module) -> int:
    linears = [m for m in reference.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("reference module has no Linear classifier")
    return linears[-1].out_features


def from_reference(name: str | Genome, reference: nn.Module) -> nn.Module:
    """Our network for ``name`` carrying ``reference``'s weights (aux heads iff the reference has them)."""
    genome = get_genome(name) if isinstance(name, str) else name
    if genome.aux and not _has_aux(reference):
        genome = genome.replace(aux=())
    net = build(genome, _classes(reference))
    transfer(net, reference)
    net.train(reference.training)
    return net


# torchvision networks built with auxiliary heads unless told otherwise
_TORCHVISION_AUX = ("googlenet", "inception_v3")


def reference_model(name: str, *, aux: bool = True) -> nn.Module:
    """The torchvision or timm implementation of zoo network ``name`` (its ``reference``), untrained.

    ``aux=False`` leaves out the auxiliary heads of torchvision's GoogLeNet and Inception-v3; those two are
    built with ``init_weights=False`` (PyTorch's default initialisation, as every other reference here).
    """
    if not entry(name).reference:
        raise ValueError(f"{name}: no torchvision or timm implementation to compare with")
    lib, ref = entry(name).reference.split(":")
    if lib == "timm":
        import timm

        return timm.create_model(ref, pretrained=False)
    import torchvision

    kw = {"aux_logits": aux, "init_weights": False} if ref in _TORCHVISION_AUX else {}
    if ref.startswith("regnet"):
        # torchvision's RegNet computes its widths with tensors, which the meta device cannot read back
        with torch.device("cpu"):
            model = getattr(torchvision.models, ref)(weights=None)
        return model.to(torch.get_default_device())
    return getattr(torchvision.models, ref)(weights=None, **kw)
