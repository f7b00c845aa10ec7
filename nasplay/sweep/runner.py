"""The study loop: create or resume an Optuna study, ask, train, tell, until the study is done.

nasplay owns this loop (ask-and-tell) so that the live trial reaches the training loop: the pruning
callback reports every epoch and the pruner can stop a hopeless trial. Resuming is counting: a
study is done when ``sweep.n_trials`` trials are COMPLETE or PRUNED, or, for a grid, when every grid
point has a finished trial. Several processes (or hosts, with an RDB storage) may run the same loop
on one study.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from nasplay.sweep.plan import Plan, make_plan
from nasplay.sweep.results import append_curves, format_summary, summary_rows, write_results
from nasplay.sweep.storage import (
    HEARTBEAT,
    STALE,
    Heartbeat,
    fail_stale,
    holds_its_point,
    make_storage,
    storage_url,
    study_lock,
)
from nasplay.track.secrets import mask_text

FINISHED = ("COMPLETE", "PRUNED")


@dataclass
class StudyResult:
    """What a call of :func:`run_study` did and where the study is."""

    name: str
    study_dir: Any
    ran: int  # trials this call ran
    counts: dict[str, int]  # trials in the storage by state
    summary: list[dict[str, Any]]
    stopped: str  # why the loop ended
    complete: bool = False  # whether the study has all its trials


def run_study(cfg: Any, *, console: Any = None, callbacks: tuple = (), worker: int | None = None) -> StudyResult:
    """Run (or resume) the study ``cfg`` describes and print its summary; ``cfg`` is a composed config.

    ``callbacks`` are extra Lightning callbacks for every trial (tests and benchmarks use them). With
    ``sweep.workers`` > 1 this process starts the workers (:mod:`nasplay.sweep.workers`), waits for
    them and prints the summary; ``worker`` is set in a worker process (it runs trials, no summary).
    """
    import optuna
    from rich.console import Console

    from nasplay.sweep.samplers import enqueue_classics, make_pruner, make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The command line may hold the storage password, and whatever records sys.argv later (W&B run metadata,
    # spawned workers) would keep it: Hydra has read it already.
    sys.argv[:] = [mask_text(a) for a in sys.argv]
    console = console or Console(highlight=False, soft_wrap=True)
    plan = make_plan(cfg)
    c = plan.cfg
    from nasplay.sweep.trial import is_distributed

    strategy = str(c.trainer.strategy)
    if "ddp" in strategy and not any(k in strategy for k in ("spawn", "fork", "notebook")):
        raise ValueError(f"trainer.strategy={strategy} starts each rank by running the command again, which would run "
                         "the whole study once per rank; use trainer.strategy=ddp_spawn (trainer=ddp does)")
    if is_distributed(c.trainer) and (not c.sweep.storage or c.sweep.storage.endswith(".journal")):
        raise ValueError("trainer: a DDP trial (trainer.strategy=ddp*, trainer.devices>1) needs an RDB sweep.storage "
                         "(sqlite:///PATH.db, postgresql://...): its pruning decision reaches the study through it")
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    storage = make_storage(c.sweep.storage, plan.study_dir)
    with study_lock(c.sweep.storage, plan.study_dir, plan.name):  # hosts starting at once create it once
        study = optuna.create_study(study_name=plan.name, storage=storage, load_if_exists=True,
                                    directions=c.sweep.directions_resolved, sampler=make_sampler(c.sweep, plan.grid),
                                    pruner=make_pruner(c.sweep))
        _check_identity(study, plan)
        if plan.classics:  # the networks a search is placed beside run first, once each
            enqueue_classics(study, plan)
    grid_points = _grid_points(plan)
    total = len(grid_points) if grid_points is not None else c.sweep.n_trials
    if c.sweep.n_trials is not None and total is not None:
        total = min(total, c.sweep.n_trials)
    begun = time.perf_counter()
    if worker is None:
        _write_config(plan)
        plan.manifest().write(plan.study_dir)
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state.name in FINISHED for t in trials)
        started = any(t.state.name != "WAITING" for t in trials)  # queued trials (the classics of a search) are not a start
        console.print(f"study {plan.name!r} ({'resumed, ' + str(finished) + ' finished' if started else 'new'}) in "
                      f"{plan.study_dir}  storage {storage_url(c.sweep.storage, plan.study_dir)}", highlight=False, markup=False)
        console.print(_what(plan, total), highlight=False, markup=False)
        if len(c.sweep.objectives) > 1 and c.sweep.pruner.kind != "none":
            console.print("note: Optuna cannot prune a multi-objective study; the pruner is off", markup=False)
    from nasplay.sweep.workers import resolve_workers, run_workers

    n_workers, devices = resolve_workers(c) if worker is None else (1, [])
    done = _done(plan, study, grid_points) if n_workers > 1 else None
    if done:  # nothing to claim: no worker processes to start
        ran, stopped, complete = 0, done, True
    elif n_workers > 1:
        ran, stopped, complete = run_workers(cfg, plan, n_workers, devices, console, tuple(callbacks))
    else:
        ran, stopped, complete = _loop(plan, study, grid_points, total, console, callbacks, worker)
    if worker is not None:
        return StudyResult(plan.name, plan.study_dir, ran, {}, [], stopped, complete)

    trials = study.get_trials(deepcopy=False)
    _save_results(plan, study)
    counts = {s: sum(t.state.name == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    if ran == 0:
        what = f"study {plan.name!r} is finished, nothing to do" if complete else "nothing to do"
        console.print(f"{what}: {stopped}", markup=False, highlight=False)
    else:
        console.print(f"done: ran {ran} trial(s) in {time.perf_counter() - begun:.1f} s; {stopped}", markup=False, highlight=False)
    # Accuracy studies also show the test accuracy; objectives that are params / FLOPs have their own columns.
    metrics = [m for m in dict.fromkeys([*c.sweep.objectives, "test/acc"]) if m not in ("params", "flops")]
    if "acc" not in c.sweep.objectives[0]:
        metrics.remove("test/acc")
    rows = summary_rows(trials, [a.name for a in plan.arms], metrics)
    states = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
    console.print(f"\n{plan.name}: {states}; mean ± 95% CI (t) over seeds\n{format_summary(rows, metrics)}",
                  markup=False, highlight=False)
    log = plan.study_dir / "nasplay.log"
    console.print(f"results: {plan.study_dir / 'results.csv'}  curves: {plan.study_dir / 'curves.csv'}"
                  + (f"  log: {log}" if log.exists() else ""), markup=False, highlight=False)
    _report(plan, console, fresh=ran > 0)
    return StudyResult(plan.name, plan.study_dir, ran, counts, rows, stopped, complete)


def _report(plan: Plan, console: Any, *, fresh: bool) -> None:
    """The study's report (report.md, report.json, figures), also a W&B run of its own with the wandb logger.

    Written when this call ran trials (or there is none yet); a failure is printed, the study stands.
    """
    report = plan.study_dir / "report.md"
    if not fresh and report.exists():
        return
    try:
        from nasplay.report.study import log_report_to_wandb, write_report

        write_report(plan.study_dir)
        console.print(f"report: {report}", markup=False, highlight=False)
        lg = plan.cfg.logger
        if lg.kind == "wandb" and fresh:
            data = json.loads((plan.study_dir / "report.json").read_text())
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                run_id = log_report_to_wandb(plan.study_dir, data, project=lg.project, mode=lg.mode)  # quiet, as the trials' runs
            console.print(f"report: W&B run {run_id} in {plan.study_dir / 'wandb'}", markup=False, highlight=False)
    except Exception as e:  # noqa: BLE001 - the trials are done and saved; a report can be rewritten with `nasplay report`
        console.print(f"report failed ({type(e).__name__}: {e}); write it with: nasplay report {plan.study_dir}",
                      markup=False, highlight=False)


def _loop(plan: Plan, study: Any, grid_points: list[dict[str, Any]] | None, total: int | None, console: Any,
          callbacks: tuple, worker: int | None) -> tuple[int, str, bool]:
    """One worker's ask-train-tell loop: returns (trials it ran, why it stopped, whether the study is complete).

    The next trial is claimed under the study lock (stale trials of dead workers are failed and
    re-queued first), so workers in other processes or on other hosts never run a grid point twice and
    never start more than ``sweep.n_trials`` trials. A worker with nothing to claim while other trials
    are RUNNING waits for them: they may finish, fail and be retried, or turn out to be stale.
    """
    import optuna

    from nasplay.sweep.progress import EpochProgress, Progress
    from nasplay.sweep.trial import TrialRunner, suggest
    from nasplay.track.tracker import make_tracker

    c = plan.cfg
    tag = f"[w{worker}] " if worker is not None else ""
    runner = TrialRunner(plan, make_tracker(c.logger, plan.study_dir), tuple(callbacks))
    progress = Progress(console, live=_live(c.progress, console) and worker is None, study=plan.name, total=total,
                        objective=c.sweep.objectives[0], maximize=c.sweep.directions_resolved[0] == "maximize")
    if progress.live:
        runner.extra_callbacks += (EpochProgress(progress, c.sweep.monitor),)
    progress.seed_counts(study.get_trials(deepcopy=False))

    attempted: set[tuple] = set()
    failures, ran, begun = 0, 0, time.perf_counter()
    max_failures = c.sweep.max_failures or total or 10
    stopped, complete = "", False
    with progress:
        while True:
            trial, spec, wait = None, None, ""
            with study_lock(c.sweep.storage, plan.study_dir, plan.name):
                for n in fail_stale(study, c.sweep.heartbeat_grace):
                    progress.note(f"{tag}trial {n:>3} FAIL     {STALE}: no heartbeat for {c.sweep.heartbeat_grace:g} s; "
                                  "its parameters are queued again")
                trials = study.get_trials(deepcopy=False)
                finished = sum(t.state.name in FINISHED for t in trials)
                running = sum(t.state.name == "RUNNING" for t in trials)
                waiting = sum(t.state.name == "WAITING" for t in trials)
                point = None
                if c.sweep.n_trials is not None and finished >= c.sweep.n_trials:
                    stopped, complete = f"{finished} trials finished (sweep.n_trials={c.sweep.n_trials})", True
                elif grid_points is not None:
                    pending = _pending(plan, grid_points, trials, attempted)
                    if pending or waiting:
                        point = pending[0] if not waiting else None
                    elif running:
                        wait = f"the grid's other {running} point(s) are running"
                    else:
                        stopped, complete = f"every grid point has a finished trial ({len(grid_points)} points)", True
                elif not waiting and finished + running >= c.sweep.n_trials:  # the rest of the budget is in flight
                    wait = f"{running} trial(s) are running"
                if not stopped and failures >= max_failures:
                    stopped = f"{failures} trials failed in this run (sweep.max_failures={max_failures})"
                if not stopped and c.sweep.timeout is not None and time.perf_counter() - begun > c.sweep.timeout:
                    stopped = f"sweep.timeout={c.sweep.timeout} s reached"
                if not stopped and not wait:
                    if point is not None:
                        attempted.add(_key(point))
                        study.enqueue_trial(point, skip_if_exists=False)
                    trial = study.ask()  # pops a WAITING trial (a grid point, a retry) before sampling
                    spec = suggest(trial, plan)
                    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
                    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, time.time())
            if stopped:
                break
            if trial is None:  # wait for the running trials (of this host or others) outside the lock
                time.sleep(min(c.sweep.heartbeat_interval, 1.0))
                continue
            progress.trial_started(trial.number, spec.arm, spec.seed)
            with Heartbeat(study._storage, trial._trial_id, c.sweep.heartbeat_interval):
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
            append_curves(plan.study_dir, trial.number, outcome.curves)
            _save_results(plan, study)
            value = outcome.values[0] if outcome.values else outcome.metrics.get(c.sweep.objectives[0])
            progress.trial_finished(trial.number, outcome.state, spec.arm, spec.seed, value, outcome.seconds,
                                    outcome.fail_reason, prefix=tag)
            if outcome.interrupted:
                progress.note(f"{tag}interrupted: the trial is marked FAIL (retry) and runs again when the study resumes")
                raise KeyboardInterrupt
    return ran, stopped, complete


def _done(plan: Plan, study: Any, grid_points: list[dict[str, Any]] | None) -> str:
    """Why the study is complete ('' when it is not): its budget finished, or every grid point."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state.name in FINISHED for t in trials)
    n = plan.cfg.sweep.n_trials
    if n is not None and finished >= n:
        return f"{finished} trials finished (sweep.n_trials={n})"
    if grid_points is not None and not any(t.state.name in ("RUNNING", "WAITING") for t in trials) \
            and not _pending(plan, grid_points, trials, set()):
        return f"every grid point has a finished trial ({len(grid_points)} points)"
    return ""


