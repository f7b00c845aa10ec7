"""The journal file (the default storage): a torn last record repaired on open, a full disk leaving no torn record.

Optuna's journal is one JSON record a line, appended under a lock file and fsynced. A process killed (or a
machine losing power) in the middle of an append leaves the last line without its newline: Optuna's reader
skips it, but the next append is written after the torn bytes, the two fuse into a line that is not JSON, and
from then on the study cannot be loaded ("Expecting ',' delimiter"). :class:`JournalBackend` checks the tail
when the journal is opened: a torn record (bytes after the last newline) is a write that never finished and
that no reader has seen, so it is dropped, after the whole file is copied beside it
(``optuna.journal.torn-<time>``), and one line says so. A full disk in the middle of an append (ENOSPC) is
undone the same way at once, under the lock, and raised as :class:`nasplay.sweep.faults.DiskFull`.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from nasplay.sweep.faults import DiskFull, full_error

log = logging.getLogger("nasplay.sweep.journal")
_CHUNK = 1 << 16


class _Lock(JournalFileSymlinkLock):
    """Optuna's lock file (``<journal>.lock``, which every process on the journal takes to append), re-entrant within
    a thread, so the repair and the undo of a failed append hold it around Optuna's own append."""

    def __init__(self, path: str):
        super().__init__(path)
        self._depth = threading.local()

    def __getstate__(self) -> dict:  # a trial's storage may cross into spawned processes (DDP ranks)
        return {k: v for k, v in self.__dict__.items() if k != "_depth"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._depth = threading.local()

    def acquire(self) -> bool:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            super().acquire()
        self._depth.n = depth + 1
        return True

    def release(self) -> None:
        self._depth.n -= 1
        if self._depth.n == 0:
            super().release()

    def __enter__(self) -> _Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class JournalBackend(JournalFileBackend):
    """Optuna's journal file backend, repaired on open (:func:`repair`) and undone on a full disk."""

    def __init__(self, file_path: str):
        self.path = str(file_path)
        self.lock = _Lock(self.path)
        super().__init__(self.path, lock_obj=self.lock)
        self.repaired = repair(self.path, self.lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with self.lock:
            size = os.path.getsize(self.path)
            try:
                super().append_logs(logs)
            except OSError as e:
                if full_error(e) is None:
                    raise
                _truncate(self.path, size)  # what did fit of the record is dropped: the journal stays whole
                raise DiskFull(self.path, "the study's journal") from None


def torn_tail(path: str | Path) -> int:
    """How many bytes at the end of the journal follow its last newline (0: whole)."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            start = max(0, pos - _CHUNK)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                return end - (start + i + 1)
            pos = start
        return end


def repair(path: str | Path, lock: Any = None) -> str | None:
    """Drop a torn last record of the journal at ``path`` (a copy of the file kept beside it); the line that
    says so (also logged), or None when the journal is whole. Holds the journal's lock while it looks."""
    path = Path(path)
    try:
        if path.stat().st_size == 0 or _last_byte(path) == b"\n":
            return None  # the common case, without the lock: a whole journal stays whole
    except FileNotFoundError:
        return None
    with lock if lock is not None else _Lock(str(path)):  # an append in flight holds it: what follows is torn for real
        cut = torn_tail(path)
        if cut == 0:
            return None
        size = path.stat().st_size
        backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copyfile(path, backup)
        _truncate(str(path), size - cut)
    line = (f"journal {path}: its last record was cut mid-write ({cut} bytes without their end, a write that never "
            f"finished); dropped it and resumed, the journal as it was is in {backup}")
    log.warning(line)
    return line


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _truncate(path: str, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())
