"""Print nasplay's import graph between its rooms (subpackages and top-level modules) and the arrows that run
back up the house (genome -> builder -> trial -> study -> report -> entry points).

Usage: python scripts/import_graph.py [PACKAGE_DIR]   (default: nasplay/ next to this script)
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

# Lower rooms first: a room may import only rooms at its level or below.
LEVELS = {"resources": 0, "manifest": 0, "outcomes": 0, "private_api": 0, "environment": 0,
          "space": 1, "nn": 2, "complexity": 3, "reference": 3, "train": 4, "track": 5,
          "sweep": 6, "draw": 7, "report": 7, "experiment": 8, "cli": 9, "__main__": 9, "__init__": 9}


def room(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0].removesuffix(".py") if len(parts) > 1 or parts[0] != "__init__.py" else "__init__"


def edges(root: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for f in root.rglob("*.py"):
        src = room(f, root)
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for n in names:
                if n.startswith("nasplay."):
                    dst = n.split(".")[1]
                    if dst != src:
                        out[src].add(dst)
    return out


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "nasplay"
    g = edges(root)
    up = []
    for src in sorted(g, key=lambda r: (LEVELS.get(r, 99), r)):
        marks = []
        for dst in sorted(g[src], key=lambda r: (LEVELS.get(r, 99), r)):
            back = LEVELS.get(dst, 99) > LEVELS.get(src, 99)
            marks.append(f"{dst}{' (UP)' if back else ''}")
            if back:
                up.append(f"{src} -> {dst}")
        print(f"{src:>10} -> {', '.join(marks)}")
    print(f"arrows back up: {len(up)}" + (": " + "; ".join(up) if up else ""))
    return 1 if up else 0


if __name__ == "__main__":
    sys.exit(main())
