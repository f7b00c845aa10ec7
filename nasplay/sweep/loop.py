"""One worker's study loop: claim a trial under the study lock, train it, tell it, until the study is done.

nasplay owns this loop (ask-and-tell) so that the live trial reaches the training loop: the pruning
callback reports every epoch and the pruner can stop a hopeless trial. Resuming is counting: a study is
done when ``sweep.n_trials`` trials are COMPLETE or PRUNED, or, for a grid, when every grid point has a
finished trial. Every worker — the single process of ``sweep.workers=1``, each process of
``sweep.workers=N``, a process on another host — runs :func:`run_loop` on the study :func:`open_study`
opened.

Ctrl-C never leaves a trial RUNNING: :class:`Interrupts` holds a SIGINT back while the loop claims,
sets up, tells or records a trial, and lets it through only while the trial trains (the trial then
ends FAIL with ``retry``, told like any other); the loop stops before it claims another.

A storage outage (a database restart) is waited out (:mod:`nasplay.sweep.retry`): the trial's own calls and
the tell are retried one by one, a claim is made again whole under a new lock.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nasplay import environment
from nasplay.sweep.plan import Plan
from nasplay.sweep.results import append_curves, write_results
from nasplay.sweep.storage import HEARTBEAT, STALE, Heartbeat, fail_stale, holds_its_point, make_storage, study_lock

FINISHED = ("COMPLETE", "PRUNED")


@dataclass
class LoopResult:
    """What one worker's loop did: trials it ran, why it stopped, whether the study has all its trials."""

    ran: int
    stopped: str
    complete: bool
    failed: int = 0  # of the trials it ran, those that ended FAIL
    fail_reason: str = ""  # the last one's reason


class Interrupts:
    """SIGINT held back where an interrupt would leave the study inconsistent.

    While installed (the loop's whole life, in the main thread), a SIGINT outside :meth:`armed` only sets
    :attr:`requested`: whatever the loop is doing (claiming a trial under the lock, setting it up, telling
    it, writing results.csv, finishing its W&B run) completes, and the loop stops before it claims the
    next trial. Inside :meth:`armed` (a trial's training) the first SIGINT raises ``KeyboardInterrupt`` at
    once; later ones (a terminal's Ctrl-C reaching a worker twice, through its process group and from the
    coordinator) are absorbed, so they cannot cut the trial's bookkeeping short.
    """

    def __init__(self) -> None:
        self.requested = False
        self._armed = False
        self._old: Any = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _handle(self, signum: int, frame: Any) -> None:
        first = not self.requested
        self.requested = True
        if self._armed and first:
            self._armed = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Let a SIGINT interrupt the block (raising at once if one came before it)."""
        if self.requested:
            raise KeyboardInterrupt
        self._armed = True
        try:
            yield
        finally:
            self._armed = False


def open_study(plan: Plan, worker: int | None = None) -> Any:
    """Create or load the plan's Optuna study (checking it was made with the same config); queue its classics.

    Worker ``worker`` of ``sweep.workers`` samples with its own seed (:func:`~nasplay.sweep.samplers.make_sampler`).
    """
    import optuna

    from nasplay.sweep.feasible import wrap
    from nasplay.sweep.samplers import enqueue_classics, make_pruner, make_sampler, worker_seed

    c = plan.cfg
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    storage = make_storage(c.sweep.storage, plan.study_dir, retry=c.sweep.storage_retry)
    sampler = make_sampler(c.sweep, plan.grid, worker=worker, conditional=bool(c.experiment.conditional))
    sampler = wrap(sampler, plan, seed=worker_seed(c.sweep.seed, worker))  # a conditional search: the refusal-free ask
    with study_lock(c.sweep.storage, plan.study_dir, plan.name):  # hosts starting at once create it once
        study = optuna.create_study(study_name=plan.name, storage=storage, load_if_exists=True,
                                    directions=c.sweep.directions_resolved,
                                    sampler=sampler,
                                    pruner=make_pruner(c.sweep))
        check_identity(study, plan)
        if study.metric_names != list(c.sweep.objectives):  # dashboards show "val/acc", not "Objective 0"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning in some Optuna versions
                study.set_metric_names(list(c.sweep.objectives))
        if plan.classics:  # the networks a search is placed beside run first, once each
            enqueue_classics(study, plan)
    return study


def grid_points(plan: Plan) -> list[dict[str, Any]] | None:
    """The grid's points in run order: seed-major, so a study stopped half-way has every arm equally often.

    A tuned experiment runs its tuning points first (each arm with each value on ``tune_seeds``), then the
    comparison (each arm on ``seeds``, at its tuned value); with ``budgets``, the comparison runs once per
    budget, the smallest first.
    """
    from nasplay.sweep.trial import choices

    grid = plan.grid
    if grid is None:
        return None
    exp = plan.cfg.experiment
    tuned = list(exp.tune)
    base = [k for k in grid if k not in ("seed", "stage", "budget", *tuned)]

    def product(seeds: list[Any], extra: list[str]) -> list[dict[str, Any]]:
        names = ["seed", *base, *extra]
        axes = [seeds, *(choices(list(grid[n]))[0] for n in (*base, *extra))]
        return [dict(zip(names, combo)) for combo in itertools.product(*axes)]

    if exp.pairs:  # architecture-major: a study stopped half-way has whole pairs
        seeds = list(exp.seeds)
        return [{"seed": seeds[i % len(seeds)], "arm": arm, "pair": i, **point}
                for i, point in enumerate(plan.sampled_pairs()) for arm in grid["arm"]]
    if not exp.tune and not exp.budgets:
        return product(list(grid["seed"]), [])
    budget = (lambda b: {"budget": b}) if exp.budgets else (lambda b: {})
    points = [{**p, "stage": "tune", **budget(plan.budgets[0])} for p in product(list(exp.tune_seeds), tuned)] if tuned else []
    for b in plan.budgets:
        points += [{**p, **({"stage": "final"} if tuned else {}), **budget(b)} for p in product(list(exp.seeds), [])]
    return points


def _claimable(plan: Plan, pending: list[dict[str, Any]], trials: list[Any]) -> list[dict[str, Any]]:
    """Pending points that can start now: an arm's comparison waits until its tuning trials are all settled."""
    if not plan.cfg.experiment.tune:
        return pending
    unsettled = {p.get("arm") for p in pending if p.get("stage") == "tune"}
    unsettled |= {t.params.get("arm") for t in trials if t.params.get("stage") == "tune" and t.state.name in ("RUNNING", "WAITING")}
    return [p for p in pending if p.get("stage") != "final" or p.get("arm") not in unsettled]


