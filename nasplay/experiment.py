"""An experiment end to end: its study (:mod:`nasplay.sweep`), then its report (:mod:`nasplay.report`).

``python -m nasplay`` calls :func:`run_experiment`; the sweep knows nothing of reports, and the report
reads only the study folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
from typing import Any

from rich.console import Console

from nasplay.report.search import write_search_report
from nasplay.report.write import log_report_to_wandb, to_json, write_report
from nasplay.sweep.runner import run_study


def run_experiment(cfg: Any, *, console: Any = None, callbacks: tuple = (), overrides: list[str] | None = None) -> Any:
    """Run (or resume) the study ``cfg`` describes, then write its report; returns the study's result.

    ``overrides`` are the command line's (recorded in ``study.json``)."""
    console = console or Console(highlight=False, soft_wrap=True)
    result = run_study(cfg, console=console, callbacks=callbacks, overrides=overrides)
    report_study(result, console)
    return result


def report_study(result: Any, console: Any) -> None:
    """The study's report (report.md, report.json, figures), also a W&B run of its own with the wandb logger.

    Written when the study ran trials (or has no report yet); a failure is printed, the study stands. Jobs of one
    study (a multirun) ending together write it in turn.
    """
    from nasplay.track.tracker import study_tag  # torch: with the study, not with the import of this module

    plan = result.plan
    fresh = result.ran > 0
    report = plan.study_dir / "report.md"
    with open(plan.study_dir / ".report.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fresh and report.exists():
            return
        try:
            _, written = write_report(plan.study_dir, wandb=False)
            console.print(f"report: {report}", markup=False, highlight=False)
            if plan.cfg.experiment.conditional:  # a search of the classics' space: its front, diffs and importances
                console.print(f"search report: {write_search_report(plan.study_dir)}", markup=False, highlight=False)
            lg = plan.cfg.logger
            if lg.kind == "wandb" and fresh:
                data = json.loads(to_json(written))
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    run_id = log_report_to_wandb(plan.study_dir, data, project=lg.project, mode=lg.mode, entity=lg.entity,
                                                 tags=[study_tag(plan.name), *lg.tags])  # quiet, as the trials' runs
                console.print(f"report: W&B run {run_id} in {plan.study_dir / 'wandb'}", markup=False, highlight=False)
        except Exception as e:  # noqa: BLE001 - the trials are done and saved; a report can be rewritten with `nasplay report`
            console.print(f"report failed ({type(e).__name__}: {e}); write it with: nasplay report {plan.study_dir}",
                          markup=False, highlight=False)
