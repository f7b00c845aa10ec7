"""Optuna storages: a journal file in the study directory by default, any RDB URL for many hosts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nasplay.track.secrets import mask_text

if TYPE_CHECKING:
    import optuna

JOURNAL = "optuna.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")


def storage_url(storage: str | None, study_dir: Path) -> str:
    """Where the study lives, as given (a URL) or as a path (the journal file); for messages, masked."""
    return mask_text(storage) if storage else str(study_dir / JOURNAL)


def make_storage(storage: str | None, study_dir: Path) -> optuna.storages.BaseStorage:
    """``None`` -> ``<study_dir>/optuna.journal``; ``*.journal`` -> that journal file; else an RDB URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if storage is None or storage.endswith(".journal"):
        path = Path(storage) if storage else study_dir / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    scheme = storage.split(":", 1)[0].split("+", 1)[0]
    if "://" not in storage or scheme not in RDB_SCHEMES:
        raise ValueError(f"sweep.storage: {mask_text(storage)!r} is neither a .journal file nor an RDB URL "
                         f"({', '.join(s + '://...' for s in RDB_SCHEMES)})")
    try:
        return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True})
    except Exception as e:  # the driver's message may quote the URL: mask it
        raise ValueError(f"sweep.storage: cannot open {mask_text(storage)!r}: {mask_text(str(e))}") from None
