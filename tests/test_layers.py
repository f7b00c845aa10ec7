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


# --- no circle between files ---------------------------------------------------------------------------------
PKG = ROOT / "nasplay"
# Circles left on purpose, each a set of files (paths below nasplay/), with why. report/ is being split into
# load / analyse / write modules and cli/ is another engineer's (issue 20, parts 3 and 5): their circles go there.
ALLOWED_CYCLES: list[tuple[frozenset[str], str]] = []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def file_imports() -> dict[str, set[str]]:
    """Every nasplay module -> the nasplay modules it imports, at module level or inside a function (what
    ``if TYPE_CHECKING:`` guards is for annotations only and never runs). ``from pkg import name`` counts as
    importing the submodule ``pkg.name`` when there is one, else ``pkg`` itself; a package's ``__init__`` is the
    package."""
    import ast

    modules = {module_name(p): p for p in PKG.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text())
        guarded = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for stmt in node.body for n in ast.walk(stmt)}
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package this module is in
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
                for a in node.names:
                    deps.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        out[name] = {d for d in deps if d in modules and d != name}
    return out


def cycles(g: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []
    g = file_imports()
    assert "nasplay.space.knobs.hold" in g["nasplay.space.knobs"]  # `from nasplay.space.knobs import hold`
    assert "nasplay.space.zoo.registry" in g["nasplay.space.zoo.resnet"]


def test_no_import_circle_between_files():
    """No module imports (at module level or inside a function) a module that imports it back, directly or through
    others, except the circles listed in ALLOWED_CYCLES: a circle hides which file is below which."""
    allowed = {c for c, _ in ALLOWED_CYCLES}
    found = {frozenset(c) for c in cycles(file_imports())}
    assert sorted(map(sorted, found - allowed)) == []
    assert allowed <= found, f"an allowed circle is gone: drop it from ALLOWED_CYCLES: {sorted(map(sorted, allowed - found))}"
