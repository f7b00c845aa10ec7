"""What a command says when its work did not finish: one line per cause, the traceback in the study's log.

Also :class:`DiskFull`, the one error a full disk turns into wherever nasplay writes (a checkpoint,
``results.csv``, ``curves.csv``, the journal): it names the path, and the study resumes once space is freed.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nasplay.track.secrets import mask_text

LOG = "nasplay.log"
_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """No space left (or over quota) where nasplay writes ``path``: free space and run the same command again."""

    def __init__(self, path: str | Path, what: str = ""):
        self.path = str(path)
        self.what = what
        super().__init__(errno.ENOSPC, f"disk full: no space left on the device of {self.path}{f' ({what})' if what else ''}; "
                                       "free space and run the same command again: the study resumes where it stopped")

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self) -> tuple:  # crosses process boundaries (a worker's error) intact
        return (DiskFull, (self.path, self.what))


def full_error(e: BaseException | None) -> OSError | None:
    """The OSError that says the disk is full somewhere in ``e``'s chain of causes, or None.

    torch's checkpoint writer reports a failed write as a RuntimeError ("file write failed") without the
    errno; that counts when the file system it wrote to is nearly full (see :func:`as_disk_full`).
    """
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL:
            return e
        e = e.__cause__ or e.__context__
    return None


def as_disk_full(e: BaseException, path: str | Path, what: str = "") -> DiskFull | None:
    """``e`` as a :class:`DiskFull` naming the path it failed to write (``path`` when the error names none)."""
    if isinstance(e, DiskFull):
        return e
    full = full_error(e)
    if full is not None:
        return DiskFull(full.filename or path, what)
    if isinstance(e, RuntimeError) and "file write failed" in str(e):
        with contextlib.suppress(OSError):
            p = Path(path)
            while not p.exists() and p != p.parent:
                p = p.parent
            if shutil.disk_usage(p).free < 64 * 2**20:
                return DiskFull(path, what)
    return None


@contextlib.contextmanager
def writing(path: str | Path, what: str = "") -> Iterator[None]:
    """Turn a full disk while the block writes ``path`` into a :class:`DiskFull` naming it."""
    try:
        yield
    except OSError as e:
        full = as_disk_full(e, path, what)
        if full is None:
            raise
        raise full from None


def one_line(e: BaseException) -> str:
    """An error as one line: its type and the first line of its message (a DiskFull or ValueError: the message)."""
    msg = mask_text(str(e).strip().splitlines()[0]) if str(e).strip() else ""
    if isinstance(e, (DiskFull, ValueError)) and msg:
        return msg
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def log_traceback(study_dir: str | Path | None, header: str, text: str) -> Path | None:
    """Append ``header`` and a traceback to the study's log (``<study dir>/nasplay.log``); its path, or None
    when it cannot be written (the disk may be full: the line on the console has said what matters)."""
    if study_dir is None:
        return None
    path = Path(study_dir) / LOG
    try:
        with open(path, "a") as f:
            f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}][nasplay][ERROR] - {header}\n{mask_text(text).rstrip()}\n")
    except OSError:
        return None
    return path


def study_dir_of(cfg: Any) -> Path | None:
    """The study directory a composed config (or its plain-data copy) names, without checking it."""
    from nasplay.space.load import genome_label  # arch=net.yaml: the experiment and study are named after its stem

    try:
        get = (lambda d, k: d[k]) if isinstance(cfg, dict) else getattr
        return (Path(str(get(cfg, "runs_dir"))) / genome_label(str(get(get(cfg, "experiment"), "name")))
                / genome_label(str(get(cfg, "study"))))
    except (KeyError, AttributeError, TypeError):
        return None
