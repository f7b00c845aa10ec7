"""One trial: parameters from the sampler, genome, tracked Lightning fit, and the outcome for Optuna.

A trial that raises, diverges or runs out of memory ends as FAIL with its reason; one the pruner stops
ends as PRUNED; an interrupt (Ctrl-C) or a full disk ends it as FAIL with ``retry`` set, so a resumed study
runs it again, from its last checkpoint (a full disk also stops the study: :class:`nasplay.sweep.faults.DiskFull`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import math
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasplay.complexity import complexity
from nasplay.space.knobs.parse import format_value
from nasplay.sweep import weights
from nasplay.sweep.conditional import check_refused, suggest_conditional
from nasplay.sweep.faults import as_disk_full
from nasplay.sweep.plan import STAGES, Plan
from nasplay.sweep.progress import TrainingBegan
from nasplay.sweep.space import TrialSpec, choices, suggest_value

if TYPE_CHECKING:
    import optuna

    from nasplay.track.tracker import Tracker


SEED_MAX = 2**31 - 1
# Metrics also kept as flat user attributes of each trial (``val/acc`` -> ``val_acc``), beside arm, seed, params, flops.
FLAT_METRICS = ("val/acc", "val/acc_best", "test/acc", "val/loss", "test/loss", "train/loss", "wall_time", "imgs_per_sec")


@dataclass
class Outcome:
    state: str  # COMPLETE, PRUNED or FAIL
    values: list[float] | None
    metrics: dict[str, float]
    fail_reason: str = ""
    interrupted: bool = False
    seconds: float = 0.0
    curves: list[tuple[int, int, str, float]] = field(default_factory=list)
    disk_full: Any = None  # a nasplay.sweep.faults.DiskFull met while the trial trained: the study stops, resumable


def suggest(trial: optuna.Trial, plan: Plan) -> TrialSpec:
    """The trial's parameters: an arm and a seed, or a point of ``sweep.space``.

    A grid trial arrives with its point enqueued; its seed is an int parameter whose range never changes,
    so a study can grow by more seeds. A sampled trial takes the experiment's seeds in turn (unless the
    space has ``seed``).
    """
    c = plan.cfg
    space = c.sweep.space
    seeds = list(c.experiment.seeds)
    classic = trial.user_attrs.get("classic")  # enqueued by nasplay.sweep.samplers.enqueue_classics
    if classic:
        arm = plan.arm(f"classic {classic}")
        return TrialSpec(arm.name, arm.arch, dict(arm.knobs), int(seeds[0]), classic=True)
    if c.experiment.conditional:  # a base network, then the knobs it accepts (nasplay.sweep.conditional)
        return suggest_conditional(trial, plan)
    if plan.grid is not None and "seed" not in space:
        seed = trial.suggest_int("seed", 0, SEED_MAX)
    elif "seed" not in space:  # a retried trial (a dead worker's) keeps the seed it had
        seed = trial.user_attrs.get("seed", seeds[trial.number % len(seeds)])
    if not space or len(plan.arms) > 1:  # several arms with a space: each arm crossed with the space's points
        base = plan.arm(trial.suggest_categorical("arm", [a.name for a in plan.arms]))
    else:
        base = plan.arms[0]
    stage, budget, tuned = "", 1.0, {}
    if plan.grid is not None and c.experiment.tune:
        stage = trial.suggest_categorical("stage", list(STAGES))
        if stage == "tune":
            for name, values in c.experiment.tune.items():
                tuned[name] = suggest_value(trial, name, list(values))
        else:
            tuned = tuned_values(trial.study, plan, base.name)
    if plan.grid is not None and c.experiment.budgets:
        budget = float(trial.suggest_float("budget", 0.0, 1e6))
    pair = trial.suggest_int("pair", 0, SEED_MAX) if plan.grid is not None and c.experiment.pairs else None
    overrides: dict[str, dict[str, Any]] = {}
    for name, v in tuned.items():
        prefix, _, rest = name.partition(".")
        overrides.setdefault(prefix, {})[rest] = v
    if budget != 1.0:
        overrides.setdefault("trainer", {})["max_epochs"] = max(1, round(c.trainer.max_epochs * budget))
    extra = {"stage": stage, "budget": budget, "tuned": tuned if stage == "final" else {}, "pair": pair}
    if not space:
        return TrialSpec(base.name, base.arch, dict(base.knobs), int(seed), overrides, **extra)
    arch, knobs = base.arch, dict(base.knobs)
    label: list[str] = [base.name] if len(plan.arms) > 1 else []
    for name, spec in space.items():
        v = suggest_value(trial, name, spec)
        prefix, _, rest = name.partition(".")
        if name == "arch":
            arch = str(v)
            label.append(arch)
        elif name == "seed":
            seed = v
        elif prefix == "knobs":
            knobs[rest] = v
            label.append(f"{rest}={format_value(v)}")
        else:
            overrides.setdefault(prefix, {})[rest] = v
            label.append(f"{name}={format_value(v)}")
    # Several arms crossed with a sampled space are populations (design spaces): a trial belongs to its arm,
    # its point is in the param.* columns. A grid's cells, and a single arm's trials, are named by their point.
    population = len(plan.arms) > 1 and (plan.grid is None or pair is not None)
    return TrialSpec(base.name if population else " ".join(label) or base.name, arch, knobs, int(seed), overrides, **extra)


def tuned_values(study: optuna.Study, plan: Plan, arm: str) -> dict[str, Any]:
    """An arm's best ``experiment.tune`` setting over the tuning seeds: by default the best mean of the study's first
    objective (validation split), a tuning trial that diverged, was pruned or failed for good counting as the worst
    value. With ``experiment.tune_on`` the setting is judged by that measure: the fewest tuning seeds that lack it (a
    target not reached), then its best mean over the seeds that have it, then the first objective. Ties go to the
    setting listed first."""
    from nasplay.manifest import direction
    from nasplay.sweep.storage import holds_its_point

    exp, sweep = plan.cfg.experiment, plan.cfg.sweep
    names = list(exp.tune)
    backs = [choices(list(exp.tune[n])) for n in names]
    sign = 1.0 if sweep.directions_resolved[0] == "maximize" else -1.0
    on = exp.tune_on
    on_sign = 1.0 if on is None or direction(on) == "maximize" else -1.0
    objective: dict[tuple, list[float]] = {combo: [] for combo in itertools.product(*(labels for labels, _ in backs))}
    measure: dict[tuple, list[float]] = {combo: [] for combo in objective}
    for t in study.get_trials(deepcopy=False):
        if t.params.get("stage") != "tune" or t.params.get("arm", arm) != arm:
            continue
        if not holds_its_point(t, sweep.retry_failed):
            continue  # interrupted, stale, or failed before training (setup): its retry stands for it
        combo = tuple(t.params.get(n) for n in names)
        if combo in objective:
            ok = t.state.name == "COMPLETE" and t.values and math.isfinite(t.values[0])
            objective[combo].append(sign * float(t.values[0]) if ok else -math.inf)
            v = (t.user_attrs.get("metrics") or {}).get(on) if on and t.state.name == "COMPLETE" else None
            measure[combo].append(on_sign * float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan)

    def score(combo: tuple) -> tuple:
        first = sum(objective[combo]) / len(objective[combo]) if objective[combo] else -math.inf
        if not on:
            return (first,)
        have = [v for v in measure[combo] if math.isfinite(v)]
        lacking = len(measure[combo]) - len(have) if measure[combo] else math.inf
        return (-lacking, sum(have) / len(have) if have else -math.inf, first)

    best = max(objective, key=score)  # max keeps the first of equals: the setting listed first
    return {n: back[label] for n, (_, back), label in zip(names, backs, best)}


class TrialRunner:
    """Runs trials of one study in this process, caching data modules and genomes between them."""

    def __init__(self, plan: Plan, tracker: Tracker, extra_callbacks: tuple = (), interrupts: Any = None):
        self.plan = plan
        self.interrupts = interrupts  # nasplay.sweep.loop.Interrupts: a Ctrl-C reaches the trial only while it trains
        self.tracker = tracker
        self.extra_callbacks = extra_callbacks
        self._data: dict[str, Any] = {}
        self._genomes: dict[str, Any] = {}

    def datamodule(self, overrides: dict[str, Any]) -> Any:
        from nasplay.train.data import make_datamodule  # torch and Lightning: loaded when a trial needs its data

        cfg = dataclasses.replace(self.plan.cfg.data, **overrides).check()
        key = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
        if key not in self._data:
            self._data[key] = make_datamodule(cfg)
        return self._data[key]

    def genome(self, spec: TrialSpec, dm: Any) -> Any:
        """The genome ``spec`` trains on ``dm``'s data: the plan's (:meth:`Plan.trial_genome`), cached."""
        key = json.dumps([spec.arm, spec.arch, spec.knobs, dm.channels, dm.size, dm.num_classes], sort_keys=True, default=str)
        if key not in self._genomes:
            self._genomes[key] = self.plan.trial_genome(spec.arm, spec.arch, spec.knobs, (dm.channels, dm.size, dm.num_classes),
                                                        classic=spec.classic)
        return self._genomes[key]

    def run(self, trial: optuna.Trial, spec: TrialSpec) -> Outcome:
        """Train the trial and return its outcome (Optuna's ``tell`` is the caller's)."""
        import optuna

        # the tracker and fit import torch and Lightning: loaded when a trial runs, not with the study's plan
        from nasplay.track.tracker import TrialInfo
        from nasplay.train.fit import TrialDiverged, fit

        c = self.plan.cfg
        study_dir = self.plan.study_dir
        start = time.perf_counter()
        metrics: dict[str, float] = {}
        state, reason, interrupted, values, disk_full = "FAIL", "", False, None, None
        started_tracker = False
        began, fitting, distributed = TrainingBegan(), False, False
        try:
            if trial.user_attrs.get("refused"):  # a conditional sample the knobs or the budget refuse: never trained
                check_refused(trial)
            dm = self.datamodule(spec.overrides.get("data", {}))
            genome = self.genome(spec, dm)
            cx = complexity(genome, num_classes=dm.num_classes)
            attrs = {"arm": spec.arm, "arch": spec.arch, "knobs": spec.knobs, "seed": spec.seed, "genome_hash": genome.hash,
                     "params": int(cx.params), "flops": int(cx.flops),
                     **({"stage": spec.stage} if spec.stage else {}),
                     **({"budget": spec.budget} if self.plan.cfg.experiment.budgets else {}),
                     **({"tuned": spec.tuned} if spec.tuned else {}), **({"pair": spec.pair} if spec.pair is not None else {})}
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            _save_genome(study_dir, genome)
            trainer_cfg = dataclasses.replace(c.trainer, **spec.overrides.get("trainer", {})).check()
            optim_cfg = dataclasses.replace(c.optim, **spec.overrides.get("optim", {})).check()
            info = TrialInfo(self.plan.name, trial.number, spec.arm, spec.seed, spec.knobs, genome, int(cx.params),
                             int(cx.flops), self.plan.resolved)
            loggers = self.tracker.start(info)
            started_tracker = True
            trial.set_user_attr("wandb_id", self.tracker.run_id)
            callbacks = [*self.extra_callbacks, *self.tracker.callbacks(), began]
            pruning = None
            if len(c.sweep.objectives) == 1 and not spec.classic:  # Optuna records intermediate values of single-objective studies only
                from optuna_integration import PyTorchLightningPruningCallback

                from nasplay.sweep.retry import without_retry

                # Under DDP, rank 0 reports and decides, broadcasts the decision, and leaves it in the (RDB)
                # storage's system attrs; check_pruned() reads it back here, in the process that tells.
                # The callback insists on Optuna's own RDB storage under DDP: it gets one, without nasplay's retries.
                pruning = PyTorchLightningPruningCallback(without_retry(trial) if trainer_cfg.distributed else trial,
                                                          monitor=c.sweep.monitor)
                callbacks.append(pruning)
            ckpt = study_dir / "ckpt" / spec.key
            if (ckpt / "last.ckpt").exists():  # a retried or interrupted trial continues from its checkpoint
                trial.set_user_attr("resumed_from_epoch", _ckpt_epoch(ckpt / "last.ckpt"))
            fitting, distributed = True, trainer_cfg.distributed
            trained: list[Any] = []
            with self._interruptible(), _sigint_kept():
                metrics = fit(genome, dm, trainer_cfg, optim_cfg, seed=spec.seed, callbacks=callbacks, logger=loggers,
                              ckpt_dir=ckpt, resume=True, on_fitted=trained.append)
            if pruning is not None and trainer_cfg.distributed:
                pruning.check_pruned()
            values = [float(metrics[o]) for o in c.sweep.objectives]
            bad = [o for o, v in zip(c.sweep.objectives, values) if not math.isfinite(v)]
            if bad:
                reason = f"objective {', '.join(bad)} is not finite ({metrics.get(bad[0])})"
                values = None
            else:
                state = "COMPLETE"
                self._keep_weights(trial, spec, trained, genome, dm, values, metrics)
        except optuna.TrialPruned as e:
            state, reason = "PRUNED", ""
            trial.set_user_attr("pruned_epoch", _pruned_epoch(str(e)))
        except TrialDiverged as e:
            reason = f"diverged: {e}"
        except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
            reason, interrupted = "interrupted", True
        except Exception as e:
            # a full disk is not the trial's fault: it runs again (from its checkpoint) once space is freed
            disk_full = as_disk_full(e, study_dir / "ckpt" / spec.key / "last.ckpt", f"while trial {trial.number} trained")
            reason = str(disk_full) if disk_full else _failure(e)
            # before training began (data, packages, the network): the next run tries again. A DDP trial's ranks
            # train in other processes: only a failure before its fit counts there.
            if not disk_full and (not fitting or (not began.began and not distributed)):
                trial.set_user_attr("setup_error", True)
        curves = list(self.tracker.curves.rows) if started_tracker else []  # not the previous trial's (a refused one never starts)
        if not metrics:  # pruned or failed: the last value of each metric it logged
            metrics = {m: v for _, _, m, v in curves}
        if started_tracker:
            try:
                self.tracker.finish(state, metrics, reason)
            except Exception as e:  # the trial's outcome stands; say why the run did not close cleanly
                reason = reason or f"tracker: {_failure(e)}"
        trial.set_user_attr("metrics", {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)})
        for k in FLAT_METRICS:  # flat, sortable columns in optuna-dashboard and trials_dataframe()
            v = metrics.get(k)
            if isinstance(v, (int, float)) and math.isfinite(v):
                trial.set_user_attr(k.replace("/", "_"), float(v))
        seconds = time.perf_counter() - start
        trial.set_user_attr("duration_s", round(seconds, 3))
        if reason:
            trial.set_user_attr("fail_reason", reason)
        if interrupted or disk_full:  # it keeps its checkpoint: the resumed study continues it from there
            trial.set_user_attr("retry", True)
        else:
            shutil.rmtree(study_dir / "ckpt" / spec.key, ignore_errors=True)
        return Outcome(state, values, metrics, reason, interrupted, seconds, curves, disk_full=disk_full)


    def _keep_weights(self, trial: optuna.Trial, spec: TrialSpec, trained: list[Any], genome: Any, dm: Any,
                      values: list[float], metrics: dict[str, float]) -> None:
        """The trained network into ``<study dir>/weights/`` as ``sweep.keep_weights`` says (:mod:`nasplay.sweep.weights`).
        A failure to write is said in the trial's ``weights_error`` attribute and the log; the trial's numbers stand."""
        from nasplay.manifest import kind_of

        c = self.plan.cfg
        keep = weights.resolve_keep(c.sweep.keep_weights, kind_of(c.experiment.name, c.experiment.kind))
        if keep == "none" or not trained:
            return
        meta = {"study": self.plan.name, "experiment": c.experiment.name, "arm": spec.arm, "arch": spec.arch,
                "knobs": spec.knobs, "seed": spec.seed, **({"stage": spec.stage} if spec.stage else {}),
                "objectives": list(c.sweep.objectives), "directions": c.sweep.directions_resolved, "values": values,
                "metrics": {k: metrics[k] for k in ("val/acc", "val/loss", "test/acc", "test/loss", "params", "flops")
                            if isinstance(metrics.get(k), float) and math.isfinite(metrics[k])},
                "genome_hash": genome.hash, "num_classes": dm.num_classes, "data": c.data.name, "input": dm.input_spec()}
        try:
            if weights.keep(self.plan.study_dir, keep, trial.number, trained[0], genome, meta, c.sweep.directions_resolved):
                trial.set_user_attr("weights", str(weights.trial_dir(self.plan.study_dir, trial.number)))
        except Exception as e:  # noqa: BLE001 - a full disk: the trial trained and is told; its weights are not kept
            trial.set_user_attr("weights_error", _failure(e))
            logging.getLogger(__name__).warning("trial %d: weights not kept (%s)", trial.number, _failure(e))

    def _interruptible(self) -> contextlib.AbstractContextManager:
        return self.interrupts.armed() if self.interrupts is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _sigint_kept() -> Iterator[None]:
    """Restore the Ctrl-C handler after ``fit``: Lightning ignores SIGINT from its first interrupt on."""
    handler = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def _ckpt_epoch(path: Path) -> int | str:
    """The epochs a checkpoint has finished (read with ``weights_only=True``: tensors and plain data only)."""
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"]) + 1
    except Exception:  # unreadable: fit will say so
        return ""


def _failure(e: BaseException) -> str:
    """A one-line reason: the exception's type and first line, out-of-memory named as such."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    kind = type(e).__name__
    if "OutOfMemoryError" in kind or "out of memory" in msg.lower():
        return f"out of memory: {msg}"[:500]
    return f"{kind}: {msg}"[:500] if msg else kind


def _pruned_epoch(message: str) -> int | str:
    digits = "".join(ch for ch in message.rsplit("epoch", 1)[-1] if ch.isdigit())
    return int(digits) if digits else ""


def _save_genome(study_dir: Path, genome: Any) -> None:
    path = study_dir / "genomes" / f"{genome.hash}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(genome.to_yaml())
        tmp.replace(path)
