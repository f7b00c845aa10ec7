"""Optimizer and schedule factories built from an :class:`OptimConfig` (the module receives callables)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from nasplay.train.config import OptimConfig

OptimizerFactory = Callable[[Iterable[nn.Parameter] | list[dict]], torch.optim.Optimizer]
# (optimizer, total optimizer steps, steps per epoch) -> a scheduler stepped after every optimizer step
SchedulerFactory = Callable[[torch.optim.Optimizer, int, int], torch.optim.lr_scheduler.LRScheduler]


def param_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights only: biases and norm scales (1-d parameters) are not decayed."""
    decay, no_decay = [], []
    for p in net.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(cfg: OptimConfig) -> OptimizerFactory:
    """A factory ``params -> optimizer`` for ``cfg.optimizer`` with ``cfg.lr`` and friends."""
    return _Optimizer(cfg.check())


def make_scheduler(cfg: OptimConfig) -> SchedulerFactory | None:
    """A per-step schedule: ``warmup_epochs`` of linear warm-up, then cosine to 0, step decay or constant."""
    cfg = cfg.check()
    if cfg.scheduler == "none" and cfg.warmup_epochs == 0:
        return None
    return _Schedule(cfg)


# Classes rather than closures: a DDP-spawned worker receives the module, factories included, by pickle.
@dataclass(frozen=True)
class _Optimizer:
    cfg: OptimConfig

    def __call__(self, params) -> torch.optim.Optimizer:
        c = self.cfg
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay)
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)


@dataclass(frozen=True)
class _Schedule:
    cfg: OptimConfig

    def __call__(self, opt: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
        c = self.cfg
        warm = int(round(c.warmup_epochs * steps_per_epoch))
        scale = _Scale(c.scheduler, warm, max(total_steps, warm + 1), max(steps_per_epoch, 1), c.step_size, c.gamma)
        return torch.optim.lr_scheduler.LambdaLR(opt, scale)


@dataclass(frozen=True)
class _Scale:
    """The learning-rate multiplier at an optimizer step. LambdaLR saves a callable object's fields in
    the checkpoint, so they are plain numbers (a checkpoint loads with ``weights_only=True``)."""

    kind: str
    warm: int
    total: int
    per_epoch: int
    step_size: int
    gamma: float

    def __call__(self, step: int) -> float:
        if step < self.warm:
            return (step + 1) / (self.warm + 1)
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - self.warm) / (self.total - self.warm)))
        if self.kind == "step":
            return self.gamma ** ((step // self.per_epoch) // self.step_size)
        return 1.0
