"""The fixed cost of one trial: everything a study does per trial except the training/eval steps themselves.

A warm process runs a real study (``run_study``: ask, genome, tracker, Lightning ``fit``, tell, results
files) of tiny trials: ResNet-18 at width 1/4 on the embedded digits (the main job's network), one epoch of
2 training batches, 1 validation batch and the test set. A callback marks when each ``fit`` starts and how
long its batches take; one trial's cycle is the time between two consecutive ``fit`` starts, and

    fixed cost = cycle - time inside training, validation and test batches.

The first trials warm the process up (imports, W&B's service, first allocations) and are not counted.
Where the time goes is measured by timing the runner's own calls (W&B run start/finish, Trainer
construction, ask/tell, results writing). Run: ``python benchmarks/trial_overhead.py [--trials 12]``.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightning.pytorch as pl  # noqa: E402
import optuna  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from rich.console import Console  # noqa: E402

import nasplay.sweep.runner as runner_mod  # noqa: E402
import nasplay.train.fit as fit_mod  # noqa: E402
from nasplay.sweep.config import register_configs  # noqa: E402
from nasplay.sweep.runner import run_study  # noqa: E402
from nasplay.track import tracker as tracker_mod  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
SPENT: dict[str, list[float]] = defaultdict(list)


class Clock(pl.Callback):
    """``fit`` start times and the seconds each fit spends inside batches."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.in_batches: list[float] = []
        self._t = 0.0

    def on_fit_start(self, trainer, pl_module):
        self.starts.append(time.perf_counter())
        self.in_batches.append(0.0)

    def _start(self, *args, **kwargs):
        self._t = time.perf_counter()

    def _end(self, *args, **kwargs):
        self.in_batches[-1] += time.perf_counter() - self._t

    on_train_batch_start = on_validation_batch_start = on_test_batch_start = _start
    on_train_batch_end = on_validation_batch_end = on_test_batch_end = _end


def timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name].append(time.perf_counter() - t)

    return wrapper


def instrument() -> None:
    """Time the runner's per-trial calls where they are looked up."""
    runner_mod.write_results = timed("results.csv", runner_mod.write_results)
    runner_mod.append_curves = timed("curves.csv", runner_mod.append_curves)
    fit_mod.make_trainer = timed("Trainer()", fit_mod.make_trainer)
    optuna.Study.ask = timed("study.ask", optuna.Study.ask)
    optuna.Study.tell = timed("study.tell", optuna.Study.tell)
    optuna.Study.enqueue_trial = timed("study.enqueue", optuna.Study.enqueue_trial)
    for cls in (tracker_mod.WandbTracker, tracker_mod.CsvTracker, tracker_mod.Tracker):
        cls.start = timed(f"{cls.__name__}.start", cls.start)
        cls.finish = timed(f"{cls.__name__}.finish", cls.finish)
    import nasplay.nn.build as build_mod

    build_mod.build = timed("build(genome)", build_mod.build)  # fit imports it at call time


def measure(logger: str, trials: int, warmup: int, storage: str | None, root: Path) -> dict[str, float]:
    SPENT.clear()
    seeds = list(range(warmup + trials + 1))
    overrides = ["arch=resnet18", "arch.knobs.width=0.25", "sweep=grid", f"experiment.seeds=[{','.join(map(str, seeds))}]",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                 f"logger={logger}", f"runs_dir={root}", f"study=overhead-{logger}"]
    if storage:
        overrides.append(f"sweep.storage={storage}")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    clock = Clock()
    run_study(cfg, console=Console(file=io.StringIO()), callbacks=(clock,))
    cycles = [b - a - inside for a, b, inside in zip(clock.starts, clock.starts[1:], clock.in_batches)][warmup:]
    steps = clock.in_batches[warmup:-1]
    out = {"fixed_median": statistics.median(cycles), "fixed_mean": statistics.fmean(cycles), "steps_median": statistics.median(steps)}
    n = len(clock.starts)
    for name, times in SPENT.items():
        if len(times) >= n:  # once per trial: the mean over the counted trials
            out[name] = statistics.fmean(times[warmup:warmup + trials])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=12, help="trials measured per logger (after the warm-up)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--loggers", default="wandb,csv,none")
    p.add_argument("--storage", default=None, help="an RDB URL instead of the default journal file")
    args = p.parse_args()
    register_configs()
    instrument()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"{args.trials} trials per logger after {args.warmup} warm-up trials; storage {args.storage or 'journal file'}")
    with tempfile.TemporaryDirectory() as tmp:
        results = {lg: measure(lg, args.trials, args.warmup, args.storage, Path(tmp)) for lg in args.loggers.split(",")}
    names = sorted({k for r in results.values() for k in r if k not in ("fixed_median", "fixed_mean", "steps_median")})
    width = max(len(n) for n in names + ["fixed cost per trial (median)"])
    print(f"\n{'seconds per trial':<{width}}  " + "  ".join(f"{lg:>7}" for lg in results))
    for key, label in (("fixed_median", "fixed cost per trial (median)"), ("fixed_mean", "fixed cost per trial (mean)"),
                       ("steps_median", "in training/eval steps")):
        print(f"{label:<{width}}  " + "  ".join(f"{r[key]:7.3f}" for r in results.values()))
    print("of which:")
    for n in names:
        print(f"  {n:<{width - 2}}  " + "  ".join(f"{r[n]:7.3f}" if n in r else f"{'-':>7}" for r in results.values()))
    worst = max(r["fixed_median"] for r in results.values())
    print(f"\nfixed cost of one trial: {results.get('wandb', next(iter(results.values())))['fixed_median']:.3f} s with W&B "
          f"offline (target <= 1.0 s); worst logger {worst:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
