"""The builder: genome -> ``torch.nn.Module``. ``nasplay.nn.SE`` is the squeeze-and-excitation module (for a plugin's
own layers); the genome's op of the same name is ``nasplay.SE``. Imported lazily: ``import nasplay.nn`` loads no torch."""

from __future__ import annotations

import importlib
from typing import Any

_API = {"SE": ("nasplay.nn.layers", "SqueezeExcite"), "SqueezeExcite": ("nasplay.nn.layers", "SqueezeExcite"),
        "make_act": ("nasplay.nn.layers", "make_act"), "make_norm": ("nasplay.nn.layers", "make_norm")}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'nasplay.nn' has no attribute {name!r}")
