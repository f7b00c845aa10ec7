"""Faults: a study process killed with SIGKILL in the middle of a trial, then resumed to completion."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from rich.console import Console

from nasplay.sweep.results import read_csv
from nasplay.sweep.runner import run_study
from nasplay.sweep.storage import HEARTBEAT, STALE, make_storage

pytestmark = pytest.mark.slow  # subprocess killed mid-trial

ROOT = Path(__file__).resolve().parents[1]
# Long enough trials (8 epochs of 960 digits) that the kill lands after a checkpoint and before the end.
STUDY = ("arch=lenet5_common", "data.limit=960", "data.batch_size=32", "trainer.max_epochs=8", "sweep=grid",
         "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0]", "experiment.name=faults",
         "logger=wandb", "sweep.workers=1", "sweep.heartbeat_interval=0.5", "sweep.heartbeat_grace=2")


def test_killed_worker_trial_is_failed_as_stale_and_retried_from_its_checkpoint(compose, tmp_path):
    study_dir = tmp_path / "faults" / "faults"
    proc = subprocess.Popen([sys.executable, "-m", "nasplay", *STUDY, f"runs_dir={tmp_path}"], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    storage = None
    running = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # a trial RUNNING with a checkpoint on disk
            ckpts = list(study_dir.glob("ckpt/*/last.ckpt"))
            if ckpts and (study_dir / "optuna.journal").exists():
                storage = storage or make_storage(None, study_dir)
                trials = optuna.load_study(study_name="faults", storage=storage).get_trials()
                running = [t for t in trials if t.state.name == "RUNNING"]
                if running and HEARTBEAT in running[0].system_attrs:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed = running[0]
    (ckpt,) = study_dir.glob("ckpt/*/last.ckpt")
    saved = tmp_path / "last.ckpt"
    shutil.copy(ckpt, saved)
    state = torch.load(saved, map_location="cpu", weights_only=True)  # tensors and plain data only
    assert state["epoch"] >= 0 and "state_dict" in state

    buf = io.StringIO()  # the same study again, in-process: waits out the grace period, fails and retries the trial
    result = run_study(compose(*STUDY, f"runs_dir={tmp_path}"), console=Console(file=buf, width=200))
    text = buf.getvalue()
    trials = optuna.load_study(study_name="faults", storage=storage).get_trials()

    assert result.counts["COMPLETE"] == 2 and result.counts["RUNNING"] == 0 and result.counts["WAITING"] == 0, text
    stale = trials[killed.number]
    assert stale.state.name == "FAIL" and stale.user_attrs["fail_reason"] == STALE and f"trial {killed.number:>3} FAIL" in text
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert retry.state.name == "COMPLETE" and retry.params == killed.params
    assert retry.user_attrs["resumed_from_epoch"] >= 1  # it continued from the checkpoint the killed process left
    done = sorted(t.params["arm"] for t in trials if t.state.name == "COMPLETE")
    assert done == ["activation=relu", "activation=tanh"]  # every grid point once: nothing lost, nothing twice
    assert retry.user_attrs["metrics"]["epochs"] == 8
    epochs = {int(r["epoch"]) for r in read_csv(study_dir / "curves.csv") if int(r["trial"]) == retry.number}
    assert min(epochs) >= retry.user_attrs["resumed_from_epoch"]  # the epochs before the kill were not trained again
    rows = read_csv(study_dir / "results.csv")
    assert [(int(r["number"]), r["state"]) for r in rows] == [(t.number, t.state.name) for t in trials]
    assert rows[killed.number]["fail_reason"] == STALE
    assert list(study_dir.glob("ckpt/*/last.ckpt")) == []  # finished trials drop their checkpoints


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_stale_sweep_fails_silent_trials_and_requeues_their_point(compose, tmp_path, backend, request):
    """Only a trial silent past the grace period is failed; its retry has the same parameters and seed."""
    from nasplay.sweep.plan import make_plan
    from nasplay.sweep.storage import Heartbeat, fail_stale
    from nasplay.sweep.trial import suggest

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    cfg = compose("arch=lenet5_common", "sweep=random", "sweep.n_trials=4", "experiment.seeds=[3, 4, 5]",
                  "sweep.space={optim.lr: {low: 0.01, high: 0.1}}", f"runs_dir={tmp_path}")
    plan = make_plan(cfg, data_shape=(1, 16, 10))
    study = optuna.create_study(study_name="stale", storage=make_storage(url, tmp_path), sampler=optuna.samplers.RandomSampler(0))
    dead, alive = study.ask(), study.ask()
    spec = suggest(dead, plan)
    dead.set_user_attr("seed", spec.seed)
    suggest(alive, plan)
    with Heartbeat(study._storage, alive._trial_id, 0.2):
        time.sleep(1.2)
        assert fail_stale(study, grace=1.0) == [dead.number]  # the beating one stays RUNNING
        assert fail_stale(study, grace=1.0) == []  # failed once only
    trials = study.get_trials()
    assert trials[dead.number].state.name == "FAIL" and trials[dead.number].user_attrs["fail_reason"] == STALE
    assert trials[alive.number].state.name == "RUNNING" and HEARTBEAT in trials[alive.number].system_attrs
    retry = study.ask()  # the re-queued point comes first
    again = suggest(retry, plan)
    assert retry.user_attrs["retry_of"] == dead.number and retry.params == trials[dead.number].params
    assert (again.seed, again.key) == (spec.seed, spec.key)  # same seed, same checkpoint directory
