"""Storage faults are weather: calls retried with backoff through an outage of up to ``sweep.storage_retry`` seconds.

A database that restarts, a connection reset by a proxy, a serialization failure between two writers: the
storage call fails, and succeeds a few seconds later. :class:`RetryingStorage` wraps the study's storage so
that every call (the trial's intermediate values, its attributes, the tell, the reads of the pruner and of
results.csv) is retried with exponential backoff while the error is :func:`transient`; after
``sweep.storage_retry`` seconds the last error is raised as :class:`StorageUnavailable` (one line).

Two callers retry whole blocks instead of single calls (:func:`paused` turns the per-call retry off):

- the claim of the next trial (:func:`nasplay.sweep.loop.run_loop`): its reads and writes are made under the study
  lock, and a database restart ends the lock with the connection that held it, so a claim cut by an outage is
  made again from the start under a new lock, never finished without it;
- the heartbeat: a beat that fails is written at the next beat, and the trial trains on.

A call that committed but whose answer was lost to the outage is not told apart from one that failed: retried,
a write is made again (attributes and values are overwritten with the same value; a tell that finds the trial
already in the state it asks for counts as done). Only a trial's creation, inside the claim, could be doubled
that way, which needs the connection to die between the commit and its acknowledgement.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from optuna.storages import BaseStorage

from nasplay.track.secrets import mask_text

log = logging.getLogger("nasplay.sweep.retry")
T = TypeVar("T")

# What a restarting or unreachable server says (PostgreSQL, MySQL, SQLite, the OS), lower-cased.
_TRANSIENT_TEXT = (
    "connection refused", "connection reset", "connection timed out", "broken pipe", "server closed the connection",
    "the database system is shutting down", "the database system is starting up", "the database system is in recovery",
    "terminating connection due to administrator command", "terminating connection due to unexpected postmaster exit",
    "connection to server at", "could not connect to server", "could not receive data from server",
    "could not send data to server", "ssl connection has been closed unexpectedly", "consuming input failed",
    "connection is closed", "the connection is lost", "server conn crashed",
    "could not serialize access", "serialization failure", "deadlock detected",
    "lost connection to mysql server", "mysql server has gone away", "can't connect to mysql server",
    "database is locked",
)
# SQLSTATE classes and codes: connection exceptions (08), operator intervention (57P0x), serialization (40001, 40P01)
_TRANSIENT_SQLSTATE = ("08", "57P01", "57P02", "57P03", "40001", "40P01")


class StorageUnavailable(RuntimeError):
    """The storage stayed unreachable longer than ``sweep.storage_retry``."""


def transient(e: BaseException | None) -> bool:
    """Whether ``e`` (or an exception it was raised from) is a fault that goes away: the server restarting or
    unreachable, a dropped connection, a serialization failure or deadlock between writers, a locked SQLite file.
    Bad credentials, a missing database and errors of the data are not."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            return True
        if getattr(e, "connection_invalidated", False):  # SQLAlchemy: the connection died under the statement
            return True
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATE):
            return True
        text = str(e).lower()
        if any(t in text for t in _TRANSIENT_TEXT):
            return True
        e = e.__cause__ or e.__context__
    return False


def describe(e: BaseException) -> str:
    """One line for ``e``: the first message in its chain that names the outage (a driver's words, not the
    wrappers' of Optuna or SQLAlchemy), else the deepest message."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    said = [x for x in chain if str(x).strip()]
    named = [x for x in said if any(t in str(x).lower() for t in _TRANSIENT_TEXT)]
    pick = (named or said or chain)[-1 if not named else 0]
    text = str(pick).strip().splitlines()
    return mask_text(f"{type(pick).__name__}: {text[0]}" if text else type(pick).__name__)


class _Outage:
    """This process's view of the storage's last outage: logged once when it begins and once when it ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None
        self.ended = 0.0  # time.time() when the last outage this process saw ended

    def failed(self, e: BaseException, seconds: float) -> None:
        with self.lock:
            if self.since is None:
                self.since = time.time()
                retrying = (f"retrying for up to {seconds:g} s (sweep.storage_retry)" if seconds > 0
                            else "not retried (sweep.storage_retry=0)")
                log.warning(f"storage unreachable ({describe(e)}); {retrying}")

    def gave_up(self) -> None:  # the caller stops; a later success in this process starts a new count
        with self.lock:
            if self.since is not None:
                self.since, self.ended = None, time.time()

    def succeeded(self) -> None:
        if self.since is None:
            return
        with self.lock:
            if self.since is not None:
                self.ended = time.time()
                log.warning(f"storage back after {self.ended - self.since:.1f} s")
                self.since = None


