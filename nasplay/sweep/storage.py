"""Optuna storages: a journal file in the study directory by default, any RDB URL for many hosts.

Also what lets several workers share one study safely:

- :func:`study_lock`, a study-wide mutex held while a worker picks its next trial (so two workers never
  claim the same grid point): an advisory lock in PostgreSQL / MySQL (works across hosts), a file lock
  next to a journal or SQLite file (one host, or a shared file system with working ``flock``);
- :class:`Heartbeat`, a thread that stamps a running trial every ``interval`` seconds, and
  :func:`fail_stale`, which marks RUNNING trials whose stamp is older than ``grace`` as FAIL
  ("stale (worker died)") and re-queues their parameters, so a killed worker's trial runs again and
  resumes from its checkpoint. Optuna's own heartbeat exists only for ``RDBStorage`` and only inside
  ``study.optimize``; this one works with ask-and-tell and with every storage.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasplay.track.secrets import mask_text

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("nasplay.sweep.storage")
JOURNAL = "optuna.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
HEARTBEAT = "nasplay:heartbeat"  # system attr: unix time of a running trial's last heartbeat
STALE = "stale (worker died)"


def storage_url(storage: str | None, study_dir: Path) -> str:
    """Where the study lives, as given (a URL) or as a path (the journal file); for messages, masked."""
    return mask_text(storage) if storage else str(study_dir / JOURNAL)


def rdb_url(storage: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg://``: the driver installed with nasplay is psycopg 3."""
    if storage.startswith("postgresql://") or storage.startswith("postgres://"):
        return "postgresql+psycopg://" + storage.split("://", 1)[1]
    return storage