def _save_results(plan: Plan, study: Any) -> None:
    """``results.csv`` from the storage, read and written under a lock (workers never write an older snapshot last)."""
    import fcntl

    with open(plan.study_dir / ".results.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            write_results(plan.study_dir, study.get_trials(deepcopy=False))
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _live(setting: bool | None, console: Any) -> bool:
    return bool(console.is_terminal and sys.stdout.isatty()) if setting is None else bool(setting)


def _what(plan: Plan, total: int | None) -> str:
    c = plan.cfg
    if plan.grid is not None and not c.sweep.space:
        return (f"{len(plan.arms)} arm(s) x {len(c.experiment.seeds)} seed(s) = {total} trials "
                f"[{', '.join(a.name for a in plan.arms)}]; sampler grid")
    params = (["arm"] if len(plan.arms) > 1 else []) + list(c.sweep.space) + (["seed"] if plan.grid else [])
    return f"{total} trials; sampler {c.sweep.sampler} over {', '.join(params)}; pruner {c.sweep.pruner.kind}"


def _grid_points(plan: Plan) -> list[dict[str, Any]] | None:
    """The grid's points in run order: seed-major, so a study stopped half-way has every arm equally often."""
    from nasplay.sweep.trial import choices

    grid = plan.grid
    if grid is None:
        return None
    names = ["seed", *[k for k in grid if k != "seed"]]
    axes = [choices(list(grid[n]))[0] for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*axes)]


