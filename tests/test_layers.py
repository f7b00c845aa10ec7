"""The house has one direction: genome -> builder -> trial -> study -> report -> entry points (scripts/import_graph.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod.edges(ROOT / "nasplay")


def test_no_room_imports_a_room_above_it():
    mod, g = graph()
    up = [(src, dst) for src, dsts in g.items() for dst in dsts if mod.LEVELS.get(dst, 99) > mod.LEVELS.get(src, 99)]
    assert up == []
    assert set(g) <= set(mod.LEVELS)  # a new room gets a level before it gets imports


def test_the_arrows_the_issue_named():
    _, g = graph()
    assert not g["space"] & {"nn", "complexity", "train", "sweep", "report", "draw"}
    assert "report" not in g["draw"]  # pictures of architectures know nothing of study reports
    assert "cli" not in g["report"] and "sweep" not in g["track"] and "report" not in g["sweep"]
    assert "report" in g["experiment"] and "sweep" in g["experiment"]  # the entry point calls both, in that order
