"""Faults with several workers: one of two live workers killed with SIGKILL mid-trial (the other retries its
trial and finishes the study; the command exits 1 with a line saying the worker died), and Ctrl-C at a terminal
while both train (every trial marked, every W&B run finished, the storage consistent; the same command then finishes
the study)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from wandb_read import read_run, run_files

from nasplay.sweep.results import read_csv
from nasplay.sweep.storage import HEARTBEAT, STALE, make_storage

pytestmark = pytest.mark.slow  # subprocess workers killed and interrupted

ROOT = Path(__file__).resolve().parents[1]
# 2 arms x 2 seeds on 2 workers; trials of several seconds, so that both are caught training
STUDY = ("arch=lenet5_common", "data.limit=960", "data.batch_size=32", "trainer.max_epochs=8", "sweep=grid",
         "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0, 1]",
         "sweep.workers=2", "sweep.heartbeat_interval=0.5", "sweep.heartbeat_grace=2", "progress=false")
POINTS = Counter({(a, s): 1 for a in ("activation=relu", "activation=tanh") for s in (0, 1)})


@contextlib.contextmanager
def study_process(tmp_path: Path, name: str, *extra: str) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``python -m nasplay`` on the study in its own session (as at a terminal); killed with its workers if still alive."""
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "nasplay", *STUDY, f"experiment.name={name}", f"runs_dir={tmp_path}", *extra],
                            cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def trials_of(study_dir: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=make_storage(None, study_dir)).get_trials()


def two_training(proc: subprocess.Popen, log: Path, study_dir: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    """Wait until both workers train a trial past its second epoch (so each has a checkpoint); return the two."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:  # the journal file can exist a moment before the study's creation is written to it
            trials = trials_of(study_dir, name) if (study_dir / "optuna.journal").exists() else []
        except KeyError:
            trials = []
        running = [t for t in trials if t.state.name == "RUNNING" and HEARTBEAT in t.system_attrs
                   and len(t.intermediate_values) >= 2]  # epoch 1 validated: epoch 0's checkpoint is on disk
        if len({t.user_attrs.get("worker") for t in running}) == 2:
            return running
        time.sleep(0.05)
    raise AssertionError(f"the two workers were never seen training at once:\n{log.read_text()}")


def test_one_of_two_workers_killed_its_trial_is_retried_by_the_other(tmp_path):
    name = "kill1"
    study_dir = tmp_path / name / name
    with study_process(tmp_path, name, "logger=none") as (proc, log):
        victim = two_training(proc, log, study_dir, name)[0]
        os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        assert proc.wait(timeout=240) == 1, log.read_text()  # the study finished, but a worker died: the user hears of it
    out = log.read_text()
    trials = trials_of(study_dir, name)

    (line,) = [x for x in out.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: worker ") and "died (signal 9)" in line, out
    stale = trials[victim.number]
    assert stale.state.name == "FAIL" and stale.user_attrs["fail_reason"] == STALE
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert retry.state.name == "COMPLETE" and retry.params == victim.params
    assert retry.user_attrs["worker"] != victim.user_attrs["worker"]  # the surviving worker took it over
    assert retry.user_attrs["resumed_from_epoch"] >= 1  # from the checkpoint the dead worker left
    done = Counter((t.params["arm"], t.params["seed"]) for t in trials if t.state.name == "COMPLETE")
    assert done == POINTS  # every grid point once: nothing lost, nothing twice
    assert [t.state.name for t in trials].count("RUNNING") == 0 and len(trials) == 5
    rows = read_csv(study_dir / "results.csv")
    assert [(int(r["number"]), r["state"]) for r in rows] == [(t.number, t.state.name) for t in trials]


def test_ctrl_c_with_two_workers_marks_both_trials_and_the_study_resumes(tmp_path):
    name = "ctrlc"
    study_dir = tmp_path / name / name
    with study_process(tmp_path, name, "logger=wandb") as (proc, log):
        two_training(proc, log, study_dir, name)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground process group
        assert proc.wait(timeout=120) == 130, log.read_text()
    out = log.read_text()
    trials = trials_of(study_dir, name)

    assert "interrupted; run the same command again to continue the study" in out, out
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]  # the storage is consistent
    cut = [t for t in trials if t.state.name == "FAIL"]
    assert len(cut) == 2 and all(t.user_attrs["fail_reason"] == "interrupted" and t.user_attrs["retry"] for t in cut)
    runs = {r.id: r for r in map(read_run, run_files(study_dir))}
    assert all(runs[t.user_attrs["wandb_id"]].exit_code == 1 for t in cut)  # each W&B run was finished, as failed
    assert len(list(study_dir.glob("ckpt/*/last.ckpt"))) == 2  # kept, to continue from

    with study_process(tmp_path, name, "logger=wandb") as (again, log2):
        assert again.wait(timeout=240) == 0, log2.read_text()
    trials = trials_of(study_dir, name)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert Counter((t.params["arm"], t.params["seed"]) for t in done) == POINTS
    resumed = [t for t in done if t.params in [c.params for c in cut]]
    assert len(resumed) == 2 and all(t.user_attrs["resumed_from_epoch"] >= 1 for t in resumed)
    assert list(study_dir.glob("ckpt/*/last.ckpt")) == []
