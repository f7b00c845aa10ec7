"""Layers that torch does not have, and the activations and norms of the registry (:mod:`nasplay.space.registry`) as modules."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasplay.space import registry


class ScaledTanh(nn.Module):
    """LeNet-5's squashing function ``A tanh(S x)`` with A = 1.7159, S = 2/3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


def _resolve(factory: Any) -> Any:
    """A registry entry's factory: a callable, or a ``"module:attribute"`` string imported now."""
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        return getattr(importlib.import_module(module), attr)
    return factory


class _Activations(Mapping[str, Any]):
    """Name -> factory of every registered activation (:data:`nasplay.space.registry.ACTIVATIONS`), live."""

    def __getitem__(self, name: str) -> Any:
        if name not in registry.ACTIVATIONS:
            raise KeyError(name)
        return _resolve(registry.ACTIVATIONS.get(name).factory)

    def __iter__(self) -> Iterator[str]:
        return iter(registry.ACTIVATIONS.names())

    def __len__(self) -> int:
        return len(registry.ACTIVATIONS.names())


ACTIVATIONS: Mapping[str, Any] = _Activations()


def make_act(name: str, inplace: bool = False) -> nn.Module:
    """The activation ``name``; ``inplace`` where the caller knows its input is a fresh tensor nobody saved."""
    entry = registry.ACTIVATIONS.get(name)  # an unknown name: ValueError listing the registered ones
    factory = _resolve(entry.factory)
    module = factory(inplace=True) if inplace and entry.inplace else factory()
    if not isinstance(module, nn.Module):
        raise ValueError(f"activation {name!r}: its factory ({entry.module or 'a plugin'}) returned "
                         f"{type(module).__name__}, not a torch.nn.Module")
    return module