def planned_total(plan: Plan, points: list[dict[str, Any]] | None) -> int | None:
    """How many trials the study has in all: the grid's size, capped by ``sweep.n_trials``."""
    n = plan.cfg.sweep.n_trials
    total = len(points) if points is not None else n
    return min(total, n) if n is not None and total is not None else total


def trials_left(plan: Plan, study: Any, points: list[dict[str, Any]] | None) -> int | None:
    """How many more trials the study may start (None: no bound, a sampled study without ``sweep.n_trials``)."""
    trials = study.get_trials(deepcopy=False)
    n = plan.cfg.sweep.n_trials
    left = n - sum(t.state.name in FINISHED for t in trials) if n is not None else None
    if points is not None:
        # RUNNING ones too: a dead worker's are retried once stale
        grid = len(_pending(plan, points, trials, set())) + sum(t.state.name in ("WAITING", "RUNNING") for t in trials)
        left = grid if left is None else min(left, grid)
    return left


def done_reason(plan: Plan, study: Any, points: list[dict[str, Any]] | None) -> str:
    """Why the study is complete ('' when it is not): its budget finished, or every grid point."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state.name in FINISHED for t in trials)
    n = plan.cfg.sweep.n_trials
    if n is not None and finished >= n:
        return f"{finished} trials finished (sweep.n_trials={n})"
    if points is not None and not any(t.state.name in ("RUNNING", "WAITING") for t in trials) \
            and not _pending(plan, points, trials, set()):
        return f"every grid point has a finished trial ({len(points)} points)"
    return ""


def run_loop(plan: Plan, study: Any, console: Any, callbacks: tuple = (), worker: int | None = None,
             live: bool = False, orphaned: Any = None) -> LoopResult:
    """One worker's ask-train-tell loop, until the study needs nothing more from it.

    The next trial is claimed under the study lock (stale trials of dead workers are failed and
    re-queued first), so workers in other processes or on other hosts never run a grid point twice and
    never start more than ``sweep.n_trials`` trials. A worker with nothing to claim while other trials
    are RUNNING waits for them: they may finish, fail and be retried, or turn out to be stale. Raises
    ``KeyboardInterrupt`` after a Ctrl-C, once every trial it claimed is told. ``orphaned()`` (a worker's: its
    coordinator is gone) returns why to claim no more ('' to go on): the loop then stops before its next claim.
    """
    with Interrupts() as interrupts:
        result = _loop(plan, study, console, callbacks, worker, live, interrupts, orphaned)
    if interrupts.requested:
        raise KeyboardInterrupt
    return result


def _loop(plan: Plan, study: Any, console: Any, callbacks: tuple, worker: int | None, live: bool,
          interrupts: Interrupts, orphaned: Any = None) -> LoopResult:
    import optuna

    from nasplay.private_api import study_storage, trial_id
    from nasplay.sweep.progress import EpochProgress, Progress
    from nasplay.sweep.retry import call, paused
    from nasplay.sweep.trial import TrialRunner, suggest
    from nasplay.track.tracker import make_tracker

    c = plan.cfg
    points = grid_points(plan)
    total = planned_total(plan, points)
    tag = f"[w{worker}] " if worker is not None else ""
    runner = TrialRunner(plan, make_tracker(c.logger, plan.study_dir), tuple(callbacks), interrupts=interrupts)
    progress = Progress(console, live=live, study=plan.name, total=total, objective=c.sweep.objectives[0],
                        maximize=c.sweep.directions_resolved[0] == "maximize", interval=c.progress_interval, prefix=tag)
    runner.extra_callbacks += (EpochProgress(progress, c.sweep.monitor),)  # epoch and batch of the trial in flight
    progress.seed_counts(study.get_trials(deepcopy=False))
    env = environment.of_trainer(c.trainer)  # what this worker's trials are computed with
    environment.claim(study, env)
    storage = study_storage(study)

    attempted: set[tuple] = set()
    failures, ran, begun = 0, 0, time.perf_counter()
    max_failures = c.sweep.max_failures or total or 10
    stopped, complete, fail_reason = "", False, ""
    with progress:
        while not interrupts.requested:
            gone = orphaned() if orphaned is not None else ""
            if gone:
                stopped = gone
                break
            trial, spec, wait = None, None, ""
            asked: list[Any] = []  # the trial this claim asked for, kept when a storage outage makes it start again

            def claim(asked: list[Any] = asked, failures: int = failures) -> tuple[Any, Any, str, str, bool]:
                """Pick and claim the next trial under the study lock: (trial, spec, why wait, why stop, complete)."""
                trial = spec = None
                wait, stopped, complete = "", "", False
                with study_lock(c.sweep.storage, plan.study_dir, plan.name):
                    if not asked:
                        for n in fail_stale(study, c.sweep.heartbeat_grace):
                            progress.note(f"{tag}trial {n:>3} FAIL     {STALE}: no heartbeat for {c.sweep.heartbeat_grace:g} s; "
                                          "its parameters are queued again")
                        trials = study.get_trials(deepcopy=False)
                        finished = sum(t.state.name in FINISHED for t in trials)
                        running = sum(t.state.name == "RUNNING" for t in trials)
                        waiting = sum(t.state.name == "WAITING" for t in trials)
                        progress.sync(trials)
                        point = None
                        if c.sweep.n_trials is not None and finished >= c.sweep.n_trials:
                            stopped, complete = f"{finished} trials finished (sweep.n_trials={c.sweep.n_trials})", True
                        elif points is not None:
                            pending = _pending(plan, points, trials, attempted)
                            ready = _claimable(plan, pending, trials)
                            if ready or waiting:
                                point = ready[0] if not waiting else None
                            elif running or pending:
                                wait = f"the grid's other {running} point(s) are running"
                            else:
                                stopped, complete = f"every grid point has a finished trial ({len(points)} points)", True
                        elif not waiting and finished + running >= c.sweep.n_trials:  # the rest of the budget is in flight
                            wait = f"{running} trial(s) are running"
                        if not stopped and failures >= max_failures:
                            stopped = f"{failures} trials failed in this run (sweep.max_failures={max_failures})"
                        if not stopped and c.sweep.timeout is not None and time.perf_counter() - begun > c.sweep.timeout:
                            stopped = f"sweep.timeout={c.sweep.timeout} s reached"
                        if stopped or wait or interrupts.requested:
                            return None, None, wait, stopped, complete
                        if point is not None:
                            study.enqueue_trial(point, skip_if_exists=False)
                        # pops a WAITING trial (a grid point, a retry) before sampling; a conditional search proposes
                        # until a network is feasible and new (nasplay.sweep.feasible: a refusal is not a trial)
                        propose = getattr(study.sampler, "propose", None)
                        asked.append(propose(study) if propose is not None and point is None and not waiting else study.ask())
                        if point is not None:
                            attempted.add(_key(point))
                    trial = asked[0]
                    spec = suggest(trial, plan)
                    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
                    trial.set_user_attr(environment.TRIAL_ATTR, env["fingerprint"])
                    storage.set_trial_system_attr(trial_id(trial), HEARTBEAT, time.time())
                return trial, spec, wait, stopped, complete

            # A claim is made whole under one lock: an outage (whose restart also ends a database's lock) makes it
            # start again, from the trial it asked for if it got that far (sweep.storage_retry bounds the wait).
            with paused(storage):
                trial, spec, wait, stopped, complete = call(claim, c.sweep.storage_retry)
            if stopped:
                break
            if trial is None:  # wait for the running trials (of this host or others) outside the lock
                time.sleep(min(c.sweep.heartbeat_interval, 1.0))
                continue
            progress.trial_started(trial.number, spec.arm, spec.seed)
            with Heartbeat(storage, trial_id(trial), c.sweep.heartbeat_interval):
                outcome = runner.run(trial, spec)
            state = {"COMPLETE": optuna.trial.TrialState.COMPLETE, "PRUNED": optuna.trial.TrialState.PRUNED,
                     "FAIL": optuna.trial.TrialState.FAIL}[outcome.state]
            try:
                study.tell(trial, outcome.values if outcome.state == "COMPLETE" else None, state=state)
            except optuna.exceptions.UpdateFinishedTrialError:  # failed as stale while it ran (a paused process)
                progress.note(f"{tag}trial {trial.number:>3} was marked stale by another worker; its retry counts, not this run")
                continue
            ran += 1
            failures += outcome.state == "FAIL"
            fail_reason = outcome.fail_reason or fail_reason
            append_curves(plan.study_dir, trial.number, outcome.curves)
            save_results(plan, study)
            if outcome.disk_full is not None:  # recorded (FAIL, retry, checkpoint kept): stop here, one line says why
                progress.note(f"{tag}trial {trial.number:>3} FAIL     {outcome.fail_reason}")
                raise outcome.disk_full
            value = outcome.values[0] if outcome.values else outcome.metrics.get(c.sweep.objectives[0])
            progress.trial_finished(trial.number, outcome.state, spec.arm, spec.seed, value, outcome.seconds,
                                    outcome.fail_reason, prefix=tag)
            if outcome.interrupted:
                interrupts.requested = True  # also when the interrupt reached the trial some other way
                progress.note(f"{tag}interrupted: the trial is marked FAIL (retry) and runs again when the study resumes")
        if interrupts.requested and not stopped:
            stopped = "interrupted"
    return LoopResult(ran, stopped, complete, failures, fail_reason)


def save_results(plan: Plan, study: Any) -> None:
    """``results.csv`` from the storage, read and written under a lock (workers never write an older snapshot last)."""
    import fcntl

    with open(plan.study_dir / ".results.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            write_results(plan.study_dir, study.get_trials(deepcopy=False))
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _key(point: dict[str, Any]) -> tuple:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in point.items()))


def _pending(plan: Plan, points: list[dict[str, Any]], trials: list[Any], attempted: set[tuple]) -> list[dict[str, Any]]:
    """Grid points still to run: none of their trials finished, is running or waiting, or failed for good."""
    shapes = {tuple(sorted(p)) for p in points}  # a tuned grid has two: tuning points carry the tuned settings
    taken: set[tuple] = set()
    for t in trials:
        if holds_its_point(t, plan.cfg.sweep.retry_failed):
            taken.update(_key({k: t.params[k] for k in shape}) for shape in shapes if all(k in t.params for k in shape))
    return [p for p in points if _key(p) not in taken and _key(p) not in attempted]


def check_identity(study: Any, plan: Plan) -> None:
    """A resumed study must compute the same trials: compare what changes results with what it was made with."""
    mine = plan.identity
    stored = study.user_attrs.get("nasplay_config")
    if stored is None:
        study.set_user_attr("nasplay_config", mine)
        return
    # A setting added to nasplay after the study was made is absent from what it stored: at its default it changes nothing.
    defaults = _schema_defaults()
    diffs = [(k, a, b) for k, a, b in _diff(stored, mine) if not (a is _MISSING and _at(defaults, k) == b)]
    diffs = [(k, None if a is _MISSING else a, None if b is _MISSING else b) for k, a, b in diffs]
    if diffs:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:6])
        raise ValueError(f"study {plan.name!r} exists with a different config ({shown}{' ...' if len(diffs) > 6 else ''}); "
                         f"give the new one its own name with study=NAME, or put the old values back to resume it")


_MISSING = object()


def _diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k, _MISSING), b.get(k, _MISSING), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [(prefix, a, b)]


def _schema_defaults() -> dict:
    """The schema's default config as plain data (what a key absent from an older study's record stood for)."""
    from omegaconf import OmegaConf

    from nasplay.sweep.config import NasplayConfig

    return json.loads(json.dumps(OmegaConf.to_container(OmegaConf.structured(NasplayConfig), resolve=False), default=str))


def _at(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data
