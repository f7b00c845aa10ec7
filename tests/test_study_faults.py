"""Faults a long study meets, end to end with the real parts: workers that die, a run whose trials all fail,
a full disk (ENOSPC injected into the real writers), orphaned workers. Each ends in one line per cause and a
study that resumes; see docs/faults.md."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import optuna
import pytest
from rich.console import Console

from nasplay.sweep.runner import run_study
from nasplay.sweep.storage import make_storage

pytestmark = pytest.mark.slow  # end-to-end studies, spawned workers and a subprocess

ROOT = Path(__file__).resolve().parents[1]
TINY = ("arch=lenet5_common", "data.limit=240", "data.batch_size=32", "trainer.max_epochs=1", "sweep=grid",
        "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0]", "logger=none", "progress=false")


def run(cfg, **kw):
    buf = io.StringIO()
    result = run_study(cfg, console=Console(file=buf, width=300), **kw)
    return result, buf.getvalue()


def trials_of(study_dir: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=make_storage(None, study_dir)).get_trials()


class WorkerCrash(BaseException):
    """Not an Exception: it escapes the trial (as a bug in nasplay's own loop would) and ends the worker."""


class Crash(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        raise WorkerCrash("boom")


def test_every_worker_died_one_line_each_traceback_in_the_log(compose, tmp_path):
    result, text = run(compose(*TINY, "experiment.name=died", "sweep.workers=2", f"runs_dir={tmp_path}"), callbacks=(Crash(),))
    log = Path(result.study_dir) / "nasplay.log"

    assert result.ran == 0 and len(result.problems) == 2, text
    for i, line in enumerate(result.problems):
        assert line == f"worker {i} died (exit code 1): WorkerCrash: boom (traceback in {log})"
        assert f"error: {line}" in text.splitlines()  # one line each on the console
    assert "Traceback" not in text and text.count("WorkerCrash") == 2  # the two lines, nothing else
    logged = log.read_text()
    assert logged.count("Traceback (most recent call last)") == 2 and "raise WorkerCrash(\"boom\")" in logged
    assert "worker 0 (" in logged and "worker 1 (" in logged


def test_a_run_whose_trials_all_failed_exits_non_zero_with_one_line(tmp_path):
    """Both arms diverge (lr 1e9): the study is recorded, and the command says why it did not do its work."""
    proc = subprocess.run([sys.executable, "-m", "nasplay", *TINY, "optim.lr=1e9", "experiment.name=allfail", "sweep.workers=1",
                           f"runs_dir={tmp_path}"], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    (line,) = [x for x in out.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: all 2 trial(s) of this run failed (the last: diverged: training loss is"), line
    assert "Traceback" not in out
    trials = trials_of(tmp_path / "allfail" / "allfail", "allfail")
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
