"""The one builder: a pure function from a genome to a ``torch.nn.Module``."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from nasplay.nn import layers as L
from nasplay.space.genome import (
    ADD_SKIPS,
    SE,
    Act,
    Block,
    Branch,
    Conv,
    Dropout,
    Genome,
    Linear,
    Norm,
    Op,
    Pool,
    Subsample,
    pair,
)
from nasplay.space.shapes import Shape, conv_pieces, op_shape, shortcut_stride, walk
from nasplay.space.zoo import get_genome


class Outputs(NamedTuple):
    """What a network with auxiliary heads returns in training mode."""

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]


class Network(nn.Module):
    """stem -> stages -> head, with auxiliary heads fed by stage blocks while training."""

    def __init__(self, genome: Genome, stem: nn.Sequential, stages: nn.ModuleList, aux: nn.ModuleList,
                 aux_at: list[tuple[int, int]], head: nn.Sequential):
        super().__init__()
        self.genome = genome
        self.stem = stem
        self.stages = stages
        self.aux = aux
        self.head = head
        self._aux_at = [tuple(a) for a in aux_at]  # (stage, block) feeding each auxiliary head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits; while training with auxiliary heads, :class:`Outputs` (logits and the heads' logits).

        Scripted (``torch.jit.script``) and exported (``torch.export``, in eval mode) networks give the logits only.
        """
        if not torch.jit.is_scripting():
            if self.training and len(self.aux) > 0:
                return self._forward_aux(x)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    @torch.jit.unused
    def _forward_aux(self, x: torch.Tensor) -> Any:
        x = self.stem(x)
        aux_out: list[torch.Tensor | None] = [None] * len(self.aux)
        for si, stage in enumerate(self.stages):
            for bi, block in enumerate(stage):
                x = block(x)
                for ai, at in enumerate(self._aux_at):
                    if at == (si, bi):
                        aux_out[ai] = self.aux[ai](x)
        return Outputs(self.head(x), tuple(aux_out))  # type: ignore[arg-type]


class _Builder:
    def __init__(self, genome: Genome):
        self.eps = genome.bn_eps
        self.ln_eps = genome.ln_eps

    def norm(self, kind: str, channels: int) -> nn.Module:
        if kind == "layer":
            return L.LayerNorm2d(channels, eps=self.ln_eps)
        if kind == "batch":
            return nn.BatchNorm2d(channels, eps=self.eps)
        return L.make_norm(kind, channels)  # a plugin's

    def conv(self, op: Conv, cin: int, path: str) -> nn.Module:
        pieces = conv_pieces(op, cin, path)
        if op.table is not None:
            p = pieces[0]
            mods: list[nn.Module] = [L.TableConv2d(op.table, p.kernel, p.stride, p.padding, p.bias)]
        else:
            mods = []
            for p in pieces:
                mods.append(nn.Conv2d(p.cin, p.cout, p.kernel, p.stride, p.padding, groups=p.groups, bias=p.bias))
                if p.norm:
                    mods.append(self.norm(op.norm, p.cout))
                if p.act:  # a conv's (or BN's) output is fresh and not needed by its backward
                    mods.append(L.make_act(op.act, inplace=True))
            return nn.Sequential(*mods)
        if op.norm != "none":
            mods.append(self.norm(op.norm, op.out))
        if op.act != "none":
            mods.append(L.make_act(op.act, inplace=True))
        return nn.Sequential(*mods)

    def op(self, op: Op, shape: Shape, path: str, fresh: bool = False) -> nn.Module:
        """The module of ``op``; ``fresh``: its input is a new tensor that nothing else reads or saved."""
        if isinstance(op, Conv):
            return self.conv(op, shape[0], path)
        if isinstance(op, Pool):
            if op.adaptive is not None:
                cls = nn.AdaptiveMaxPool2d if op.kind == "max" else nn.AdaptiveAvgPool2d
                return cls(op.adaptive)
            k, s = pair(op.kernel), op.stride if op.stride is not None else pair(op.kernel)[0]
            if op.kind == "max":
                return nn.MaxPool2d(k, s, op.padding, ceil_mode=op.ceil)
            return nn.AvgPool2d(k, s, op.padding, ceil_mode=op.ceil, count_include_pad=op.count_include_pad)
        if isinstance(op, Act):
            return L.make_act(op.fn, inplace=fresh)
        if isinstance(op, Norm):
            if op.kind == "lrn":
                return nn.LocalResponseNorm(op.size, op.alpha, op.beta, op.k)
            return self.norm(op.kind, shape[0])
        if isinstance(op, SE):
            return L.SqueezeExcite(shape[0], op.squeeze, op.act)
        if isinstance(op, Dropout):
            return nn.Dropout(op.p)
        if isinstance(op, Subsample):
            sub = L.Subsample(shape[0], op.kernel)
            return sub if op.act == "none" else nn.Sequential(sub, L.make_act(op.act, inplace=True))
        if isinstance(op, Linear):
            lin = nn.Linear(_features(shape), op.out, bias=op.bias)
            return lin if op.act == "none" else nn.Sequential(lin, L.make_act(op.act, inplace=True))
        raise ValueError(f"{path}: not an op: {op!r}")

    def ops(self, ops: tuple[Op, ...], shape: Shape, path: str, flatten_at: int = -1,
            fresh: bool = False) -> tuple[nn.Sequential, Shape]:
        mods = []
        for i, op in enumerate(ops):
            if i == flatten_at:
                mods.append(nn.Flatten(1))
            p = f"{path}[{i}]"
            mods.append(self.op(op, shape, p, fresh))
            fresh = _fresh_output(op)
            shape = op_shape(op, shape, p, where="head" if flatten_at >= 0 else "body")
        if flatten_at == len(ops):
            mods.append(nn.Flatten(1))
        return nn.Sequential(*mods), shape

    def branch(self, br: Branch, shape: Shape, path: str) -> tuple[nn.Module, Shape]:
        ops, shape = self.ops(br.ops, shape, f"{path}.ops")
        split, outs = [], []
        for i, sub in enumerate(br.split):
            m, s = self.branch(sub, shape, f"{path}.split[{i}]")
            split.append(m)
            outs.append(s)
        if outs:
            shape = (sum(s[0] for s in outs), *outs[0][1:])
        return L.Branch(ops, split), shape

    def block(self, b: Block, shape: Shape, path: str) -> tuple[list[nn.Module], Shape]:
        mods = []
        for copy in range(b.repeat):
            shape_in = shape
            branches, outs = [], []
            for i, br in enumerate(b.branches):
                m, s = self.branch(br, shape, f"{path}.branches[{i}]")
                branches.append(m)
                outs.append(s)
            shape = (sum(s[0] for s in outs), *outs[0][1:])
            merge, shape = self.ops(b.merge, shape, f"{path}.merge", fresh=_fresh_concat(b))
            shortcut = None
            if b.skip == "projection":
                stride = shortcut_stride(shape_in, shape, path)
                sc: list[nn.Module] = [nn.Conv2d(shape_in[0], shape[0], 1, stride, bias=False)]
                if b.skip_norm != "none":
                    sc.append(self.norm(b.skip_norm, shape[0]))
                shortcut = nn.Sequential(*sc)
            fresh = _fresh_residual(b)
            add_inplace = fresh and b.skip in ("identity", "projection")
            added = b.skip in ADD_SKIPS  # layer scale and stochastic depth act on an added residual only
            scale = torch.full((shape[0], 1, 1), float(b.layer_scale)) if added and b.layer_scale is not None else None
            if b.skip == "dense":
                shape = (shape_in[0] + shape[0], *shape[1:])
            post, shape = self.ops(b.post, shape, f"{path}.post", fresh=fresh or b.skip != "none")
            rate = float(b.drop_path + copy * b.drop_path_step) if added else 0.0
            mods.append(L.Block(branches, merge, b.skip, b.scale, shortcut, post, add_inplace, scale, rate))
        return mods, shape

    def head(self, ops: tuple[Op, ...], shape: Shape, path: str, classes: int, output: str) -> nn.Sequential:
        mods, shape = self.ops(ops, shape, path, flatten_at=_flatten_index(ops))
        feats = _features(shape)
        last = L.RBFOutput(feats, classes) if output == "rbf" else nn.Linear(feats, classes)
        return nn.Sequential(*mods, last)


