"""Pictures of architectures, drawn from the genome: a network's diagram and poster (:mod:`~nasplay.draw.diagram`), the
difference between two (:mod:`~nasplay.draw.diff`), and the machinery behind them: style, layout model, layout, render, pages.

Import-light on purpose: the functions load matplotlib / torch only when called.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "draw_genome": "nasplay.draw.diagram",
    "diagram_svg": "nasplay.draw.diagram",
    "layout_genome": "nasplay.draw.diagram",
    "draw_poster": "nasplay.draw.diagram",
    "diff_genomes": "nasplay.draw.diff",
    "diff_text": "nasplay.draw.diff",
    "draw_diff": "nasplay.draw.diff",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nasplay.draw' has no attribute {name!r}")