def _key(point: dict[str, Any]) -> tuple:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in point.items()))


def _pending(plan: Plan, points: list[dict[str, Any]], trials: list[Any], attempted: set[tuple]) -> list[dict[str, Any]]:
    """Grid points still to run: none of their trials finished, is running or waiting, or failed for good."""
    taken: set[tuple] = set()
    for t in trials:
        if not all(k in t.params for k in points[0]):
            continue
        if holds_its_point(t, plan.cfg.sweep.retry_failed):
            taken.add(_key({k: t.params[k] for k in points[0]}))
    return [p for p in points if _key(p) not in taken and _key(p) not in attempted]


def _check_identity(study: Any, plan: Plan) -> None:
    """A resumed study must compute the same trials: compare what changes results with what it was made with."""
    mine = plan.identity
    stored = study.user_attrs.get("nasplay_config")
    if stored is None:
        study.set_user_attr("nasplay_config", mine)
        return
    diffs = _diff(stored, mine)
    if diffs:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:6])
        raise ValueError(f"study {plan.name!r} exists with a different config ({shown}{' ...' if len(diffs) > 6 else ''}); "
                         f"give the new one its own name with study=NAME, or put the old values back to resume it")


def _diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [(prefix, a, b)]


def _write_config(plan: Plan) -> None:
    """The resolved config (secrets masked) as ``config.yaml`` in the study directory."""
    import yaml

    path = plan.study_dir / "config.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text("# The resolved config of this study (written by python -m nasplay; secrets masked).\n"
                   + yaml.safe_dump(plan.resolved, sort_keys=False))
    tmp.replace(path)
