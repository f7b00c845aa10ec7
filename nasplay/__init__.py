"""nasplay: the classic CNNs as points of one genome, and the machinery to ablate and search them.

The public API is imported lazily so that ``nasplay list`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "Genome": "nasplay.space.genome",
    "Block": "nasplay.space.genome",
    "Branch": "nasplay.space.genome",
    "Stage": "nasplay.space.genome",
    "Head": "nasplay.space.genome",
    "Aux": "nasplay.space.genome",
    "Input": "nasplay.space.genome",
    "Conv": "nasplay.space.genome",
    "Pool": "nasplay.space.genome",
    "Act": "nasplay.space.genome",
    "Norm": "nasplay.space.genome",
    "Dropout": "nasplay.space.genome",
    "Linear": "nasplay.space.genome",
    "Subsample": "nasplay.space.genome",
    "SE": "nasplay.space.genome",
    "validate": "nasplay.space.validate",
    "get_genome": "nasplay.space.zoo",
    "list_genomes": "nasplay.space.zoo",
    "register": "nasplay.space.zoo",
    "register_activation": "nasplay.space.extend",
    "register_norm": "nasplay.space.extend",
    "register_knob": "nasplay.space.extend",
    "load_plugins": "nasplay.space.plugins",
    "knobs": "nasplay.space.knobs",
    "apply": "nasplay.complexity",
    "build": "nasplay.nn.build",
    "complexity": "nasplay.complexity",
    "from_reference": "nasplay.reference",
}

__all__ = sorted(_API)

# ``nasplay.complexity`` is both a submodule and a function: importing the submodule (as the CLI does) sets the
# package attribute to the module, which would shadow the function. Bind the functions eagerly (they need no torch).
from nasplay.complexity import apply, complexity  # noqa: E402


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nasplay' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from nasplay.complexity import apply, complexity
    from nasplay.nn.build import build
    from nasplay.reference import from_reference
    from nasplay.space.extend import register_activation, register_knob, register_norm
    from nasplay.space.genome import (
        SE,
        Act,
        Aux,
        Block,
        Branch,
        Conv,
        Dropout,
        Genome,
        Head,
        Input,
        Linear,
        Norm,
        Pool,
        Stage,
        Subsample,
    )
    from nasplay.space.knobs import knobs
    from nasplay.space.plugins import load_plugins
    from nasplay.space.validate import validate
    from nasplay.space.zoo import get_genome, list_genomes, register