def make_norm(name: str, channels: int) -> nn.Module:
    """A registered (plugin) norm over ``channels`` channels; the built-in ones are the builder's."""
    entry = registry.NORMS.get(name)
    module = _resolve(entry.factory)(channels)
    if not isinstance(module, nn.Module):
        raise ValueError(f"norm {name!r}: its factory ({entry.module or 'a plugin'}) returned {type(module).__name__}, "
                         "not a torch.nn.Module")
    return module


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels at each position of an ``N, C, H, W`` map (torchvision's ConvNeXt's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(fc2(act(fc1(mean(x)))))`` with 1 x 1 convs (Hu et al. 2017)."""

    def __init__(self, channels: int, squeeze: int, act: str):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = make_act(act, inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(s)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero the whole residual of a sample with probability ``p`` while training, scale the
    kept ones by 1 / (1 - p) (torchvision.ops.stochastic_depth's 'row' mode, drawing the same random numbers)."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    if keep > 0.0:
        noise.div_(keep)
    return x * noise


class Subsample(nn.Module):
    """LeNet-5's trainable subsampling: average of a ``k x k`` window, times a coefficient, plus a bias."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, self.kernel)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class TableConv2d(nn.Module):
    """A convolution whose output maps each read only some input maps (LeNet-5's C3 table).

    Maps that read the same number of inputs share one grouped convolution over the gathered inputs,
    so the parameters and FLOPs are exactly those of the table's connections.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel: tuple[int, int], stride: int,
                 padding: tuple[int, int], bias: bool):
        super().__init__()
        self.stride, self.padding = stride, padding
        sizes = sorted({len(r) for r in table})
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        gathers: list[int] = []
        order: list[int] = []
        self.bounds: list[int] = [0]  # group i reads gather[bounds[i]:bounds[i + 1]]
        for n in sizes:
            maps = [i for i, r in enumerate(table) if len(r) == n]
            order += maps
            gathers += [j for i in maps for j in table[i]]
            self.bounds.append(len(gathers))
            w = torch.empty(len(maps), n, *kernel)
            nn.init.kaiming_uniform_(w, a=5**0.5)
            self.weights.append(nn.Parameter(w))
            if bias:
                bound = 1 / (n * kernel[0] * kernel[1]) ** 0.5
                self.biases.append(nn.Parameter(torch.empty(len(maps)).uniform_(-bound, bound)))
        self.has_bias = bias
        # one buffer sliced per group (TorchScript cannot look a buffer up by a computed name)
        self.register_buffer("gather", torch.tensor(gathers, dtype=torch.long), persistent=False)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        self.register_buffer("inverse", inverse, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        i = 0
        if self.has_bias:  # two loops, as TorchScript unrolls a loop over parameter lists only by zip or iteration
            for w, b in zip(self.weights, self.biases):
                outs.append(self._group(x, i, w, b))
                i += 1
        else:
            for w in self.weights:
                outs.append(self._group(x, i, w, None))
                i += 1
        return torch.cat(outs, 1).index_select(1, self.inverse)

    def _group(self, x: torch.Tensor, i: int, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        xi = x.index_select(1, self.gather[self.bounds[i]:self.bounds[i + 1]])
        return F.conv2d(xi, w, b, self.stride, self.padding, groups=w.shape[0])


class RBFOutput(nn.Module):
    """Euclidean radial-basis output units with fixed +-1 centres: logits = -||x - c||^2."""

    def __init__(self, in_features: int, classes: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        centres = torch.randint(0, 2, (classes, in_features), generator=g).float() * 2 - 1
        self.register_buffer("centres", centres)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.centres
        return 2 * (x @ c.t()) - (x * x).sum(1, keepdim=True) - (c * c).sum(1)


class Branch(nn.Module):
    """Ops, then optionally parallel sub-branches whose outputs are concatenated."""

    def __init__(self, ops: nn.Sequential, split: list[nn.Module]):
        super().__init__()
        self.ops = ops
        self.split = nn.ModuleList(split) if split else None  # None: TorchScript drops the concatenation below
        self._has_ops = len(ops) > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._has_ops:
            x = self.ops(x)
        if self.split is None:
            return x
        return torch.cat([b(x) for b in self.split], 1)


class Block(nn.Module):
    """Concatenated branches, merge ops, the residual (none / identity / projection / scaled added, dense
    concatenated; with a layer scale and stochastic depth while training), post ops."""

    def __init__(self, branches: list[nn.Module], merge: nn.Sequential, skip: str, scale: float,
                 shortcut: nn.Module | None, post: nn.Sequential, add_inplace: bool = False,
                 layer_scale: torch.Tensor | None = None, drop_path: float = 0.0):
        super().__init__()
        # A parameter of the block itself: the state dict lists it before the layers, as torchvision's CNBlock.
        self.layer_scale = nn.Parameter(layer_scale) if layer_scale is not None else None
        self.drop_path = drop_path
        self.branches = nn.ModuleList(branches)
        self.merge = merge
        self.shortcut = shortcut
        self.post = post
        self.skip, self.scale = skip, scale
        # The residual may be added to in place when it is a fresh tensor that no backward needs (torchvision's
        # ``out += identity`` after BatchNorm); the builder decides.
        self.add_inplace = add_inplace
        # Calling an empty Sequential costs a few microseconds; most blocks have no merge or no post ops.
        self._has_merge, self._has_post = len(merge) > 0, len(post) > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.branches) == 1:
            y = self.branches[0](x)
        else:
            y = torch.cat([b(x) for b in self.branches], 1)
        if self._has_merge:
            y = self.merge(y)
        if self.layer_scale is not None:
            y = self.layer_scale * y
        if self.drop_path > 0.0:
            y = drop_path(y, self.drop_path, self.training)
        if self.skip == "identity":
            y = y.add_(x) if self.add_inplace else y + x
        elif self.skip == "projection":
            if self.shortcut is not None:  # always, for a projection; the check lets TorchScript compile the others
                s = self.shortcut(x)
                y = y.add_(s) if self.add_inplace else y + s
        elif self.skip == "scaled":
            y = y * self.scale + x
        elif self.skip == "dense":
            y = torch.cat([x, y], 1)
        return self.post(y) if self._has_post else y

    def extra_repr(self) -> str:
        return (f"skip={self.skip}" + (f", scale={self.scale}" if self.skip == "scaled" else "")
                + (f", drop_path={self.drop_path:g}" if self.drop_path else ""))
