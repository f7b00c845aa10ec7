"""Reports: architecture diagrams and diffs (and, elsewhere, study tables and figures).

Import-light on purpose: the functions load matplotlib / torch only when called.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "draw_genome": "nasplay.report.diagram",
    "diagram_svg": "nasplay.report.diagram",
    "layout_genome": "nasplay.report.diagram",
    "draw_poster": "nasplay.report.diagram",
    "diff_genomes": "nasplay.report.diff",
    "diff_text": "nasplay.report.diff",
    "draw_diff": "nasplay.report.diff",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nasplay.report' has no attribute {name!r}")
