"""The layout model: boxes, edges, frames and texts in inches (y grows downwards).

A diagram is built from this model and only then rendered, so tests can assert on its structure
(towers per module, ×N counts, skip edges) instead of comparing pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from nasplay.draw import style


@dataclass
class Box:
    """An op (or input / output / concat bar / add node) drawn as a shape with a label."""

    x: float
    y: float
    w: float
    h: float
    kind: str  # a key of style.LOOKS
    label: str = ""
    paths: tuple[str, ...] = ()
    pieces: int = 1  # factorized: rows; separable: 2 (drawn as columns)
    groups: int = 1
    bn: bool = False
    stack: int = 0  # cards drawn behind (repeated single ops, many towers)

    def move(self, dx: float, dy: float) -> None:
        self.x += dx
        self.y += dy


@dataclass
class Edge:
    """A polyline: ``flow`` between ops, a skip (identity / projection / scaled), ``aux`` or ``wrap``."""

    points: list[tuple[float, float]]
    kind: str = "flow"
    arrow: bool = True
    label: str = ""
    paths: tuple[str, ...] = ()

    def move(self, dx: float, dy: float) -> None:
        self.points = [(x + dx, y + dy) for x, y in self.points]


@dataclass
class Frame:
    """A module: a frame around its towers, with its name, tower count, repeat count and skip."""

    x: float
    y: float
    w: float
    h: float
    name: str = ""
    towers: int = 1  # parallel branches of the block
    leaves: int = 1  # towers after nested splits (Inception-v3 E: 6)
    repeat: int = 1
    skip: str = "none"
    paths: tuple[str, ...] = ()

    def move(self, dx: float, dy: float) -> None:
        self.x += dx
        self.y += dy


@dataclass
class Text:
    """Free text: ``title``, ``subtitle``, ``stage``, ``repeat`` (×N), ``note``."""

    x: float
    y: float
    text: str
    role: str = "note"
    ha: str = "left"
    va: str = "center"
    paths: tuple[str, ...] = ()

    def move(self, dx: float, dy: float) -> None:
        self.x += dx
        self.y += dy


@dataclass
class Piece:
    """A laid-out fragment with its own origin; ``ax`` is the x of its flow axis (entry and exit)."""

    w: float = 0.0
    h: float = 0.0
    ax: float = 0.0
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)

    def elements(self) -> list:
        return [*self.frames, *self.edges, *self.boxes, *self.texts]

    def move(self, dx: float, dy: float) -> None:
        for e in self.elements():
            e.move(dx, dy)

    def add(self, other: Piece, dx: float, dy: float) -> None:
        """Absorb ``other`` placed with its origin at ``(dx, dy)``."""
        other.move(dx, dy)
        self.boxes += other.boxes
        self.edges += other.edges
        self.frames += other.frames
        self.texts += other.texts


@dataclass
class Diagram:
    """A whole drawing: elements plus the facts a reader (or a test) wants about it."""

    w: float
    h: float
    boxes: list[Box]
    edges: list[Edge]
    frames: list[Frame]
    texts: list[Text]
    title: str = ""
    kinds: set[str] = field(default_factory=set)  # looks used, for the legend
    columns: int = 1
    marks: tuple[str, ...] = ()  # paths to draw highlighted (a diff's differences)

    @property
    def repeats(self) -> list[int]:
        """The ×N counts shown, in drawing order."""
        return [int(t.text.lstrip("×")) for t in self.texts if t.role == "repeat"]

    @property
    def skips(self) -> list[Edge]:
        return [e for e in self.edges if e.kind in style.SKIP_KINDS and "legend" not in e.paths]

    @property
    def modules(self) -> list[Frame]:
        return list(self.frames)

    def move(self, dx: float, dy: float) -> None:
        for e in [*self.boxes, *self.edges, *self.frames, *self.texts]:
            e.move(dx, dy)


@lru_cache(maxsize=1)
def _renderer():
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(100, 100, 150)


@lru_cache(maxsize=4096)
def text_width(s: str, size: float = style.FONT_SIZE) -> float:
    """Width in inches of ``s`` set in the diagram font (the widest line of a multi-line label).

    Measured the way the PNG renderer sets it (hinting makes small text wider than its outline),
    plus a little slack for SVG viewers that substitute a similar font.
    """
    from matplotlib.font_manager import FontProperties

    prop = FontProperties(family=style.FONT, size=size)
    r = _renderer()
    widest = max(r.get_text_width_height_descent(line, prop, ismath=False)[0] for line in s.split("\n"))
    return widest / 150 * 1.04