def make_storage(storage: str | None, study_dir: Path, retry: float | None = None) -> optuna.storages.BaseStorage:
    """``None`` -> ``<study_dir>/optuna.journal``; ``*.journal`` -> that journal file (its torn last record
    repaired: :mod:`nasplay.sweep.journal`); else an RDB URL. With ``retry`` (``sweep.storage_retry``) every call
    is retried through transient faults for up to that many seconds (:class:`nasplay.sweep.retry.RetryingStorage`)."""
    import optuna
    from optuna.storages.journal import JournalStorage

    from nasplay.private_api import cached_rdb
    from nasplay.sweep.journal import JournalBackend
    from nasplay.sweep.retry import RetryingStorage

    def retrying(s: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
        return s if retry is None else RetryingStorage(s, retry)

    if storage is None or storage.endswith(".journal"):
        path = Path(storage) if storage else study_dir / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        return retrying(JournalStorage(JournalBackend(str(path))))  # a torn last record is repaired here
    scheme = storage.split(":", 1)[0].split("+", 1)[0]
    if "://" not in storage or scheme not in (*RDB_SCHEMES, "postgres"):
        raise ValueError(f"sweep.storage: {mask_text(storage)!r} is neither a .journal file nor an RDB URL "
                         f"({', '.join(s + '://...' for s in RDB_SCHEMES)})")
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    # A server that does not answer at all (a host down) fails a connection after 10 s, not the OS's minutes.
    connect = {"connect_args": {"connect_timeout": 10}} if scheme in ("postgresql", "postgres") else {}
    attempts = 5
    for attempt in range(attempts):
        try:
            rdb = optuna.storages.RDBStorage(rdb_url(storage), engine_kwargs={"pool_pre_ping": True, **connect})
            return retrying(cached_rdb(rdb))  # the cache Optuna itself puts in front of an RDB storage
        except Exception as e:
            # Hosts that start together on an empty database race to create Optuna's tables; the loser
            # sees "already exists" and finds the tables there on its next try.
            if isinstance(e, (IntegrityError, ProgrammingError)) and attempt < attempts - 1:
                time.sleep(0.2 * (attempt + 1))
                continue
            # the driver's message may quote the URL: mask it. Not retried: at the start, a server that does not
            # answer is more often a wrong URL than an outage.
            raise ValueError(f"sweep.storage: cannot open {mask_text(storage)!r}: {mask_text(str(e))}") from None
    raise AssertionError("unreachable: the last attempt returns or raises")


@contextlib.contextmanager
def study_lock(storage: str | None, study_dir: Path, study: str) -> Iterator[None]:
    """Hold the study-wide lock: one worker at a time claims its next trial."""
    with _lock(storage, study_dir, study):
        yield


class _FileLock:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with open(self.path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


class _DatabaseLock:
    """A PostgreSQL / MySQL advisory lock on a connection of its own (one per process, kept open)."""

    def __init__(self, url: str, study: str):
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(rdb_url(url), poolclass=sqlalchemy.pool.NullPool)
        self.dialect = self.engine.dialect.name
        self.key = int.from_bytes(hashlib.sha256(f"nasplay:{study}".encode()).digest()[:8], "big", signed=True)
        self.name = f"nasplay:{hashlib.sha256(study.encode()).hexdigest()[:40]}"

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
                conn.commit()
                try:
                    yield
                finally:
                    _unlock(conn, "SELECT pg_advisory_unlock(:k)", {"k": self.key})
            else:  # mysql / mariadb
                conn.execute(text("SELECT GET_LOCK(:n, -1)"), {"n": self.name})
                try:
                    yield
                finally:
                    _unlock(conn, "SELECT RELEASE_LOCK(:n)", {"n": self.name})


def _unlock(conn: Any, sql: str, params: dict) -> None:
    """Release an advisory lock; when the connection died with the server (a restart), the lock died with it."""
    from sqlalchemy import text

    from nasplay.sweep.retry import transient

    try:
        conn.execute(text(sql), params)
        conn.commit()
    except Exception as e:
        if not transient(e):
            raise
        with contextlib.suppress(Exception):
            conn.invalidate()


_LOCKS: dict[tuple[str, str], Any] = {}


def _lock(storage: str | None, study_dir: Path, study: str) -> Any:
    key = (storage or str(study_dir), study)
    if key not in _LOCKS:
        scheme = (storage or "").split(":", 1)[0].split("+", 1)[0]
        if scheme in ("postgresql", "postgres", "mysql"):
            _LOCKS[key] = _DatabaseLock(storage, study)
        elif scheme == "sqlite":
            db = storage.split(":///", 1)[1] if ":///" in storage else ""
            _LOCKS[key] = _FileLock(Path(f"{db}.{study}.lock") if db and db != ":memory:" else study_dir / ".claim.lock")
        elif storage and storage.endswith(".journal"):
            _LOCKS[key] = _FileLock(Path(f"{storage}.{study}.lock"))
        else:  # the default journal, or an RDB without advisory locks (one host: the study directory's lock)
            _LOCKS[key] = _FileLock(study_dir / ".claim.lock")
    return _LOCKS[key]()


class Heartbeat:
    """Stamps a running trial every ``interval`` seconds from a thread, while the ``with`` block runs.

    A beat the storage does not take (an outage) is tried again at the next beat; the trial trains on. The beats
    stop when the trial is finished (told, or failed as stale by another worker)."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.missed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    def _beat(self) -> None:
        import optuna

        from nasplay.sweep.retry import OUTAGE, describe, paused, transient

        while True:
            try:
                with paused(self.storage):  # one try: the next beat is the retry
                    self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT, time.time())
                OUTAGE.succeeded()
                self.missed = 0
            except optuna.exceptions.UpdateFinishedTrialError:
                return
            except Exception as e:
                if transient(e):
                    OUTAGE.failed(e, getattr(self.storage, "seconds", 0))
                elif not self.missed:
                    log.warning(f"heartbeat of a running trial not written ({describe(e)}); it trains on")
                self.missed += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT, time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def last_beat(trial: optuna.trial.FrozenTrial) -> float:
    """Unix time of the trial's last heartbeat (its start when it never beat)."""
    beat = trial.system_attrs.get(HEARTBEAT)
    if beat is not None:
        return float(beat)
    return trial.datetime_start.timestamp() if trial.datetime_start is not None else time.time()


def holds_its_point(trial: Any, retry_failed: bool) -> bool:
    """Whether ``trial`` keeps its point (grid cell, classic network) from being run again: it finished, is
    running or queued, or failed for good (neither ``sweep.retry_failed`` nor its own ``retry`` mark, which
    an interrupted or stale trial gets, nor its ``setup_error`` mark — it failed before training began, on
    something the user fixes: missing data, a missing package — asks for another try)."""
    ua = trial.user_attrs
    return trial.state.name != "FAIL" or not (retry_failed or ua.get("retry") or ua.get("setup_error"))


def fail_stale(study: optuna.Study, grace: float) -> list[int]:
    """Mark RUNNING trials silent for more than ``grace`` seconds FAIL and re-queue their parameters.

    Silence is counted from the later of a trial's last heartbeat and the end of the last storage outage this
    process saw (:func:`nasplay.sweep.retry.outage_ended`): a restart of the database stops every heartbeat.

    Call it holding :func:`study_lock`. The failed trial keeps ``fail_reason`` = ``STALE`` and
    ``retry`` = true; the re-queued one carries ``retry_of`` = the failed trial's number (and its ``seed``,
    which a sampled study would otherwise draw from the new trial's number). Returns the numbers of the
    trials it failed.
    """
    import optuna

    from nasplay.private_api import study_storage, trial_id
    from nasplay.sweep.retry import outage_ended

    now = time.time()
    since = outage_ended()  # no trial could beat while the storage was down: count their silence from its end
    storage = study_storage(study)
    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if now - max(last_beat(t), since) <= grace:
            continue
        try:
            storage.set_trial_user_attr(trial_id(t), "fail_reason", STALE)
            storage.set_trial_user_attr(trial_id(t), "retry", True)
            if not storage.set_trial_state_values(trial_id(t), optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # its worker told it after all
            continue
        again = {"retry_of": t.number, **({"seed": t.user_attrs["seed"]} if "seed" in t.user_attrs else {})}
        study.enqueue_trial(dict(t.params), user_attrs=again, skip_if_exists=False)
        out.append(t.number)
    return out
