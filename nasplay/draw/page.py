"""Pages: a diagram with its title and legend, and several diagrams side by side (poster, diff)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from nasplay.draw import style
from nasplay.draw.model import Box, Diagram, Edge, Text, text_width

LEGEND_ORDER = ("input", "conv", "conv1", "grouped", "factor", "sep", "maxpool", "avgpool", "subsample", "norm", "se", "act",
                "dropout", "fc", "output", "aux", "concat", "add", "identity", "projection", "scaled", "dense")
GLYPH_W, ROW_H = 0.36, 0.2
TITLE_H, SUBTITLE_H = 0.26, 0.2


def legend(kinds: Iterable[str], bn: bool = True, repeat: bool = True) -> Diagram:
    """A legend of the looks in ``kinds`` (in a fixed order), one row per look."""
    kinds = set(kinds)
    dia = Diagram(0.0, 0.0, [], [], [], [])
    dia.texts.append(Text(0.0, 0.08, "legend", "legend_title", paths=("legend",)))
    y = 0.22
    tag = ("legend",)
    rows = [k for k in LEGEND_ORDER if k in kinds]
    for k in rows:
        look = style.LOOKS[k]
        gy = y + (ROW_H - 0.14) / 2
        if look.shape == "line":
            dia.edges.append(Edge([(0.0, y + ROW_H / 2), (GLYPH_W, y + ROW_H / 2)], kind=k, paths=tag))
        elif look.shape == "circle":
            dia.boxes.append(Box(GLYPH_W / 2 - style.ADD_R, y + ROW_H / 2 - style.ADD_R, 2 * style.ADD_R, 2 * style.ADD_R, k, "+", tag))
        elif k == "grouped":
            dia.boxes.append(Box(0.0, gy, GLYPH_W * 0.45, 0.14, "conv", "", tag, groups=2))
            dia.boxes.append(Box(GLYPH_W * 0.52, gy + 0.04, GLYPH_W * 0.4, 0.1, "conv", "", tag, groups=32, stack=2))
        elif k == "concat":
            dia.boxes.append(Box(0.0, y + ROW_H / 2 - style.CONCAT_H / 2, GLYPH_W, style.CONCAT_H, k, "", tag))
        else:
            dia.boxes.append(Box(0.0, gy, GLYPH_W, 0.14, k, "", tag, pieces=2 if k in ("factor", "sep") else 1))
        dia.texts.append(Text(GLYPH_W + 0.08, y + ROW_H / 2, look.legend, "legend", paths=tag))
        y += ROW_H
    if bn:
        dia.boxes.append(Box(0.0, y + (ROW_H - 0.14) / 2, GLYPH_W, 0.14, "conv", "", tag, bn=True))
        dia.texts.append(Text(GLYPH_W + 0.08, y + ROW_H / 2, "dark base: followed by BatchNorm", "legend", paths=tag))
        y += ROW_H
    if repeat:
        dia.texts.append(Text(0.0, y + ROW_H / 2, "×N", "repeat_key", paths=tag))
        dia.texts.append(Text(GLYPH_W + 0.08, y + ROW_H / 2, "N copies of a module (widths a/b: copies differ)", "legend", paths=tag))
        y += ROW_H
    dia.h = y
    dia.w = GLYPH_W + 0.08 + max(text_width(t.text, style.SMALL) for t in dia.texts if t.role == "legend")
    return dia


def merge(into: Diagram, other: Diagram, dx: float, dy: float) -> None:
    """Place ``other`` into ``into`` with its origin at ``(dx, dy)``."""
    other.move(dx, dy)
    into.boxes += other.boxes
    into.edges += other.edges
    into.frames += other.frames
    into.texts += other.texts
    into.kinds |= other.kinds
    into.w = max(into.w, dx + other.w)
    into.h = max(into.h, dy + other.h)


def titled(body: Diagram, title: str, subtitle: str = "", with_legend: bool = True, role: str = "title") -> Diagram:
    """``body`` under a title line (and a subtitle), with its legend on the right."""
    size = style.TITLE_SIZE if role == "title" else style.FONT_SIZE * 1.45
    page = Diagram(0.0, 0.0, [], [], [], [], title=title)
    page.texts.append(Text(0.0, TITLE_H / 2, title, role))
    top = TITLE_H
    width = text_width(title, size)
    if subtitle:
        page.texts.append(Text(0.0, top + SUBTITLE_H / 2 - 0.03, subtitle, "subtitle"))
        top += SUBTITLE_H
        width = max(width, text_width(subtitle, style.FONT_SIZE))
    top += 0.08
    columns = body.columns
    merge(page, body, 0.0, top)
    page.columns = columns
    if with_legend:
        merge(page, legend(body.kinds, bn=any(b.bn for b in body.boxes), repeat=bool(body.repeats)), body.w + 0.45, top)
    page.w = max(page.w, width)
    return page


def row_positions(sizes: Sequence[tuple[float, float]], page_width: float, gap_x: float = 0.55,
                  gap_y: float = 0.45) -> tuple[list[tuple[float, float]], float, float]:
    """Where panels of ``sizes`` go left to right, wrapping into rows no wider than ``page_width``."""
    pos, x, y, row_h, width = [], 0.0, 0.0, 0.0, 0.0
    for w, h in sizes:
        if x > 0 and x + w > page_width:
            x, y, row_h = 0.0, y + row_h + gap_y, 0.0
        pos.append((x, y))
        width = max(width, x + w)
        x += w + gap_x
        row_h = max(row_h, h)
    return pos, width, y + row_h


def row_pack(panels: Sequence[Diagram], page_width: float, gap_x: float = 0.55, gap_y: float = 0.45) -> Diagram:
    """Panels left to right in their order, wrapping into rows no wider than ``page_width``."""
    page = Diagram(0.0, 0.0, [], [], [], [])
    pos, _, _ = row_positions([(p.w, p.h) for p in panels], page_width, gap_x, gap_y)
    for p, (x, y) in zip(panels, pos):
        merge(page, p, x, y)
    return page
