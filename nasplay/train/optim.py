"""Optimizer and schedule factories built from an :class:`OptimConfig` (the module receives callables)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

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
    cfg = cfg.check()

    def factory(params):
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    return factory


def make_scheduler(cfg: OptimConfig) -> SchedulerFactory | None:
    """A per-step schedule: ``warmup_epochs`` of linear warm-up, then cosine to 0, step decay or constant."""
    cfg = cfg.check()
    if cfg.scheduler == "none" and cfg.warmup_epochs == 0:
        return None

    def factory(opt: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int):
        warm = int(round(cfg.warmup_epochs * steps_per_epoch))
        total = max(total_steps, warm + 1)

        def scale(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            if cfg.scheduler == "cosine":
                return 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
            if cfg.scheduler == "step":
                return cfg.gamma ** ((step // max(steps_per_epoch, 1)) // cfg.step_size)
            return 1.0

        return torch.optim.lr_scheduler.LambdaLR(opt, scale)

    return factory
