"""Layout model -> matplotlib figure -> SVG / PNG. Nothing here decides where things go."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from nasplay.draw import style
from nasplay.draw.model import Box, Diagram, Edge, Frame

MARGIN = 0.15
FORMATS = ("svg", "png", "pdf")

_TEXT_STYLE = {
    "title": dict(size=style.TITLE_SIZE, weight="bold", color="#111111"),
    "subtitle": dict(size=style.FONT_SIZE, color="#555555"),
    "panel": dict(size=style.FONT_SIZE * 1.45, weight="bold", color="#111111"),
    "stage": dict(size=style.SMALL, style="italic", color="#555555"),
    "module": dict(size=style.SMALL, weight="bold", color="#3a3a3a"),
    "repeat": dict(size=style.FONT_SIZE * 1.35, weight="bold", color=style.REPEAT_COLOR),
    "repeat_key": dict(size=style.FONT_SIZE * 1.35, weight="bold", color=style.REPEAT_COLOR),
    "scale": dict(size=style.SMALL, color=style.LOOKS["scaled"].edge, weight="bold"),
    "note": dict(size=style.SMALL, color="#333333"),
    "legend": dict(size=style.SMALL, color="#222222"),
    "legend_title": dict(size=style.FONT_SIZE, weight="bold", color="#222222"),
    "diff": dict(size=style.DIFF_SIZE, color="#222222"),
    "badge": dict(size=style.SMALL, weight="bold", color="#ffffff"),
}


def matches(paths: Iterable[str], marks: Iterable[str]) -> bool:
    """Whether an element at one of ``paths`` lies at or under one of the marked paths."""
    return any(p == m or p.startswith(m + ".") or p.startswith(m + "[") for p in paths for m in marks)


def render(dia: Diagram, marks: Iterable[str] = ()):
    """A matplotlib ``Figure`` of ``dia`` (inches map 1:1); elements under ``marks`` get a red halo."""
    from matplotlib.figure import Figure

    marks = tuple(marks)
    fig = Figure(figsize=(dia.w + 2 * MARGIN, dia.h + 2 * MARGIN))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(-MARGIN, dia.w + MARGIN)
    ax.set_ylim(dia.h + MARGIN, -MARGIN)
    ax.set_axis_off()
    marked_frames = [f for f in dia.frames if marks and matches(f.paths, marks)]
    for f in dia.frames:
        _frame(ax, f, f in marked_frames)
    covered = tuple(p for f in marked_frames for p in f.paths)
    for e in dia.edges:
        _edge(ax, e, bool(marks) and matches(e.paths, marks) and not matches(e.paths, covered))
    for b in dia.boxes:
        _box(ax, b, bool(marks) and matches(b.paths, marks) and not matches(b.paths, covered))
    for t in dia.texts:
        kw = dict(_TEXT_STYLE.get(t.role, _TEXT_STYLE["note"]))
        if t.role == "badge":
            kw["bbox"] = dict(boxstyle="circle,pad=0.25", fc=style.HIGHLIGHT, ec="none")
        ax.text(t.x, t.y, t.text, ha=t.ha, va=t.va, family=style.FONT, zorder=6, **kw)
    return fig


def save(fig, target: str | Path | IO, fmt: str | None = None, dpi: int = 150) -> None:
    """Write ``fig`` as SVG (text kept as text), PNG or PDF; ``fmt`` defaults to the file's suffix."""
    import matplotlib

    if fmt is None:
        if not isinstance(target, (str, Path)):
            raise ValueError("fmt: give the format ('svg' or 'png') when writing to a file object")
        fmt = Path(target).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"fmt: {fmt!r} is not supported; allowed: {', '.join(FORMATS)} (from the --out suffix)")
    # svg.fonttype none keeps labels as <text>, so the SVG is searchable and small
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "nasplay"}):
        fig.savefig(target, format=fmt, dpi=dpi, facecolor="white")


def to_svg(fig) -> str:
    buf = io.StringIO()
    save(fig, buf, "svg")
    return buf.getvalue()


# --- primitives ---------------------------------------------------------------------------------
def _frame(ax, f: Frame, marked: bool) -> None:
    from matplotlib.patches import FancyBboxPatch

    d = style.STACK_DX
    for k in (2, 1) if f.repeat > 1 else ():
        ax.add_patch(FancyBboxPatch((f.x + k * d, f.y - k * d), f.w, f.h, boxstyle="round,pad=0,rounding_size=0.06",
                                    fc=style.FRAME_FACE, ec=style.FRAME_EDGE, lw=0.6, zorder=0.5 - k * 0.1))
    ax.add_patch(FancyBboxPatch((f.x, f.y), f.w, f.h, boxstyle="round,pad=0,rounding_size=0.06",
                                fc=style.FRAME_FACE, ec=style.HIGHLIGHT if marked else style.FRAME_EDGE,
                                lw=1.8 if marked else 0.7, zorder=0.6))


def _edge(ax, e: Edge, marked: bool) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    look = style.LOOKS.get(e.kind)
    color = {"flow": style.FLOW, "wrap": style.WRAP}.get(e.kind, look.edge if look else style.FLOW)
    lw = {"flow": 0.7, "wrap": 0.8}.get(e.kind, 1.1)
    ls = {"scaled": (0, (4, 1.5)), "aux": (0, (2, 1.5)), "wrap": (0, (1, 1.5))}.get(e.kind, "-")
    z = 1.0 if e.kind == "flow" else 1.2
    xs, ys = zip(*e.points)
    if marked:
        ax.add_line(Line2D(xs, ys, color=style.HIGHLIGHT, lw=lw + 2.4, alpha=0.45, zorder=z - 0.05, solid_capstyle="round"))
    if len(e.points) > 2 or not e.arrow:
        pts = e.points[:-1] if e.arrow else e.points
        ax.add_line(Line2D([p[0] for p in pts], [p[1] for p in pts], color=color, lw=lw, ls=ls, zorder=z))
    if e.arrow:
        ax.add_patch(FancyArrowPatch(e.points[-2], e.points[-1], arrowstyle="-|>", mutation_scale=5 if e.kind == "flow" else 6,
                                     color=color, lw=lw, linestyle=ls, shrinkA=0, shrinkB=0, zorder=z))


