"""Faults of the storage, with the real parts: a journal whose last record was cut mid-write (cut at every byte of
it), a PostgreSQL server restarted while trials train, and the transient errors the storage calls retry through.
See docs/faults.md."""

from __future__ import annotations

import io
import logging
from collections import Counter
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from nasplay.sweep.runner import run_study
from nasplay.sweep.storage import JOURNAL, make_storage

TINY = ("arch=lenet5_common", "data.limit=240", "data.batch_size=32", "trainer.max_epochs=1", "sweep=grid",
        "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0]", "logger=none",
        "progress=false", "sweep.workers=1")
POINTS = Counter({("activation=relu", 0): 1, ("activation=tanh", 0): 1})


def run(cfg, **kw):
    buf = io.StringIO()
    result = run_study(cfg, console=Console(file=buf, width=300), **kw)
    return result, buf.getvalue()


def summary(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    return [(t.number, t.state.name, t.params, t.values, t.user_attrs) for t in trials]


@pytest.mark.slow  # a real study, then ~200 journals opened, then one resumed study
def test_a_journal_cut_at_every_byte_of_its_last_record_is_repaired_and_resumes(compose, tmp_path, caplog):
    """kill -9 or a power loss during an append leaves the last record without its end. Each cut: the storage
    opens, the torn bytes are dropped (a copy kept, one line logged), the study loads as it was before that
    write, and the next write lands on a whole journal. Then one cut study resumes to the end."""
    result, _ = run(compose(*TINY, "experiment.name=torn", f"runs_dir={tmp_path}"))
    assert result.counts["COMPLETE"] == 2
    data = (Path(result.study_dir) / JOURNAL).read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1  # where the last record begins
    last = data[start:]
    assert last.endswith(b"\n") and len(last) > 50

    def load(d: Path) -> list[optuna.trial.FrozenTrial]:
        return optuna.load_study(study_name="torn", storage=make_storage(None, d)).get_trials()

    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / JOURNAL).write_bytes(data[:start])
    before = summary(load(whole))  # the study as it was before the last write
    assert before != summary(load(Path(result.study_dir)))

    d = tmp_path / "cut"
    d.mkdir()
    caplog.set_level(logging.WARNING, logger="nasplay.sweep.journal")
    for k in range(len(last)):  # k bytes of the last record made it to the disk (k = 0: none, the journal is whole)
        for p in d.iterdir():
            p.unlink()
        (d / JOURNAL).write_bytes(data[:start + k])
        caplog.clear()
        trials = load(d)
        assert summary(trials) == before, k
        assert (d / JOURNAL).read_bytes() == data[:start], k  # the torn bytes are gone, nothing else
        backups = sorted(d.glob(f"{JOURNAL}.torn-*"))
        lines = [r.getMessage() for r in caplog.records if r.name == "nasplay.sweep.journal"]
        if k == 0:
            assert backups == [] and lines == [], k
            continue
        assert [b.read_bytes() for b in backups] == [data[:start + k]], k  # the journal as it was, kept
        assert len(lines) == 1 and f"({k} bytes without their end" in lines[0] and str(backups[0]) in lines[0], (k, lines)
        # the next write lands on a whole journal (before the repair it fused with the torn bytes into a line
        # that was not JSON, and the study could not be loaded again)
        optuna.load_study(study_name="torn", storage=make_storage(None, d)).set_user_attr("after", k)
        assert optuna.load_study(study_name="torn", storage=make_storage(None, d)).user_attrs["after"] == k
        assert [r.getMessage() for r in caplog.records if r.name == "nasplay.sweep.journal"] == lines  # repaired once

    # One cut study resumed: its last tell was lost, so that trial is RUNNING with an old heartbeat; the resumed
    # run fails it as stale and runs its point again. Every point once, the repair said once.
    study_dir = Path(result.study_dir)
    (study_dir / JOURNAL).write_bytes(data[:start + len(last) // 2])
    caplog.clear()
    again, text = run(compose(*TINY, "experiment.name=torn", f"runs_dir={tmp_path}", "sweep.heartbeat_interval=0.2",
                              "sweep.heartbeat_grace=0.5"))
    assert again.complete and again.ran == 1 and again.problems == [], text
    trials = load(study_dir)
    done = Counter((t.params["arm"], t.params["seed"]) for t in trials if t.state.name == "COMPLETE")
    assert done == POINTS
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"] and trials[2].user_attrs["retry_of"] == 1
    assert len([r for r in caplog.records if r.name == "nasplay.sweep.journal"]) == 1
    assert len(list(study_dir.glob(f"{JOURNAL}.torn-*"))) == 1


# --- transient storage faults: what is retried, for how long ------------------------------------------------

def test_transient_tells_an_outage_from_a_mistake_on_real_driver_errors(tmp_path):
    """A refused connection (a real psycopg error: nothing listens on the port) is an outage; a missing table
    (a real SQLite error) is not. ``call`` retries the first until ``sweep.storage_retry`` runs out, naming it."""
    import socket
    import time

    import psycopg
    import sqlalchemy as sa

    from nasplay.sweep.retry import OUTAGE, StorageUnavailable, call, outage_ended, transient

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"postgresql://u@127.0.0.1:{port}/db", connect_timeout=5)
    assert transient(refused.value)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(sa.exc.OperationalError) as missing, engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM nothing_here"))
    assert not transient(missing.value)
    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    wrapped.__cause__ = refused.value  # how Optuna's RDBStorage reports it
    assert transient(wrapped)

    tries = []

    def refuse():
        tries.append(1)
        psycopg.connect(f"postgresql://u@127.0.0.1:{port}/db", connect_timeout=5)

    with pytest.raises(StorageUnavailable, match=r"unreachable for 0.6 s \(sweep.storage_retry\): OperationalError: .*refused"):
        call(refuse, 0.6)
    assert len(tries) >= 2  # retried with backoff before giving up
    # given up: the outage is over for this process, so stale trials are counted again from now on
    assert OUTAGE.since is None and 0 < outage_ended() <= time.time()
    with pytest.raises(sa.exc.OperationalError):  # not transient: raised at once
        call(lambda: engine.connect().execute(sa.text("SELECT * FROM nothing_here")), 30)


def test_storage_retry_is_checked_before_anything_runs(compose, tmp_path):
    from nasplay.sweep.plan import to_config

    assert to_config(compose(*TINY, f"runs_dir={tmp_path}")).sweep.storage_retry == 300
    assert to_config(compose(*TINY, "sweep.storage_retry=0", f"runs_dir={tmp_path}")).sweep.storage_retry == 0
    with pytest.raises(ValueError, match=r"sweep.storage_retry must be a number of seconds >= 0 .* got -1"):
        to_config(compose(*TINY, "sweep.storage_retry=-1", f"runs_dir={tmp_path}"))


# --- a real PostgreSQL server restarted while two workers train ---------------------------------------------

def _postgres_bin() -> Path | None:
    import glob
    import shutil

    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own (initdb in a temporary folder, a free port), stopped and removed after.

    The restart test does not use the suite's shared server (``postgres_url``, scripts/postgres.sh): restarting
    that one would cut the connections of the tests running beside it under pytest-xdist. Same binaries, own
    cluster: skips, saying why, where PostgreSQL is not installed; fails instead when NASPLAY_REQUIRE_POSTGRES=1 (CI).
    """
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    def missing(why: str):
        msg = f"PostgreSQL binaries needed: {why} (scripts/postgres.sh installs them)"
        pytest.fail(msg) if os.environ.get("NASPLAY_REQUIRE_POSTGRES") == "1" else pytest.skip(msg)

    bin_dir = _postgres_bin()
    if bin_dir is None:
        missing("no pg_ctl / initdb on PATH or under /usr/lib/postgresql/*/bin")
    as_user: dict = {}
    root = Path(tempfile.mkdtemp(prefix="nasplay-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to the postgres user
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            missing("running as root and there is no 'postgres' user to own a cluster")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"

    def pg(*args: str) -> None:
        r = subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, timeout=120, cwd=root, **as_user)
        assert r.returncode == 0, f"{' '.join(args)}: {r.stdout}{r.stderr}"

    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg("initdb", "-D", str(data), "-A", "trust", "-U", "nasplay", "--no-sync")
    pg("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start")

    class Server:
        url = f"postgresql://nasplay@127.0.0.1:{port}/postgres"

        @staticmethod
        def stop() -> None:
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")

        @staticmethod
        def start() -> None:
            pg("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start")

    try:
        yield Server
    finally:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, cwd=root,
                       **as_user)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow  # a PostgreSQL cluster, a study with 2 spawned workers
def test_postgresql_restarted_while_two_trials_train_the_study_finishes_in_the_same_run(own_postgres, compose, tmp_path):
    """The server stops (fast shutdown: every connection cut) while both workers train, stays down 3 s, and starts
    again: the trials train on, their heartbeats, epoch values and tells are retried, the workers claim again under
    a new lock, and the same run finishes the study with nothing to report (``python -m nasplay`` exits 0 exactly
    then), every grid point once, no trial failed.

    The study runs in this process (its workers are spawned processes, as always), the restart in a thread beside it:
    a ``python -m nasplay`` subprocess would add the start of one more process and the report, a minute on a busy
    machine, and decide its exit code from the same ``problems``."""
    import threading
    import time

    from nasplay.sweep.storage import HEARTBEAT, rdb_url

    url = own_postgres.url
    cfg = compose("arch=lenet5_common", "data.limit=2400", "data.batch_size=32", "trainer.max_epochs=4", "sweep=grid",
                  "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0]", "logger=none",
                  "progress=false", "sweep.workers=2", "sweep.heartbeat_interval=0.5", "sweep.heartbeat_grace=5",
                  "sweep.storage_retry=60", "experiment.name=pgrestart", f"sweep.storage='{url}'", f"runs_dir={tmp_path}")
    seen: dict = {}

    def restart_while_two_train() -> None:
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    trials = optuna.load_study(study_name="pgrestart", storage=rdb_url(url)).get_trials()
                except Exception:  # noqa: BLE001 - not created yet (the tables, or the study)
                    trials = []
                training = [t for t in trials if t.state.name == "RUNNING" and HEARTBEAT in t.system_attrs
                            and len(t.intermediate_values) >= 1]
                if len(training) == 2:
                    seen["training"] = training
                    own_postgres.stop()
                    time.sleep(3)
                    own_postgres.start()
                    return
                time.sleep(0.1)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            seen["error"] = e

    restarter = threading.Thread(target=restart_while_two_train)
    restarter.start()
    result, out = run(cfg)
    restarter.join()
    assert "error" not in seen, seen.get("error")
    assert "training" in seen, f"the two workers were never seen training at once:\n{out}"
    trials = optuna.load_study(study_name="pgrestart", storage=rdb_url(url)).get_trials()

    assert "storage unreachable" in out and "storage back after" in out, out  # the outage was met, and waited out
    assert result.problems == [] and result.complete and "error:" not in out and "Traceback" not in out, out
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2, [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    assert Counter((t.params["arm"], t.params["seed"]) for t in trials) == POINTS
    for t in seen["training"]:  # the trials in training when the server went down went on to the end
        assert trials[t.number].state.name == "COMPLETE" and sorted(trials[t.number].intermediate_values) == list(range(4))
