"""``run_study``: check a config, open its study, run its trials here or in worker processes, summarise.

The process that runs the command plays one role: with ``sweep.workers=1`` it runs the study loop
(:func:`nasplay.sweep.loop.run_loop`) itself; with more it starts the workers
(:mod:`nasplay.sweep.workers`), which each open the study and run the same loop, and waits for them.
Either way it then writes ``results.csv`` and prints the summary. The report is the entry point's
business (:mod:`nasplay.experiment`), after the study.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any

from nasplay import environment
from nasplay.sweep.loop import (
    FINISHED,
    LoopResult,
    done_reason,
    grid_points,
    open_study,
    planned_total,
    run_loop,
    save_results,
    trials_left,
)
from nasplay.sweep.plan import Plan, make_plan
from nasplay.sweep.results import format_summary, summary_rows
from nasplay.sweep.storage import storage_url
from nasplay.track.secrets import mask_text
from nasplay.train.data import make_datamodule


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
    plan: Plan | None = None
    problems: list[str] = dataclasses.field(default_factory=list)  # why the command must exit non-zero, one line each


def run_study(cfg: Any, *, console: Any = None, callbacks: tuple = (), overrides: list[str] | None = None) -> StudyResult:
    """Run (or resume) the study ``cfg`` describes and print its summary; ``cfg`` is a composed config.

    ``callbacks`` are extra Lightning callbacks for every trial (tests and benchmarks use them);
    ``overrides``, the command line's, are recorded in ``study.json`` (the last run's). With
    ``sweep.workers`` > 1 the trials run in worker processes (:mod:`nasplay.sweep.workers`).
    """
    import optuna
    from rich.console import Console

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The command line may hold the storage password, and whatever records sys.argv later (W&B run metadata,
    # spawned workers) would keep it: Hydra has read it already.
    sys.argv[:] = [mask_text(a) for a in sys.argv]
    console = console or Console(highlight=False, soft_wrap=True)
    plan = make_plan(cfg)
    if overrides is not None:
        plan.overrides = [mask_text(o) for o in overrides]
    c = plan.cfg
    study = open_study(plan)
    points = grid_points(plan)
    total = planned_total(plan, points)
    begun = time.perf_counter()
    _write_config(plan)
    # The held-out splits' sizes as the data module holds them: the report's intervals count their sampling noise.
    manifest = dataclasses.replace(plan.manifest(), **make_datamodule(c.data).eval_sizes())
    moved = environment.stamp(manifest, plan.study_dir, study, c.trainer)  # a resume elsewhere says what changed
    manifest.write(plan.study_dir)
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state.name in FINISHED for t in trials)
    started = any(t.state.name != "WAITING" for t in trials)  # queued trials (the classics of a search) are not a start
    console.print(f"study {plan.name!r} ({'resumed, ' + str(finished) + ' finished' if started else 'new'}) in "
                  f"{plan.study_dir}  storage {storage_url(c.sweep.storage, plan.study_dir)}", highlight=False, markup=False)
    console.print(_what(plan, total), highlight=False, markup=False)
    for note in plan.notes:  # what happens to the data (an image folder: its size, conversions, where it lives)
        console.print(note, highlight=False, markup=False)
    if moved:
        console.print(moved, highlight=False, markup=False)
    if len(c.sweep.objectives) > 1 and c.sweep.pruner.kind != "none":
        console.print("note: Optuna cannot prune a multi-objective study; the pruner is off", markup=False)
    from nasplay.sweep.workers import resolve_workers, run_workers

    n_workers, devices = resolve_workers(c)
    left = trials_left(plan, study, points) if n_workers > 1 else None
    if left is not None and left < n_workers:  # a worker with nothing to claim costs its start-up (seconds) and no more
        n_workers, devices = max(1, left), devices[:max(1, left)]
    done = done_reason(plan, study, points) if n_workers > 1 else None
    problems: list[str] = []
    if done:  # nothing to claim: no worker processes to start
        r = LoopResult(0, done, True)
    elif n_workers > 1:
        r, problems = run_workers(cfg, plan, n_workers, devices, console, tuple(callbacks))
    else:
        r = run_loop(plan, study, console, callbacks, live=_live(c.progress, console))
    ran, stopped, complete = r.ran, r.stopped, r.complete
    if ran and r.failed == ran:  # a run that did nothing but fail did not do its work
        problems.append(f"all {ran} trial(s) of this run failed (the last: {r.fail_reason or 'no reason given'})")

    trials = study.get_trials(deepcopy=False)
    save_results(plan, study)
    environment.gather(plan.study_dir, study)  # the environments of the workers that ran trials
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
    for p in problems:
        console.print(f"error: {p}", markup=False, highlight=False)
    return StudyResult(plan.name, plan.study_dir, ran, counts, rows, stopped, complete, plan, problems)


def _live(setting: bool | None, console: Any) -> bool:
    return bool(console.is_terminal and sys.stdout.isatty()) if setting is None else bool(setting)


def _what(plan: Plan, total: int | None) -> str:
    c = plan.cfg
    if plan.grid is not None and not c.sweep.space:
        return (f"{len(plan.arms)} arm(s) x {len(c.experiment.seeds)} seed(s) = {total} trials "
                f"[{', '.join(a.name for a in plan.arms)}]; sampler grid")
    params = (["arm"] if len(plan.arms) > 1 else []) + list(c.sweep.space) + (["seed"] if plan.grid else [])
    return f"{total} trials; sampler {c.sweep.sampler} over {', '.join(params)}; pruner {c.sweep.pruner.kind}"


def _write_config(plan: Plan) -> None:
    """The resolved config (secrets masked) as ``config.yaml`` in the study directory."""
    import yaml

    path = plan.study_dir / "config.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text("# The resolved config of this study (written by python -m nasplay; secrets masked).\n"
                   + yaml.safe_dump(plan.resolved, sort_keys=False))
    tmp.replace(path)