def _box(ax, b: Box, marked: bool) -> None:
    from matplotlib.patches import Circle, FancyBboxPatch, Polygon, Rectangle

    look = style.LOOKS[b.kind]
    d = style.STACK_DX
    if marked:
        ax.add_patch(FancyBboxPatch((b.x - 0.035, b.y - 0.035 - b.stack * d), b.w + 0.07 + b.stack * d, b.h + 0.07 + b.stack * d,
                                    boxstyle="round,pad=0,rounding_size=0.04", fc="none", ec=style.HIGHLIGHT, lw=1.6, zorder=1.9))
    z = 2.0
    if look.shape == "circle":
        r = b.w / 2
        ax.add_patch(Circle((b.x + r, b.y + r), r, fc=look.face, ec=look.edge, lw=0.8, zorder=z))
        ax.plot([b.x + r * 0.45, b.x + r * 1.55], [b.y + r, b.y + r], color=look.edge, lw=0.8, zorder=z + 0.1)
        ax.plot([b.x + r, b.x + r], [b.y + r * 0.45, b.y + r * 1.55], color=look.edge, lw=0.8, zorder=z + 0.1)
        return
    if look.shape == "bar":
        ax.add_patch(Rectangle((b.x, b.y), b.w, b.h, fc=look.face, ec="none", zorder=z))
        return
    for k in range(b.stack, 0, -1):  # cards behind: many towers, or a repeated op
        ax.add_patch(Rectangle((b.x + k * d, b.y - k * d), b.w, b.h, fc=look.face, ec=look.edge, lw=0.6, zorder=z - 0.1 * k))
    if look.shape == "trapezoid":
        i = 0.07
        ax.add_patch(Polygon([(b.x, b.y), (b.x + b.w, b.y), (b.x + b.w - i, b.y + b.h), (b.x + i, b.y + b.h)], closed=True,
                             fc=look.face, ec=look.edge, lw=0.8, zorder=z))
    elif look.shape == "pill":
        ax.add_patch(FancyBboxPatch((b.x, b.y), b.w, b.h, boxstyle=f"round,pad=0,rounding_size={b.h / 2}", fc=look.face,
                                    ec=look.edge, lw=0.7, zorder=z))
    elif 1 < b.groups < style.GROUP_STACK:  # a few towers: side-by-side cells, each labelled
        gap = style.CELL_GAP
        cw = (b.w - gap * (b.groups - 1)) / b.groups
        # one op split in towers: a thin outline holds the cells together
        ax.add_patch(Rectangle((b.x - 0.025, b.y - 0.025), b.w + 0.05, b.h + 0.05, fc="none", ec=look.edge, lw=0.5, zorder=z))
        for g in range(b.groups):
            cx = b.x + g * (cw + gap)
            ax.add_patch(Rectangle((cx, b.y), cw, b.h, fc=look.face, ec=look.edge, lw=0.8, zorder=z))
            if b.bn:
                ax.add_patch(Rectangle((cx, b.y + b.h - 0.03), cw, 0.03, fc=style.BN_COLOR, ec="none", zorder=z + 0.1))
            if b.label:
                ax.text(cx + cw / 2, b.y + b.h / 2, b.label, ha="center", va="center", size=style.FONT_SIZE, family=style.FONT,
                        color=look.text, linespacing=1.1, zorder=z + 0.2)
        return
    else:
        ls = (0, (3, 1.5)) if look.shape == "dashed" else "-"
        ax.add_patch(Rectangle((b.x, b.y), b.w, b.h, fc=look.face, ec=look.edge, lw=0.8, ls=ls, zorder=z))
    if b.kind == "factor" and b.pieces > 1:  # notches at the sides mark the pieces
        for k in range(1, b.pieces):
            y = b.y + b.h * k / b.pieces
            ax.plot([b.x, b.x + 0.06], [y, y], color=look.edge, lw=0.9, zorder=z + 0.1)
            ax.plot([b.x + b.w - 0.06, b.x + b.w], [y, y], color=look.edge, lw=0.9, zorder=z + 0.1)
    if b.kind == "sep":  # a depthwise cell on the left
        ax.plot([b.x + 0.06, b.x + 0.06], [b.y, b.y + b.h], color=look.edge, lw=0.9, zorder=z + 0.1)
    if b.bn:
        ax.add_patch(Rectangle((b.x, b.y + b.h - 0.03), b.w, 0.03, fc=style.BN_COLOR, ec="none", zorder=z + 0.1))
    if b.label and look.shape != "bar":
        size = style.SMALL if b.kind == "aux" else style.FONT_SIZE
        y = b.y + (b.h - (0.03 if b.bn else 0.0)) / 2
        if b.kind == "aux":
            ax.text(b.x + style.PAD_X, y, b.label, ha="left", va="center", size=size, family=style.FONT, color=look.text,
                    linespacing=1.15, zorder=z + 0.2)
        else:
            ax.text(b.x + b.w / 2, y, b.label, ha="center", va="center", size=size, family=style.FONT, color=look.text,
                    linespacing=1.1, zorder=z + 0.2)