OUTAGE = _Outage()


def outage_ended() -> float:
    """When the last storage outage this process saw ended (``time.time()``; 0 if none): trials cannot beat while
    the storage is down, so their silence is counted from then (:func:`nasplay.sweep.storage.fail_stale`)."""
    return OUTAGE.ended if OUTAGE.since is None else time.time()


def call(fn: Callable[[], T], seconds: float) -> T:
    """``fn()``, retried with exponential backoff (0.25 s doubling to 8 s) while it fails with a :func:`transient`
    error, for up to ``seconds``; then :class:`StorageUnavailable`. Other errors are raised at once."""
    deadline = time.monotonic() + seconds
    delay = 0.25
    while True:
        try:
            out = fn()
        except Exception as e:
            if not transient(e):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                OUTAGE.gave_up()
                raise StorageUnavailable(f"the storage stayed unreachable for {seconds:g} s (sweep.storage_retry): "
                                         f"{describe(e)}") from e
            OUTAGE.failed(e, seconds)
            time.sleep(min(left, delay * random.uniform(0.8, 1.2)))
            delay = min(delay * 2, 8.0)
            continue
        OUTAGE.succeeded()
        return out


class RetryingStorage(BaseStorage):
    """An Optuna storage whose every call is retried through transient faults for up to ``seconds``."""

    def __init__(self, inner: BaseStorage, seconds: float):
        self.inner, self.seconds = inner, float(seconds)
        self._local = threading.local()

    def __getstate__(self) -> dict:  # pickled with a trial into DDP's ranks
        return {"inner": self.inner, "seconds": self.seconds}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.inner, name)
        if getattr(self._local, "paused", 0) or self.seconds <= 0:
            return fn(*args, **kwargs)
        return call(lambda: fn(*args, **kwargs), self.seconds)

    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
        if getattr(self._local, "paused", 0) or self.seconds <= 0:
            return self.inner.set_trial_state_values(trial_id, state, values)
        import optuna

        tries = 0

        def tell() -> bool:
            nonlocal tries
            tries += 1
            try:
                return self.inner.set_trial_state_values(trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                # a retry of a tell whose first try committed before its answer was lost: done, as asked
                if tries > 1 and self.inner.get_trial(trial_id).state == state:
                    return True
                raise

        return call(tell, self.seconds)

    def __getattr__(self, name: str) -> Any:  # what BaseStorage does not declare (e.g. RDBStorage's engine)
        if name.startswith("__") or name in ("inner", "_local", "seconds"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = getattr(BaseStorage, name).__doc__
    return method


for _name in dir(BaseStorage):
    if not _name.startswith("_") and callable(getattr(BaseStorage, _name)) and _name not in RetryingStorage.__dict__:
        setattr(RetryingStorage, _name, _delegate(_name))
RetryingStorage.__abstractmethods__ = frozenset()


@contextlib.contextmanager
def paused(storage: Any) -> Iterator[None]:
    """Single tries for this thread's calls on ``storage`` inside the block (its caller retries the whole block)."""
    if not isinstance(storage, RetryingStorage):
        yield
        return
    local = storage._local
    local.paused = getattr(local, "paused", 0) + 1
    try:
        yield
    finally:
        local.paused -= 1


def without_retry(trial: Any) -> Any:
    """The same trial, on the storage below :class:`RetryingStorage` (``trial`` itself on any other storage).

    optuna-integration's Lightning pruning callback accepts only Optuna's own cached RDB storage under DDP."""
    import optuna

    from nasplay.private_api import study_storage, trial_id

    storage = study_storage(trial.study)
    if not isinstance(storage, RetryingStorage):
        return trial
    study = optuna.load_study(study_name=trial.study.study_name, storage=storage.inner, sampler=trial.study.sampler,
                              pruner=trial.study.pruner)
    return optuna.trial.Trial(study, trial_id(trial))
