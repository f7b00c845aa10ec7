"""One trial: adapt a genome to the data, build it, train it with Lightning, return its metrics."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from nasplay.complexity import complexity, resolve
from nasplay.nn.build import aux_weights, build
from nasplay.space.genome import Genome
from nasplay.train.config import OptimConfig, TrainerConfig, as_config
from nasplay.train.data import NasplayDataModule
from nasplay.train.module import NAN, LitClassifier, TrialDiverged
from nasplay.train.optim import make_optimizer, make_scheduler

__all__ = ["TrialDiverged", "adapt", "fit", "make_trainer"]

LAST = "last.ckpt"
# Always present in what fit returns (NaN when a phase did not run or a target was not reached).
METRIC_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc", "imgs_per_sec",
               "wall_time", "train_time", "epochs", "steps", "epochs_to_target", "steps_to_target_train", "steps_to_target",
               "params", "flops")


def adapt(genome: Genome | str, dm: NasplayDataModule) -> Genome:
    """``genome`` (or a zoo name) as it trains on ``dm``: a genome that already takes the data's input is trained as
    it is (a trial's comes fitted from its plan); otherwise :func:`nasplay.complexity.resolve`, the one door from a
    network to the genome that trains, fits it to the data's input and classes."""
    if isinstance(genome, Genome) and (genome.input.channels, genome.input.size) == (dm.channels, dm.size):
        return genome
    return resolve(genome, {}, (dm.channels, dm.size, dm.num_classes))


def make_trainer(cfg: TrainerConfig, *, callbacks: Sequence[pl.Callback] = (), logger: Any = None,
                 default_root_dir: str | Path | None = None) -> pl.Trainer:
    """A Lightning ``Trainer`` for ``cfg`` (no sanity validation; ``logger=None`` logs nowhere)."""
    cfg = as_config(TrainerConfig, cfg)
    kw: dict[str, Any] = {}
    if cfg.limit_train_batches is not None:
        kw["limit_train_batches"] = cfg.limit_train_batches
    if cfg.limit_val_batches is not None:
        kw["limit_val_batches"] = cfg.limit_val_batches
    with quiet_lightning():
        return _trainer(cfg, callbacks, logger, default_root_dir, kw)


def _trainer(cfg: TrainerConfig, callbacks: Sequence[pl.Callback], logger: Any, default_root_dir: str | Path | None,
             kw: dict[str, Any]) -> pl.Trainer:
    kw = {"num_sanity_val_steps": 0, **kw, **cfg.lightning_args()}  # any other Trainer argument the config sets
    return pl.Trainer(
        accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy, num_nodes=cfg.num_nodes,
        precision=cfg.precision, max_epochs=cfg.max_epochs, max_steps=cfg.max_steps, max_time=cfg.max_time,
        # deterministic kernels where they exist; a CUDA op without one warns instead of stopping the trial
        deterministic="warn" if cfg.deterministic else False, benchmark=cfg.benchmark,
        check_val_every_n_epoch=cfg.check_val_every_n_epoch, log_every_n_steps=cfg.log_every_n_steps,
        gradient_clip_val=cfg.gradient_clip_val, enable_progress_bar=cfg.enable_progress_bar,
        enable_model_summary=cfg.enable_model_summary,
        callbacks=list(callbacks), logger=logger if logger is not None else False,
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        default_root_dir=str(default_root_dir) if default_root_dir is not None else None, **kw,
    )


def fit(genome: Genome | str, dm: NasplayDataModule, trainer_cfg: TrainerConfig | Any, optim_cfg: OptimConfig | Any, *,
        seed: int, callbacks: Sequence[pl.Callback] = (), logger: Any = None, ckpt_dir: str | Path | None = None,
        resume: bool = True, on_fitted: Callable[[torch.nn.Module], None] | None = None) -> dict[str, float]:
    """Train ``genome`` on ``dm`` and return its metrics (see ``METRIC_KEYS``).

    Everything is seeded by ``seed`` (initialisation, batch order, dropout), so the same call gives the
    same numbers. With ``ckpt_dir`` the trial keeps ``last.ckpt`` there after every epoch and, with
    ``resume``, continues from it. ``on_fitted`` receives the trained network (``sweep.keep_weights``).
    Raises ``TrialDiverged`` when the loss becomes NaN/inf.
    """
    start = time.perf_counter()
    tcfg = as_config(TrainerConfig, trainer_cfg)
    ocfg = as_config(OptimConfig, optim_cfg)
    genome = adapt(genome, dm)
    cx = complexity(genome, num_classes=dm.num_classes)
    if tcfg.matmul_precision is not None:
        torch.set_float32_matmul_precision(tcfg.matmul_precision)
    if tcfg.threads is not None and torch.get_num_threads() != tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    pl.seed_everything(seed, workers=True, verbose=False)
    net = build(genome, num_classes=dm.num_classes)
    if tcfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if tcfg.compile:
        net.compile()
    module = LitClassifier(
        net, make_optimizer(ocfg), make_scheduler(ocfg), aux_weights(genome), ocfg.label_smoothing,
        weight_decay=ocfg.weight_decay, channels_last=tcfg.channels_last,
        target_train_error=tcfg.target_train_error, target_val_acc=tcfg.target_val_acc,
    )
    dm.seed, dm.channels_last = seed, tcfg.channels_last

    callbacks = list(callbacks)
    ckpt_path = None
    if ckpt_dir is not None:
        ckpt_dir = Path(ckpt_dir)
        # one file, replaced every epoch (save_last only writes alongside a top-k file: twice the I/O)
        callbacks.append(pl.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir, filename=LAST.removesuffix(".ckpt"), save_top_k=1, every_n_epochs=1,
            save_on_train_epoch_end=True, enable_version_counter=False))
        if resume and (ckpt_dir / LAST).exists():
            ckpt_path = str(ckpt_dir / LAST)
    trainer = make_trainer(tcfg, callbacks=callbacks, logger=logger, default_root_dir=ckpt_dir)

    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with quiet_lightning():
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True if ckpt_path else None)
            if tcfg.test:
                trainer.test(module, datamodule=dm, verbose=False)
    finally:  # Lightning sets the flag process-wide; later work in this process should not inherit it
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    if on_fitted is not None:  # ddp_spawn: Lightning has loaded rank 0's trained weights back into this process's module
        on_fitted(module.net)

    steps, epochs = trainer.global_step, trainer.current_epoch
    if steps == 0 and ckpt_dir is not None and (ckpt_dir / LAST).exists():  # ddp_spawn: progress stays in the ranks
        state = torch.load(ckpt_dir / LAST, map_location="cpu", weights_only=True)
        steps, epochs = state["global_step"], state["epoch"] + 1
    out = {k: NAN for k in METRIC_KEYS}
    out.update({k: float(v) for k, v in module.last.items()})
    for k, v in trainer.callback_metrics.items():  # what a spawned worker logged (its module's state stays there)
        if k not in module.last:
            out[k] = float(v)
    times = module.epoch_times[1:] if len(module.epoch_times) > 1 else module.epoch_times  # the first epoch warms up
    images, seconds = sum(n for n, _ in times), sum(s for _, s in times)
    out.update({
        "imgs_per_sec": images / seconds if seconds > 0 else NAN,
        "train_time": sum(s for _, s in module.epoch_times),
        "wall_time": time.perf_counter() - start,
        "epochs": float(epochs),
        "steps": float(steps),
        "epochs_to_target": module.epochs_to_target,
        "steps_to_target": module.steps_to_target,
        "steps_to_target_train": module.steps_to_target_train,
        "params": float(cx.params),
        "params_aux": float(cx.params_aux),
        "flops": float(cx.flops),
    })
    return out


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-run banners (devices, tips, "fit stopped") that a sweep would repeat per trial."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # Lightning vs newer torch, not ours to fix
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # resuming
            warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")  # we log per epoch
            warnings.filterwarnings("ignore", message=r".*sync_dist=True.* when logging on epoch level")  # reduced already
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
