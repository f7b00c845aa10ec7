"""Genome -> layout model: stem, stages and head top to bottom, wrapped into balanced columns.

Consecutive blocks that differ only in channel widths (and name) collapse into one framed module
with "×N"; parallel branches sit side by side over a concatenation bar; a residual block gets its
skip line on the right and an add node; auxiliary heads hang to the right of their module.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from nasplay.draw import labels, style
from nasplay.draw.model import Box, Diagram, Edge, Frame, Piece, Text, text_width
from nasplay.space.genome import Act, Aux, Block, Branch, Conv, Genome, Linear, Op
from nasplay.space.shapes import Shape, block_shape, walk


# --- collapsing repeated modules ----------------------------------------------------------------
def skeleton(obj):
    """``obj`` with channel widths and names blanked: blocks with equal skeletons collapse into one."""
    if isinstance(obj, Conv):
        return dataclasses.replace(obj, out=0, mid=None if obj.mid is None else 0)
    if isinstance(obj, Linear):
        return dataclasses.replace(obj, out=0)
    if isinstance(obj, Branch):
        return Branch(tuple(map(skeleton, obj.ops)), tuple(map(skeleton, obj.split)))
    if isinstance(obj, Block):
        return dataclasses.replace(obj, branches=tuple(map(skeleton, obj.branches)), merge=tuple(map(skeleton, obj.merge)),
                                   post=tuple(map(skeleton, obj.post)), repeat=1, name="")
    return obj


def _collapses(a: Block, b: Block) -> bool:
    """Modules (towers or a skip) collapse when only widths differ; plain blocks only when equal."""
    if skeleton(a) != skeleton(b):
        return False
    if len(b.branches) > 1 or b.skip != "none":
        return True
    return dataclasses.replace(a, repeat=1, name="") == dataclasses.replace(b, repeat=1, name="")


@dataclass
class Group:
    """A run of blocks drawn once: ``blocks`` are the distinct variants, ``count`` the copies in all."""

    blocks: list[Block]
    paths: list[str]
    first: int  # index of the first copy among the stage's expanded blocks
    count: int = 0
    names: list[str] = field(default_factory=list)
    shape_in: Shape = ()
    shape_out: Shape = ()
    steps: list[tuple[Shape, Shape]] = field(default_factory=list)  # (input, output) of one copy of each variant


def group_blocks(blocks: Sequence[Block], prefix: str, shape: Shape, collapse: bool = True) -> tuple[list[Group], Shape]:
    """Runs of consecutive blocks with equal skeletons (or only each block's own repeat if not ``collapse``)."""
    groups: list[Group] = []
    expanded = 0
    for i, b in enumerate(blocks):
        path = f"{prefix}[{i}]"
        out = block_shape(b, shape, path)
        step = (shape, block_shape(dataclasses.replace(b, repeat=1), shape, path))
        last = groups[-1] if groups else None
        if collapse and last is not None and _collapses(last.blocks[-1], b):
            last.blocks.append(b)
            last.paths.append(path)
        else:
            last = Group([b], [path], expanded, shape_in=shape)
            groups.append(last)
        last.steps.append(step)
        last.count += b.repeat
        last.names += [b.name] * b.repeat
        last.shape_out = out
        expanded += b.repeat
        shape = out
    return groups, shape


def group_name(names: list[str]) -> str:
    """``[inception4a, .., inception4e]`` -> ``inception4a–4e``; equal names stay one name."""
    distinct = list(dict.fromkeys(n for n in names if n))
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    first, last = distinct[0], distinct[-1]
    prefix = os.path.commonprefix([first, last]).rstrip("0123456789")
    return f"{first}–{last[len(prefix):]}"


# --- pieces -------------------------------------------------------------------------------------
def op_piece(ops: Sequence[Op], paths: tuple[str, ...]) -> Piece:
    """One op (all copies of it) as a box."""
    op = ops[0]
    kind, label = labels.op_kind(op), labels.op_label(ops)
    groups = op.groups if isinstance(op, Conv) else 1
    h = style.THIN_H if labels.is_thin(kind) else style.OP_H + style.LINE_H * label.count("\n")
    w = max(style.MIN_W, text_width(label) + 2 * style.PAD_X)
    if 1 < groups < style.GROUP_STACK:  # side-by-side towers, one label each
        w = groups * w + (groups - 1) * style.CELL_GAP
    if style.LOOKS[kind].shape == "trapezoid":
        w += 0.14  # the slanted sides take room from the text
    stack = 2 if groups >= style.GROUP_STACK else 0
    d = stack * style.STACK_DX
    box = Box(0.0, d, w, h, kind, label, paths, labels.op_pieces(op), groups, isinstance(op, Conv) and op.norm == "batch", stack)
    return Piece(w=w + d, h=h + d, ax=w / 2, boxes=[box])


def stack(pieces: Sequence[Piece], gap: float = style.GAP_Y) -> Piece:
    """Pieces one below the other on a common axis, with flow arrows between them."""
    left = max(p.ax for p in pieces)
    right = max(p.w - p.ax for p in pieces)
    out = Piece(w=left + right, ax=left)
    y = 0.0
    for i, p in enumerate(pieces):
        if i:
            out.edges.append(Edge([(left, y - gap), (left, y)]))
        out.add(p, left - p.ax, y)
        y += p.h + gap
    out.h = y - gap
    return out


def parallel(pieces: Sequence[Piece], paths: tuple[str, ...]) -> Piece:
    """Towers side by side: fan out from the top, concatenate at the bottom."""
    if len(pieces) == 1:
        return pieces[0]
    out = Piece()
    axes, x = [], 0.0
    tallest = max(p.h for p in pieces)
    for p in pieces:
        axes.append(x + p.ax)
        out.add(p, x, style.FAN)
        x += p.w + style.GAP_X
    out.w, out.ax = x - style.GAP_X, (axes[0] + axes[-1]) / 2
    yf = style.FAN * 0.35
    out.edges.append(Edge([(out.ax, 0.0), (out.ax, yf)], arrow=False))
    out.edges.append(Edge([(axes[0], yf), (axes[-1], yf)], arrow=False))
    ybar = style.FAN + tallest + style.GAP_Y
    for a, p in zip(axes, pieces):
        out.edges.append(Edge([(a, yf), (a, style.FAN)]))
        out.edges.append(Edge([(a, style.FAN + p.h), (a, ybar)]))
    out.boxes.append(Box(axes[0] - 0.05, ybar, axes[-1] - axes[0] + 0.1, style.CONCAT_H, "concat", paths=paths))
    out.h = ybar + style.CONCAT_H
    return out


def passthrough() -> Piece:
    """An empty tower: the input itself."""
    return Piece(w=0.25, h=style.OP_H, ax=0.125, edges=[Edge([(0.125, 0.0), (0.125, style.OP_H)], arrow=False)])


def ops_pieces(variants: Sequence[Sequence[Op]], paths: Sequence[str]) -> list[Piece]:
    return [op_piece([v[j] for v in variants], tuple(f"{p}[{j}]" for p in paths)) for j in range(len(variants[0]))]


def branch_piece(variants: Sequence[Branch], paths: Sequence[str]) -> Piece:
    br = variants[0]
    parts = ops_pieces([v.ops for v in variants], [f"{p}.ops" for p in paths])
    if br.split:
        subs = [branch_piece([v.split[i] for v in variants], [f"{p}.split[{i}]" for p in paths]) for i in range(len(br.split))]
        parts.append(parallel(subs, tuple(f"{p}.split" for p in paths)))
    return stack(parts) if parts else passthrough()


def leaves(br: Branch) -> int:
    return sum(leaves(s) for s in br.split) if br.split else 1


def with_skip(body: Piece, g: Group, post: list[str]) -> Piece:
    """The residual wiring: a skip line on the right into an add node below the body."""
    b = g.blocks[0]
    top = 0.1
    out = Piece()
    out.add(body, 0.0, top)
    ax = body.ax
    y_add = top + body.h + style.GAP_Y + style.ADD_R
    r = style.ADD_R
    xs = body.w + style.SKIP_GAP
    proj = None
    if b.skip == "projection":
        strides = [-(-a[1] // o[1]) for a, o in g.steps]
        label = f"1×1, {labels.merge_values([o[0] for _, o in g.steps])}"
        if max(strides) > 1:
            label += f" /{labels.merge_values(strides)}"
        pw = text_width(label) + 2 * style.PAD_X
        xs = body.w + style.SKIP_GAP + pw / 2
        proj = Box(xs - pw / 2, (top + y_add) / 2 - style.OP_H / 2, pw, style.OP_H, "conv1", label,
                   tuple(f"{p}.skip" for p in g.paths), bn=b.skip_norm == "batch")
        out.boxes.append(proj)
    paths = tuple(f"{p}.skip" for p in g.paths)
    label = f"×{labels.merge_values([blk.scale for blk in g.blocks])}" if b.skip == "scaled" else ""
    out.edges.append(Edge([(ax, 0.0), (ax, top)], arrow=False))
    out.edges.append(Edge([(ax, top * 0.5), (xs, top * 0.5), (xs, y_add), (ax + r, y_add)], kind=b.skip, paths=paths, label=label))
    out.edges.append(Edge([(ax, top + body.h), (ax, y_add - r)]))
    out.boxes.append(Box(ax - r, y_add - r, 2 * r, 2 * r, "add", "‖" if b.skip == "dense" else "+", paths))
    if label:
        out.texts.append(Text(ax + 0.04, y_add - r - style.GAP_Y / 2, label, "scale", paths=paths))
    if post:
        out.texts.append(Text(ax - r - 0.04, y_add, " ".join(post), "note", ha="right", paths=paths))
    out.w = max(body.w, xs + (proj.w / 2 if proj else 0.0)) + 0.03
    out.h = y_add + r
    out.ax = ax
    return out


def block_piece(g: Group) -> Piece:
    """A group of blocks: towers, merge ops, skip and post ops, framed when it is a module."""
    b, blocks, paths = g.blocks[0], g.blocks, g.paths
    brs = [branch_piece([blk.branches[i] for blk in blocks], [f"{p}.branches[{i}]" for p in paths]) for i in range(len(b.branches))]
    body = parallel(brs, tuple(paths))
    if b.merge:
        body = stack([body, *ops_pieces([blk.merge for blk in blocks], [f"{p}.merge" for p in paths])])
    post_ops = list(b.post)
    if b.skip != "none":
        # activations right after the add are written next to it rather than drawn as boxes
        lead = []
        while post_ops and isinstance(post_ops[0], Act):
            lead.append(labels.short(post_ops.pop(0)))
        body = with_skip(body, g, lead)
    if post_ops:
        start = len(b.post) - len(post_ops)
        body = stack([body, *ops_pieces([blk.post[start:] for blk in blocks], [f"{p}.post" for p in paths])])
    module = len(b.branches) > 1 or b.skip != "none" or (bool(b.name) and len(body.boxes) > 1) or (g.count > 1 and len(body.boxes) > 1)
    if not module:
        if g.count > 1:  # a single repeated op: a stack of cards and ×N
            for box in body.boxes:
                box.stack = max(box.stack, 2)
            body = _with_repeat(body, g.count, tuple(paths), lift=True)
        return body
    return frame(body, g, tuple(paths))


def _with_repeat(body: Piece, count: int, paths: tuple[str, ...], lift: bool = False) -> Piece:
    d = 2 * style.STACK_DX
    if lift:  # make room above for the cards behind the box
        body.move(0.0, d)
        body.h += d
        body.w += d
    text = f"×{count}"
    body.texts.append(Text(body.w + 0.06, body.h / 2 + (d / 2 if lift else 0.0), text, "repeat", paths=paths))
    body.w += 0.06 + text_width(text, style.FONT_SIZE * 1.35)
    return body


def frame(body: Piece, g: Group, paths: tuple[str, ...]) -> Piece:
    """A module frame with its name; repeated modules show cards behind and ×N on the right."""
    b = g.blocks[0]
    name = group_name(g.names)
    pad = style.FRAME_PAD
    header = style.HEADER_H if name else 0.0
    lift = 2 * style.STACK_DX if g.count > 1 else 0.0
    name_w = text_width(name, style.SMALL) if name else 0.0
    left = pad
    # the name sits left of the entry arrow when it fits there, else right of it; widen the frame if needed
    name_left = name_w + 0.06 <= body.ax
    need = body.ax + 0.05 + name_w + 0.04 if name and not name_left else 0.0
    extra = max(0.0, need - body.w)
    out = Piece()
    out.add(body, left, lift + pad + header)
    fw, fh = body.w + 2 * pad + extra, body.h + 2 * pad + header
    ax = left + body.ax
    towers = len(b.branches)
    out.frames.append(Frame(0.0, lift, fw, fh, name, towers, sum(leaves(br) for br in b.branches), g.count, b.skip, paths))
    if name:
        x = pad if name_left else ax + 0.05
        out.texts.append(Text(x, lift + pad * 0.6 + header / 2, name, "module", paths=paths))
    out.edges.append(Edge([(ax, lift), (ax, lift + pad + header)]))
    out.edges.append(Edge([(ax, lift + fh - pad), (ax, lift + fh)], arrow=False))
    out.w, out.h, out.ax = fw + lift, fh + lift, ax
    if g.count > 1:
        out = _with_repeat(out, g.count, paths)
    return out


def aux_piece(unit: Piece, auxes: list[tuple[int, Aux, str]]) -> Piece:
    """Auxiliary heads to the right of the module that feeds them (one box per distinct head).

    The dashed line leaves the module's output just below it and rises into the box, so it crosses
    neither the towers nor the ×N count.
    """
    distinct: dict[tuple, list[tuple[int, str]]] = {}
    for i, a, where in auxes:
        distinct.setdefault((a.ops, a.weight), []).append((i, where))
    x = unit.w + 0.25
    top = 0.0
    y_line = unit.h + 0.05
    for (ops, weight), members in distinct.items():
        lines, line = [], ""
        for s in [labels.short(op) for op in ops] + ["fc"]:
            piece = s if not line else f"{line} → {s}"
            if line and len(piece) > 32:
                lines.append(line + " →")
                line = s
            else:
                line = piece
        lines.append(line)
        wheres = [w for _, w in members if w]
        head = f"aux head{'s ×' + str(len(members)) if len(members) > 1 else ''} (loss ×{weight:g})"
        if wheres:
            head += f", after {', '.join(wheres)}"
        text = "\n".join([head, *lines])
        w = text_width(text, style.SMALL) + 2 * style.PAD_X
        h = 0.1 + 0.104 * (text.count("\n") + 1)
        y = unit.h - 0.06 - h
        paths = tuple(f"aux[{i}]" for i, _ in members)
        unit.boxes.append(Box(x, y, w, h, "aux", text, paths))
        unit.edges.append(Edge([(unit.ax, unit.h), (unit.ax, y_line), (x + w / 2, y_line), (x + w / 2, y + h)], kind="aux", paths=paths))
        top = min(top, y)
        x += w + 0.15
    unit.w = x - 0.15
    if top < 0:
        unit.move(0.0, -top)
        unit.h -= top
    return unit


# --- the whole network --------------------------------------------------------------------------
@dataclass
class Unit:
    """A piece of the main column with an optional section header (stem, a stage, head)."""

    piece: Piece
    header: str = ""

    @property
    def height(self) -> float:
        return self.piece.h + (style.STAGE_H if self.header else 0.0)


def _shape_text(shape: Shape) -> str:
    return "×".join(map(str, shape))


def units_of(genome: Genome, collapse: bool = True) -> list[Unit]:
    walk(genome)  # validates: a bad genome fails here with the path of the bad field
    c, s = genome.input.channels, genome.input.size
    shape: Shape = (c, s, s)
    inp = Box(0.0, 0.0, 0.0, style.OP_H, "input", f"input {c}×{s}×{s}", ("input",))
    inp.w = text_width(inp.label) + 2 * style.PAD_X
    units = [Unit(Piece(w=inp.w, h=inp.h, ax=inp.w / 2, boxes=[inp]))]
    sections: list[tuple[str, str, tuple, list[Aux]]] = []
    if genome.stem:
        sections.append(("stem", "stem", genome.stem, []))
    for si, st in enumerate(genome.stages):
        auxes = [a for a in genome.aux if a.stage % len(genome.stages) == si]
        sections.append((f"stages[{si}].blocks", st.name or f"stage {si + 1}", st.blocks, auxes))
    for prefix, title, blocks, auxes in sections:
        groups, shape = group_blocks(blocks, prefix, shape, collapse)
        n = sum(b.repeat for b in blocks)
        for gi, g in enumerate(groups):
            piece = block_piece(g)
            mine = []
            for a in auxes:
                k = a.block % n
                if g.first <= k < g.first + g.count:
                    where = g.names[k - g.first] if g.count > 1 else ""
                    mine.append((genome.aux.index(a), a, where or (f"copy {k - g.first + 1}" if g.count > 1 else "")))
            if mine:
                piece = aux_piece(piece, mine)
            units.append(Unit(piece, f"{title} → {_shape_text(shape)}" if gi == 0 else ""))
    head_ops = [op_piece([op], (f"head.ops[{i}]",)) for i, op in enumerate(genome.head.ops)]
    out_label = f"RBF {genome.classes} (fixed)" if genome.head.output == "rbf" else f"fc {genome.classes}"
    out = op_piece([Linear(genome.classes)], ("head.output",))
    out.boxes[0].kind, out.boxes[0].label = "output", out_label
    out.boxes[0].w = out.w = max(style.MIN_W, text_width(out_label) + 2 * style.PAD_X)
    out.ax = out.w / 2
    units.append(Unit(stack([*head_ops, out]), "head"))
    return units


def _partition(heights: list[float], k: int, gap: float) -> list[int]:
    """Split points of ``heights`` into at most ``k`` contiguous columns minimising the tallest."""
    lo, hi = max(heights), sum(heights) + gap * len(heights)
    for _ in range(40):
        mid = (lo + hi) / 2
        if len(_greedy(heights, mid, gap)) <= k:
            hi = mid
        else:
            lo = mid
    return _greedy(heights, hi, gap)


def _greedy(heights: list[float], limit: float, gap: float) -> list[int]:
    starts, used = [0], 0.0
    for i, h in enumerate(heights):
        if i and used + gap + h > limit + 1e-9:
            starts.append(i)
            used = h
        else:
            used += (gap if i and used else 0.0) + h
    return starts


UNIT_GAP = style.GAP_Y * 1.4


def columns(units: list[Unit], max_height: float) -> Diagram:
    """Stack the units, wrapping into as few balanced columns as keep each under ``max_height``."""
    heights = [u.height for u in units]
    k = 1
    while True:
        starts = _partition(heights, k, UNIT_GAP)
        tallest = max(sum(heights[a:b]) + UNIT_GAP * (b - a - 1) for a, b in zip(starts, [*starts[1:], len(units)]))
        if tallest <= max_height or k >= len(units):
            break
        k += 1
    dia = Diagram(0.0, 0.0, [], [], [], [])
    x = 0.0
    prev_exit = None
    for a, b in zip(starts, [*starts[1:], len(units)]):
        col = units[a:b]
        left = max(u.piece.ax for u in col)
        right = max(u.piece.w - u.piece.ax for u in col)
        y = 0.0
        # a column's headers sit all left of its axis when they all fit there, else all right of it
        heads_left = all(text_width(u.header, style.SMALL) + 0.08 <= left for u in col if u.header)
        for i, u in enumerate(col):
            if u.header:
                tw = text_width(u.header, style.SMALL)
                hx = x if heads_left else x + left + 0.06
                right = max(right, hx - x - left + tw)
                dia.texts.append(Text(hx, y + style.STAGE_H * 0.45, u.header, "stage"))
                if i:
                    dia.edges.append(Edge([(x + left, y - UNIT_GAP), (x + left, y)], arrow=False))
                    y += style.STAGE_H
                    dia.edges.append(Edge([(x + left, y - style.STAGE_H), (x + left, y)]))
                else:
                    y += style.STAGE_H
            elif i:
                dia.edges.append(Edge([(x + left, y - UNIT_GAP), (x + left, y)]))
            if i == 0 and prev_exit is not None:
                px, py = prev_exit
                gx = x - style.COL_GAP / 2
                dia.edges.append(Edge([(px, py), (px, py + 0.12), (gx, py + 0.12), (gx, -0.12), (x + left, -0.12), (x + left, 0.0)],
                                      kind="wrap"))
            p = u.piece
            for e in p.elements():
                e.move(x + left - p.ax, y)
            dia.boxes += p.boxes
            dia.edges += p.edges
            dia.frames += p.frames
            dia.texts += p.texts
            y += p.h + UNIT_GAP
        prev_exit = (x + left, y - UNIT_GAP)
        dia.h = max(dia.h, y - UNIT_GAP)
        x += left + right + style.COL_GAP
    dia.w = x - style.COL_GAP
    dia.columns = len(starts)
    if dia.columns > 1:  # the continuation lines run 0.12 above and below the columns
        dia.move(0.0, 0.14)
        dia.h += 0.28
    dia.kinds = {b.kind for b in dia.boxes} | {e.kind for e in dia.edges if e.kind in style.SKIP_KINDS}
    if any(b.groups > 1 for b in dia.boxes):
        dia.kinds.add("grouped")
    return dia


def layout(genome: Genome, max_height: float = 8.0, collapse: bool = True) -> Diagram:
    """The network body of ``genome`` (no title, no legend) as a layout model."""
    return columns(units_of(genome, collapse), max_height)

