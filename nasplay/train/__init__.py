"""Training: data modules, the LightningModule and ``fit`` (one trial). Imported lazily (torch is slow)."""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "DataConfig": "nasplay.train.config",
    "OptimConfig": "nasplay.train.config",
    "TrainerConfig": "nasplay.train.config",
    "as_config": "nasplay.train.config",
    "make_datamodule": "nasplay.train.data",
    "NasplayDataModule": "nasplay.train.data",
    "InMemoryLoader": "nasplay.train.loader",
    "LitClassifier": "nasplay.train.module",
    "fit": "nasplay.train.fit",
    "adapt": "nasplay.train.fit",
    "make_trainer": "nasplay.train.fit",
    "TrialDiverged": "nasplay.train.fit",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nasplay.train' has no attribute {name!r}")
