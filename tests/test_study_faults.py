"""Faults a long study meets, end to end with the real parts: workers that die, a run whose trials all fail,
a full disk (ENOSPC injected into the real writers), orphaned workers. Each ends in one line per cause and a
study that resumes; see docs/faults.md."""

from __future__ import annotations

import contextlib
import errno
import io
import json
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
    """Both arms diverge (lr 1e9 and 1e10: NaN loss): the studies are recorded, and the command says why it did not do
    its work. A multirun runs every job, then exits non-zero for the jobs that did not finish."""
    proc = subprocess.run([sys.executable, "-m", "nasplay", "-m", *TINY, "optim.lr=1e9,1e10", "experiment.name=allfail",
                           "sweep.workers=1", f"runs_dir={tmp_path}"], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    lines = [x for x in out.splitlines() if x.startswith("error: ")]
    assert len(lines) == 2, out  # one a job, each job's study ran
    for line in lines:
        assert line.startswith("error: all 2 trial(s) of this run failed (the last: diverged: training loss is"), line
    assert "Traceback" not in out
    studies = sorted(p.name for p in (tmp_path / "allfail").iterdir())
    assert len(studies) == 2 and all(n.startswith("allfail-optim.lr=") for n in studies), studies
    for name in studies:
        assert [t.state.name for t in trials_of(tmp_path / "allfail" / name, name)] == ["FAIL", "FAIL"]


# --- a full disk: ENOSPC injected into the real writers ------------------------------------------------------

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def fill_disk(monkeypatch, kind: str) -> None:
    """Make the first write of ``kind`` fail as a full disk does (after writing part of what it had, where a real
    write can)."""
    if kind == "checkpoint":  # Lightning's writer of last.ckpt: the second epoch's checkpoint finds no space
        import lightning.fabric.plugins.io.torch_io as torch_io

        real, calls = torch_io._atomic_save, []

        def save(checkpoint, path):
            calls.append(path)
            if len(calls) == 2:
                raise ENOSPC
            return real(checkpoint, path)

        monkeypatch.setattr(torch_io, "_atomic_save", save)
    elif kind == "results":
        real_write = Path.write_text

        def write_text(self, data, *a, **kw):
            if self.name.startswith(".results.csv."):
                real_write(self, data[: len(data) // 2], *a, **kw)
                raise ENOSPC
            return real_write(self, data, *a, **kw)

        monkeypatch.setattr(Path, "write_text", write_text)
    elif kind == "curves":
        import nasplay.sweep.results as results

        class Full:  # the file's first write takes 10 bytes, the next finds the disk full
            def __init__(self, f):
                self.f, self.writes = f, 0

            def write(self, data):
                self.writes += 1
                if self.writes > 1:
                    raise ENOSPC
                return self.f.write(bytes(data[:10]))

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

        monkeypatch.setattr(results, "open", lambda *a, **kw: Full(open(*a, **kw)), raising=False)
    elif kind == "journal":  # the first epoch value reported to the journal is half written
        from optuna.storages.journal import JournalFileBackend

        real_append, hit = JournalFileBackend.append_logs, []

        def append_logs(self, logs):
            if not hit and any("intermediate_value" in log for log in logs):
                hit.append(1)
                with open(self.path, "ab") as f:  # nasplay's JournalBackend
                    f.write(json.dumps(logs[0]).encode()[:25])
                raise ENOSPC
            return real_append(self, logs)

        monkeypatch.setattr(JournalFileBackend, "append_logs", append_logs)


@pytest.mark.parametrize("kind", ["checkpoint", "results", "curves", "journal"])
def test_a_full_disk_stops_the_study_with_one_line_naming_the_path_and_it_resumes(compose, tmp_path, monkeypatch, kind):
    from nasplay.sweep.faults import DiskFull
    from nasplay.sweep.results import read_csv

    name = f"full_{kind}"
    study_dir = tmp_path / name / name
    cfg = (*TINY, "trainer.max_epochs=2", f"experiment.name={name}", "sweep.workers=1", f"runs_dir={tmp_path}",
           "sweep.heartbeat_interval=0.2", "sweep.heartbeat_grace=0.5")
    with monkeypatch.context() as m:
        fill_disk(m, kind)
        with pytest.raises(DiskFull) as full:
            run(compose(*cfg))
    line = str(full.value)
    path = {"checkpoint": study_dir / "ckpt", "results": study_dir / "results.csv", "curves": study_dir / "curves.csv",
            "journal": study_dir / "optuna.journal"}[kind]
    assert "\n" not in line and line.startswith(f"disk full: no space left on the device of {path}"), line
    assert line.endswith("free space and run the same command again: the study resumes where it stopped")
    journal = (study_dir / "optuna.journal").read_bytes()
    assert journal.endswith(b"\n")  # whole: the half-written record was taken back
    trials = trials_of(study_dir, name)
    assert [t.state.name for t in trials] in (["COMPLETE"], ["FAIL"])  # told, nothing left RUNNING
    assert not list(study_dir.glob(".results.csv.*"))  # no half-written temporary file left behind
    if kind == "curves":
        assert (study_dir / "curves.csv").read_bytes() == b""  # the 10 bytes that fit were taken back
    if trials[0].state.name == "FAIL":  # the trial met it: marked for a retry, its checkpoint kept
        assert trials[0].user_attrs["retry"] and trials[0].user_attrs["fail_reason"] == line
        assert "setup_error" not in trials[0].user_attrs

    # space freed: the same command finishes the study, every point once
    result, text = run(compose(*cfg))
    trials = trials_of(study_dir, name)
    assert result.complete and result.problems == [], text
    done = sorted((t.params["arm"], t.params["seed"]) for t in trials if t.state.name == "COMPLETE")
    assert done == [("activation=relu", 0), ("activation=tanh", 0)]
    rows = read_csv(study_dir / "results.csv")
    assert [(int(r["number"]), r["state"]) for r in rows] == [(t.number, t.state.name) for t in trials]
    if kind == "checkpoint":  # the retry went on from the checkpoint of the epoch before the disk filled up
        (retry,) = [t for t in trials if t.number > 0 and t.params == trials[0].params]
        assert retry.user_attrs["resumed_from_epoch"] == 1


# --- the coordinator killed: its workers finish their trials, claim no new one, and exit --------------------

def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:  # a zombie (no init to reap it in a container) has exited too
            return any(line.split()[:2] == ["State:", "Z"] for line in f)
    except FileNotFoundError:
        return True


def test_orphaned_workers_finish_their_trial_claim_no_new_one_and_exit(compose, tmp_path):
    """SIGKILL to the coordinator of 2 workers while both train: each records its trial, claims nothing more and
    exits (nothing lost, nothing doubled); the same command then finishes the study."""
    import signal
    import time

    from nasplay.sweep.storage import HEARTBEAT

    name = "orphans"
    study_dir = tmp_path / name / name
    args = (*TINY, "data.limit=480", "trainer.max_epochs=4", "experiment.seeds=[0, 1]", f"experiment.name={name}",
            f"runs_dir={tmp_path}", "sweep.heartbeat_interval=0.5", "sweep.heartbeat_grace=2")
    proc = subprocess.Popen([sys.executable, "-m", "nasplay", *args, "sweep.workers=2"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180
        training: list = []
        while time.monotonic() < deadline and len(training) < 2:
            assert proc.poll() is None
            try:
                trials = trials_of(study_dir, name) if (study_dir / "optuna.journal").exists() else []
            except KeyError:
                trials = []
            training = [t for t in trials if t.state.name == "RUNNING" and HEARTBEAT in t.system_attrs]
            time.sleep(0.05)
        assert len(training) == 2, "the two workers were never seen training at once"
        pids = [int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in training]
        os.kill(proc.pid, signal.SIGKILL)  # the coordinator alone, not its workers
        proc.wait()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(map(_exited, pids)):
            time.sleep(0.1)
        assert all(map(_exited, pids)), "orphaned workers still running"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    trials = trials_of(study_dir, name)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]  # their trials recorded, no new one claimed
    assert sorted(t.number for t in trials) == sorted(t.number for t in training)
    assert "the coordinator (pid" in (study_dir / "nasplay.log").read_text()  # each said why it stopped

    result, text = run(compose(*args, "sweep.workers=1"))
    trials = trials_of(study_dir, name)
    assert result.ran == 2 and result.complete and result.problems == [], text
    assert sorted((t.params["arm"], t.params["seed"]) for t in trials) == [  # every point once
        (a, s) for a in ("activation=relu", "activation=tanh") for s in (0, 1)]
