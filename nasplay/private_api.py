"""The places where nasplay reads a library's private corners, kept here so that nothing else does.

None has a public equivalent that does the job:

- Hydra parses its own command line (``--multirun``, ``-sc``, ``--info``, the overrides) with a parser it keeps in
  ``hydra._internal.utils``; nasplay checks the overrides against its schema, and learns which keys a multirun
  sweeps, before handing the command line to Hydra, so it parses the same flags the same way.
- The config schema has a field for every argument of Lightning's ``Trainer``. ``inspect.signature`` reads them,
  but only after importing Lightning (seconds), and the schema is needed by ``--help`` and shell completion: so
  the arguments are read from ``Trainer.__init__``'s source, found without importing the package.

- Optuna: the study loop is nasplay's own (ask and tell, a heartbeat that works with every storage, stale trials
  failed under a lock), so it writes to a trial's storage directly, which needs the study's storage
  (``Study._storage``) and the trial's id (``Trial._trial_id``, ``FrozenTrial._trial_id``); and the storage is wrapped
  (retries through outages: :mod:`nasplay.sweep.retry`), which would hide an RDB storage from the cache Optuna puts in
  front of one (``optuna.storages._cached_storage._CachedStorage``), so the wrapper goes around that cache.

``tests/test_private_api.py`` fails loudly when a library changes what these rely on (the source read here
must equal ``inspect.signature(lightning.pytorch.Trainer)``; Optuna's cache and attributes must be where they are read).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
from pathlib import Path
from typing import Any


def hydra_args_parser() -> argparse.ArgumentParser:
    """Hydra's own command-line parser (``hydra._internal.utils.get_args_parser``)."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def lightning_trainer_args() -> list[str]:
    """The names of ``lightning.pytorch.Trainer``'s arguments (``self`` first), read from its source without importing
    Lightning; ``inspect.signature`` (which imports it) when the source is not where an installed Lightning keeps it."""
    try:
        spec = importlib.util.find_spec("lightning")  # finds the package without importing it
        tree = ast.parse((Path(spec.origin).parent / "pytorch" / "trainer" / "trainer.py").read_text())  # type: ignore[union-attr,arg-type]
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
        init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
        return [a.arg for a in (*init.args.args, *init.args.kwonlyargs)]
    except Exception:  # noqa: BLE001 - an unusual install: ask Lightning itself (slow: it imports Lightning)
        import inspect

        import lightning.pytorch as pl

        return ["self", *inspect.signature(pl.Trainer).parameters]


def study_storage(study: Any) -> Any:
    """The storage an Optuna study reads and writes (``Study._storage``)."""
    return study._storage


def trial_id(trial: Any) -> int:
    """The storage's id of a trial (``Trial._trial_id`` / ``FrozenTrial._trial_id``; ``number`` counts in the study)."""
    return trial._trial_id


def cached_rdb(storage: Any) -> Any:
    """An ``RDBStorage`` behind the cache Optuna's ``get_storage`` puts in front of one (finished trials read once)."""
    from optuna.storages._cached_storage import _CachedStorage

    return _CachedStorage(storage)
