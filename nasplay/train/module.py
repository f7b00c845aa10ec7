"""The LightningModule: a built network, optimizer / schedule factories, aux-head losses, epoch metrics.

Metrics are summed on the device during an epoch and turned into numbers once at its end, so a step
costs no host synchronisation (the loss is checked for NaN/inf every step on a CPU, every
``nan_check_every`` steps elsewhere; a NaN poisons the running sum, so none is missed). Keys follow
``split/name``; ``val/acc_best`` is the running maximum of ``val/acc``.
"""

from __future__ import annotations

import collections
import inspect
import math
import time
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from nasplay.train.optim import OptimizerFactory, SchedulerFactory, param_groups

NAN = float("nan")


class TrialDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class LitClassifier(pl.LightningModule):
    """Trains ``net`` with cross-entropy; aux heads add ``aux_weights[i]`` times their own loss.

    ``optimizer_factory`` receives parameter groups (weights decayed, biases and norms not, when
    ``weight_decay`` is given; else the parameters); ``scheduler_factory(optimizer, total_steps,
    steps_per_epoch)`` returns a schedule stepped after every optimizer step.
    """

    def __init__(self, net: nn.Module, optimizer_factory: OptimizerFactory, scheduler_factory: SchedulerFactory | None = None,
                 aux_weights: Sequence[float] = (), label_smoothing: float = 0.0, *, weight_decay: float | None = None,
                 channels_last: bool = False, target_train_error: float | None = None, target_val_acc: float | None = None,
                 nan_check_every: int | None = None):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.aux_weights = tuple(float(w) for w in aux_weights)
        self.label_smoothing = label_smoothing
        self.weight_decay = weight_decay
        self.channels_last = channels_last
        self.target_train_error = target_train_error
        self.target_val_acc = target_val_acc
        self.nan_check_every = nan_check_every
        # progress that must survive a resume (saved in the checkpoint)
        self.val_acc_best = NAN
        self.epochs_to_target = NAN  # training epochs (fractional: step resolution) to target_train_error
        self.steps_to_target_train = NAN
        self.steps_to_target = NAN
        self.last: dict[str, float] = {}  # the latest value of every epoch metric
        self.epoch_times: list[tuple[int, float]] = []  # (training images, seconds) per epoch
        self._window: collections.deque = collections.deque()  # (correct, n) of the latest training batches
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._t0 = 0.0
        self._timed = False

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets this plain attribute around every hook call, ~46 times a step; nn.Module's
        # __setattr__ (checks for parameters, buffers, submodules) is needless there and costs CPU time.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> Any:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    # --- training -------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._sums["train"] = torch.zeros(3, device=self.device)  # main loss sum, total loss sum, correct
        self._train_views = self._sums["train"].unbind(0)
        self._counts["train"] = 0
        self._sync()
        self._t0, self._timed = time.perf_counter(), False

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self(x)
        logits, aux = (out[0], out[1]) if isinstance(out, tuple) else (out, ())
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        total = loss
        for w, a in zip(self.aux_weights, aux):
            total = total + w * F.cross_entropy(a, y, label_smoothing=self.label_smoothing)
        with torch.no_grad():  # as few kernels as possible: this runs every step
            n = len(y)
            main_sum, total_sum, correct = self._train_views
            main_sum.add_(loss.detach(), alpha=n)
            if total is not loss:
                total_sum.add_(total.detach(), alpha=n)
            hits = (logits.argmax(1) == y).sum()
            correct.add_(hits)
            self._counts["train"] += n
            if self.target_train_error is not None and math.isnan(self.epochs_to_target):
                self._track_train_error(hits, n)
        if self.device.type == "cpu":  # reading a CPU scalar costs no device sync
            bad = not math.isfinite(total.item())
        else:
            every = self.nan_check_every or 25
            bad = batch_idx % every == 0 and not torch.isfinite(self._sums["train"]).all().item()
        if bad:
            raise TrialDiverged(f"training loss is {total.item()} at epoch {self.current_epoch}, step {self.global_step}")
        return total

    def _track_train_error(self, hits: torch.Tensor, n: int) -> None:
        """Time to the training-error target at step resolution: the error over the latest quarter epoch of
        batches, checked after every step (on a GPU every 25th, to spare a device sync a step)."""
        self._window.append((hits, n))
        per_epoch = self.trainer.num_training_batches
        size = max(1, int(per_epoch) // 4) if per_epoch not in (None, float("inf")) else 1
        while len(self._window) > size:
            self._window.popleft()
        step = self.global_step + 1
        if len(self._window) < size or (self.device.type != "cpu" and step % 25):
            return
        seen = sum(k for _, k in self._window)
        error = 1 - float(sum(h for h, _ in self._window)) / seen
        if error <= self.target_train_error:
            self.epochs_to_target = step / float(per_epoch) if per_epoch not in (None, float("inf")) else NAN
            self.steps_to_target_train = float(step)

    def _end_train_timer(self) -> None:
        if not self._timed:
            self._sync()
            self._timed = True
            images = self._counts.get("train", 0) * self.trainer.world_size  # all ranks' images
            self.epoch_times.append((images, time.perf_counter() - self._t0))

    def on_validation_epoch_start(self) -> None:
        if self.trainer.state.fn == "fit":  # validation inside fit ends the epoch's training time
            self._end_train_timer()
        self._sums["val"], self._counts["val"] = torch.zeros(2, device=self.device), 0

    def on_train_epoch_end(self) -> None:
        self._end_train_timer()
        loss, total, correct, n = self._reduce("train")
        if not self.aux_weights:
            total = loss
        if not math.isfinite(total):
            raise TrialDiverged(f"training loss is {total} after epoch {self.current_epoch}")
        acc = _ratio(correct, n)
        images, seconds = self.epoch_times[-1]
        metrics = {"train/loss": _ratio(loss, n), "train/acc": acc, "train/imgs_per_sec": images / max(seconds, 1e-9)}
        if self.aux_weights:
            metrics["train/loss_total"] = _ratio(total, n)
        self._log(metrics)

    # --- evaluation -----------------------------------------------------------------------------
    def _eval_step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        logits = self(x)
        if isinstance(logits, tuple):
            logits = logits[0]
        loss = F.cross_entropy(logits, y, reduction="sum")
        correct = (logits.argmax(1) == y).sum()
        self._sums[split] += torch.stack([loss.float(), correct.float()])
        self._counts[split] += len(y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        loss, correct, n = self._reduce("val")
        acc = _ratio(correct, n)
        if not math.isnan(acc):
            self.val_acc_best = acc if math.isnan(self.val_acc_best) else max(self.val_acc_best, acc)
        if self.target_val_acc is not None and math.isnan(self.steps_to_target) and acc >= self.target_val_acc:
            self.steps_to_target = float(self.global_step)
        self._log({"val/loss": _ratio(loss, n), "val/acc": acc, "val/acc_best": self.val_acc_best})

    def on_test_epoch_start(self) -> None:
        self._sums["test"], self._counts["test"] = torch.zeros(2, device=self.device), 0

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        loss, correct, n = self._reduce("test")
        self._log({"test/loss": _ratio(loss, n), "test/acc": _ratio(correct, n)})

    # --- plumbing -------------------------------------------------------------------------------
    def _reduce(self, split: str) -> list[float]:
        """The split's sums and example count over all ranks, as floats (the one host sync of an epoch)."""
        s = torch.cat([self._sums[split], self._sums[split].new_tensor([self._counts[split]])])
        if self.trainer.world_size > 1:
            s = self.trainer.strategy.reduce(s, reduce_op="sum")
        return s.tolist()

    def _log(self, metrics: dict[str, float]) -> None:
        self.last.update(metrics)
        for k, v in metrics.items():  # already reduced over ranks: every rank logs the same value
            self.log(k, v, on_step=False, on_epoch=True, sync_dist=False, rank_zero_only=False)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def configure_optimizers(self) -> Any:
        params = param_groups(self.net, self.weight_decay) if self.weight_decay is not None else self.net.parameters()
        opt = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, int(self.trainer.num_training_batches)) if self.trainer.num_training_batches != float("inf") else total
        sched = self.scheduler_factory(opt, total, per_epoch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state: dict[str, Any] = {
            "val_acc_best": self.val_acc_best, "epochs_to_target": self.epochs_to_target,
            "steps_to_target": self.steps_to_target, "steps_to_target_train": self.steps_to_target_train, "last": dict(self.last),
            "epoch_times": [list(t) for t in self.epoch_times],
            # the global RNG drives dropout: restoring it makes a resumed trial equal an uninterrupted one
            "rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        checkpoint["nasplay"] = state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("nasplay", {})
        self.val_acc_best = state.get("val_acc_best", NAN)
        self.epochs_to_target = state.get("epochs_to_target", NAN)
        self.steps_to_target = state.get("steps_to_target", NAN)
        self.steps_to_target_train = state.get("steps_to_target_train", NAN)
        self.last = dict(state.get("last", {}))
        self.epoch_times = [(int(n), float(s)) for n, s in state.get("epoch_times", [])]
        if "rng" in state:
            torch.set_rng_state(state["rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())


# Lightning inspects training_step's signature before every step (inspect.getfullargspec, ~0.1 ms on a
# CPU); a precomputed __signature__ is what inspect returns at once.
LitClassifier.training_step.__signature__ = inspect.signature(LitClassifier.training_step)  # type: ignore[attr-defined]


def _ratio(total: float, n: float) -> float:
    """A mean over ``n`` examples; NaN for an empty split (0 would read as a measured accuracy)."""
    return total / n if n else NAN
