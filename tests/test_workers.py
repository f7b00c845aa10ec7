"""Several workers on one study: spawned worker processes (sweep.workers=2) on the journal file and on a
real PostgreSQL server, and two separate commands ("hosts") sharing one PostgreSQL study."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from rich.console import Console
from wandb_read import run_files

from nasplay.sweep.results import read_csv
from nasplay.sweep.runner import run_study
from nasplay.sweep.storage import make_storage
from nasplay.sweep.workers import resolve_workers

pytestmark = pytest.mark.slow  # spawned worker processes

TINY = ("arch=lenet5_common", "data.limit=240", "data.batch_size=32", "trainer.max_epochs=2", "sweep=grid",
        "experiment.knob=activation", "experiment.values=[relu, tanh]")
ROOT = Path(__file__).resolve().parents[1]


def overlap(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
    return a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_two_workers_run_every_grid_point_exactly_once(compose, tmp_path, backend, request):
    """2 arms x 3 seeds with 2 worker processes: 6 trials, each grid point once, both workers busy at once."""
    storage = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    logger = "logger=wandb" if backend == "journal" else "logger=none"
    cfg = compose(*TINY, "experiment.seeds=[0, 1, 2]", f"experiment.name=w{backend}", logger, f"runs_dir={tmp_path}",
                  "sweep.workers=2", *([f"sweep.storage='{storage}'"] if storage else []))
    buf = io.StringIO()
    result = run_study(cfg, console=Console(file=buf, width=200))
    text = buf.getvalue()
    study_dir = Path(result.study_dir)
    trials = optuna.load_study(study_name=result.name, storage=storage or make_storage(None, study_dir)).get_trials()

    assert result.counts["COMPLETE"] == 6 and result.ran == 6, text
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    points = Counter((t.params["arm"], t.params["seed"]) for t in trials)
    assert points == Counter({(a, s): 1 for a in ("activation=relu", "activation=tanh") for s in (0, 1, 2)})
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2 and str(os.getpid()) not in {w.rsplit(":", 1)[1] for w in workers}  # spawned processes
    by = {w: [t for t in trials if t.user_attrs["worker"] == w] for w in workers}
    a, b = by.values()
    assert any(overlap(x, y) for x in a for y in b)  # asynchronous: the two trained at the same time

    rows = read_csv(study_dir / "results.csv")  # written by the workers and, last, by the parent: the storage's view
    assert [(int(r["number"]), r["state"], r["arm"]) for r in rows] == [(t.number, "COMPLETE", t.user_attrs["arm"]) for t in trials]
    made = json.loads((study_dir / "study.json").read_text())  # each worker recorded its environment: the study's
    assert {r["environment"] for r in rows} == {made["environment"]["fingerprint"]} == set(made["environments"])
    assert "2 workers (1 CPU thread(s) each)" in text and "[w0] trial" in text and "[w1] trial" in text
    assert "6 complete" in text
    if backend == "journal":  # one W&B run per trial, whichever process ran it
        ids = {p.stem.removeprefix("run-") for p in run_files(study_dir)}
        assert len({t.user_attrs["wandb_id"] for t in trials} & ids) == 6

    again = io.StringIO()  # a finished study: the workers find nothing to do
    result2 = run_study(cfg, console=Console(file=again, width=200))
    assert result2.ran == 0 and "is finished, nothing to do" in again.getvalue()


def test_two_hosts_share_a_postgresql_study(tmp_path, postgres_url):
    """Two separate commands (as on two machines) on one PostgreSQL study: exactly n_trials trials finish."""
    args = [sys.executable, "-m", "nasplay", *TINY, "sweep=random", "sweep.n_trials=3", "sweep.pruner.kind=none",
            "experiment.seeds=[0, 1, 2]", "experiment.name=hosts", "logger=none", "sweep.workers=1", f"sweep.storage='{postgres_url}'"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([*args, f"runs_dir={tmp_path / f'host{i}'}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = optuna.load_study(study_name="hosts", storage=postgres_url).get_trials()
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 3, [t.state for t in trials]
    assert sum(o.count(" COMPLETE ") for o in outs) == 3  # every trial reported by exactly one host
    assert "nasplay-test" not in "".join(outs)  # the password stays out of the output


def test_workers_auto_without_gpus_is_one_per_trials_threads_and_bad_values_are_named(compose, tmp_path, monkeypatch):
    """sweep.workers=auto means one worker per visible GPU; without GPUs (or on the CPU trainer) one per
    trainer.threads cores."""
    import nasplay.sweep.workers as workers
    from nasplay.sweep.plan import to_config

    monkeypatch.setattr(workers, "cpu_cores", lambda: 4)
    c = to_config(compose(*TINY, "sweep.workers=auto", "trainer=cpu", f"runs_dir={tmp_path}"))
    assert c.trainer.threads == 1 and resolve_workers(c) == (4, [None] * 4)
    c = to_config(compose(*TINY, "sweep.workers=auto", "trainer=cpu", "trainer.threads=2", f"runs_dir={tmp_path}"))
    assert resolve_workers(c) == (2, [None, None])
    c = to_config(compose(*TINY, "sweep.workers=auto", "trainer=cpu", "trainer.threads=null", f"runs_dir={tmp_path}"))
    assert resolve_workers(c) == (1, [None])
    c = to_config(compose(*TINY, "sweep.workers=3", "trainer=cpu", f"runs_dir={tmp_path}"))
    assert resolve_workers(c) == (3, [None, None, None])
    for bad, msg in (("sweep.workers=0", "sweep.workers must be an int >= 1 or 'auto'"),
                     ("sweep.workers=many", "sweep.workers must be an int >= 1 or 'auto'"),
                     ("sweep.heartbeat_grace=1", "sweep.heartbeat_grace (1.0) must be at least twice")):
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            to_config(compose(*TINY, bad, f"runs_dir={tmp_path}"))


def test_a_study_gives_the_same_numbers_whatever_its_worker_count(compose, tmp_path):
    """trainer.threads fixes each trial's arithmetic: 1 worker and 2 workers give bit-identical metrics."""
    import torch

    before = torch.get_num_threads()
    metrics = {}
    try:
        for n in (1, 2):
            cfg = compose(*TINY, "experiment.seeds=[0, 1]", f"experiment.name=n{n}", "logger=none", f"runs_dir={tmp_path}",
                          f"sweep.workers={n}")
            buf = io.StringIO()
            result = run_study(cfg, console=Console(file=buf, width=200))
            assert result.counts["COMPLETE"] == 4 and ("2 workers (1 CPU thread(s) each)" in buf.getvalue()) == (n == 2)
            rows = read_csv(Path(result.study_dir) / "results.csv")
            metrics[n] = {(r["arm"], r["seed"]): (r["test/acc"], r["val/acc"], r["train/loss"]) for r in rows}
    finally:
        torch.set_num_threads(before)
    assert metrics[1] == metrics[2]