def _fresh_output(op: Op) -> bool:
    """Whether ``op``'s output is a new tensor that its backward does not need, so the next op may work in place.

    Activations save their output (ReLU, tanh) and dropout returns its input in eval mode: neither qualifies.
    """
    if isinstance(op, (Conv, Linear, Subsample)):
        return op.act == "none"
    return isinstance(op, (Pool, Norm, SE))


def _fresh_branch(br: Branch) -> bool:
    return bool(br.split) or (bool(br.ops) and _fresh_output(br.ops[-1]))  # a split ends in a new concatenation


def _fresh_concat(b: Block) -> bool:
    return len(b.branches) > 1 or _fresh_branch(b.branches[0])


def _fresh_residual(b: Block) -> bool:
    """Whether the residual (before the add) is a fresh tensor nobody saved."""
    return _fresh_output(b.merge[-1]) if b.merge else _fresh_concat(b)


def _flatten_index(ops: tuple[Op, ...]) -> int:
    """Flatten right after the last op that needs a feature map."""
    spatial = [i for i, op in enumerate(ops) if isinstance(op, (Conv, Pool, Norm, Subsample))]
    return spatial[-1] + 1 if spatial else 0


def _features(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def build(genome: Genome | str, num_classes: int | None = None) -> Network:
    """Build the network that ``genome`` (or the zoo name) describes, with ``num_classes`` outputs
    (default: ``genome.classes``)."""
    if isinstance(genome, str):
        genome = get_genome(genome)
    if num_classes is None:
        num_classes = genome.classes
    shapes = walk(genome, num_classes)  # validates everything before any module exists
    bld = _Builder(genome)
    shape: Shape = shapes.input
    stem: list[nn.Module] = []
    for i, b in enumerate(genome.stem):
        mods, shape = bld.block(b, shape, f"stem[{i}]")
        stem.extend(mods)
    stages = nn.ModuleList()
    for si, st in enumerate(genome.stages):
        blocks: list[nn.Module] = []
        for bi, b in enumerate(st.blocks):
            mods, shape = bld.block(b, shape, f"stages[{si}].blocks[{bi}]")
            blocks.extend(mods)
        stages.append(nn.Sequential(*blocks))
    head = bld.head(genome.head.ops, shape, "head.ops", num_classes, genome.head.output)
    aux, aux_at = nn.ModuleList(), []
    for ai, a in enumerate(genome.aux):
        n = len(shapes.blocks[a.stage])
        s, b = a.stage % len(genome.stages), a.block % n
        aux.append(bld.head(a.ops, shapes.blocks[s][b], f"aux[{ai}].ops", num_classes, "linear"))
        aux_at.append((s, b))
    return Network(genome, nn.Sequential(*stem), stages, aux, aux_at, head)


def aux_weights(genome: Genome) -> list[float]:
    return [a.weight for a in genome.aux]


__all__ = ["Network", "Outputs", "build", "aux_weights"]
