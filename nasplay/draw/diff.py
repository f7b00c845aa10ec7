"""What separates two genomes, in terms of knobs and modules: ``diff_genomes(a, b)``.

Knob-level differences come first (input, skips, cardinality and group width, factorization,
separable convs, kernels, normalization, activations, pooling, head, aux heads, depth, bottlenecks),
then module-level ones (the stem, each stage's modules and their counts, whether the copies of a
module are uniform, and the widths of modules that are otherwise the same). Each difference names
where it is in both genomes so ``draw_diff`` can mark it in a side-by-side picture.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nasplay.draw import style
from nasplay.draw.diagram import as_genome, titles
from nasplay.draw.labels import act_name, kernel_text, op_label, short
from nasplay.draw.layout import group_blocks, group_name, layout, skeleton
from nasplay.draw.model import Diagram, Text, text_width
from nasplay.draw.page import legend, merge, titled
from nasplay.draw.render import matches, render, save
from nasplay.space.genome import Act, Block, Conv, Genome, Linear, Norm, Op, Pool, Subsample, expanded_blocks, pair
from nasplay.space.knobs.tree import block_ops, iter_blocks
from nasplay.space.measure import depth
from nasplay.space.shapes import conv_piece_count, walk


@dataclass(frozen=True)
class Difference:
    """One thing that separates genome A from genome B, in plain words."""

    path: str  # where in the genomes: "input", "stem", "stages[1]", "head", "aux", or "network" for knob-wide ones
    kind: str  # the knob or module aspect: skip, cardinality, factorize, ..., stem, modules, uniform, widths
    before: str  # in A
    after: str  # in B
    text: str
    a_paths: tuple[str, ...] = ()  # elements to mark in A's drawing
    b_paths: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "from": self.before, "to": self.after, "text": self.text}


# --- walking a genome (nasplay.space.knobs.tree walks it; these name what the diff needs) --------------------
blocks = iter_blocks


def body_ops(g: Genome) -> Iterator[tuple[str, Op, int]]:
    """``(path, op, copies)`` of the stem and stage ops (``copies``: the block's repeat)."""
    for path, b in blocks(g):
        for p, op in block_ops(b, path):
            yield p, op, b.repeat


def _convs(g: Genome) -> list[tuple[str, Conv, int]]:
    return [(p, op, n) for p, op, n in body_ops(g) if isinstance(op, Conv)]


# --- knob-level features ------------------------------------------------------------------------
# A feature is ``(text, kinds)``: ``kinds`` maps each kind of thing the feature sees to the paths
# that show it, so a diff marks only the kinds one genome has and the other lacks. Texts name kinds,
# not counts, where counts would only echo a difference in depth.
Feature = tuple[str, dict[str, list[str]]]


def _kinds(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, path in pairs:
        out.setdefault(kind, []).append(path)
    return out


def _listed(kinds: dict[str, list[str]], none: str = "none") -> str:
    return ", ".join(sorted(kinds)) or none


def _skip(g: Genome) -> Feature:
    c: Counter = Counter()
    for _, b in blocks(g):
        c[b.skip] += b.repeat if b.skip != "none" else 0
    kinds = _kinds((b.skip, p) for p, b in blocks(g) if b.skip != "none")
    if not kinds:
        return "none", {}
    return f"{sum(c.values())} blocks ({', '.join(f'{n} {k}' for k, n in c.most_common() if n)})", kinds


def _cardinality(g: Genome) -> Feature:
    kinds = _kinds((f"{op.groups} towers", p) for p, op, _ in _convs(g) if op.groups > 1)
    return " and ".join(sorted(kinds, key=lambda k: int(k.split()[0]))) or "1 (no grouped convs)", kinds


def _group_width(g: Genome) -> Feature:
    """Channels per tower of the first spatial (k×k, not separable) conv of each stage."""
    widths = []
    for st in g.stages:
        for b in st.blocks:
            ops = [op for _, op in block_ops(b, "") if isinstance(op, Conv) and not op.separable and pair(op.kernel) != (1, 1)]
            if ops:
                widths.append(str(ops[0].out // ops[0].groups))
                break
    return "/".join(widths) or "—", {}


def _drop_path(g: Genome) -> Feature:
    """Stochastic depth on the residual blocks: each block's first-copy rate (blocks without a skip ignore it)."""
    hits = [(p, b) for p, b in blocks(g) if b.skip != "none" and (b.drop_path or b.drop_path_step)]
    if not hits:
        return "none", {}
    rates = [b.drop_path for _, b in hits] + [b.drop_path + (b.repeat - 1) * b.drop_path_step for _, b in hits]
    n = sum(b.repeat for _, b in hits)
    return f"drop path {min(rates):.3g}–{max(rates):.3g} on {n} residual blocks", {"drop path": [p for p, _ in hits]}


def _layer_scale(g: Genome) -> Feature:
    """Layer scale on the residual blocks (a learned per-channel scale of the residual, from its initial value)."""
    hits = [(p, b) for p, b in blocks(g) if b.skip != "none" and b.layer_scale is not None]
    if not hits:
        return "none", {}
    inits = sorted({f"{b.layer_scale:g}" for _, b in hits})
    return f"initialised {', '.join(inits)} on {sum(b.repeat for _, b in hits)} residual blocks", {"layer scale": [p for p, _ in hits]}


def _factorize(g: Genome) -> Feature:
    return _listed(kinds := _kinds((f"{kernel_text(op)} ({'stacked 3×3' if op.factor == 'stacked' else '1×n+n×1'})", p)
                                   for p, op, _ in _convs(g) if op.factor != "none")), kinds


def _separable(g: Genome) -> Feature:
    hits = [(p, n) for p, op, n in _convs(g) if op.separable]
    return (f"{sum(n for _, n in hits)} separable convs" if hits else "none"), _kinds(("separable", p) for p, _ in hits)


def _kernels(g: Genome) -> Feature:
    kinds = _kinds(("×".join(map(str, pair(op.kernel))), p) for p, op, _ in _convs(g))
    order = sorted(kinds, key=lambda k: (-math.prod(int(x) for x in k.split("×")), k))  # largest kernel area first
    return ", ".join(order), kinds


def _norm(g: Genome) -> Feature:
    pairs = []
    for p, op, _ in body_ops(g):
        if isinstance(op, Conv) and op.norm == "batch":
            pairs.append(("BatchNorm after convs", ""))  # every conv would light up: the dark base already shows it
        elif isinstance(op, Norm):
            pairs.append(("LRN" if op.kind == "lrn" else "BatchNorm", p))
    kinds = {k: [p for p in v if p] for k, v in _kinds(pairs).items()}
    return _listed(kinds), kinds


def _activations(g: Genome) -> Feature:
    fns = set()
    for _, op, _ in body_ops(g):
        if isinstance(op, (Conv, Subsample)):
            fns.add(op.act)
        elif isinstance(op, Act):
            fns.add(op.fn)
    fns |= {op.act for op in g.head.ops if isinstance(op, Linear)}
    fns.discard("none")
    return ", ".join(sorted(act_name(f) for f in fns)) or "none", {}


def _pooling(g: Genome) -> Feature:
    pairs = []
    for p, op, _ in body_ops(g):
        if isinstance(op, Pool):
            k = pair(op.kernel)[0]
            s = k if op.stride is None else op.stride
            pairs.append((op_label([op]) + (" (overlapping)" if op.adaptive is None and s > 1 and k > s else ""), p))
        elif isinstance(op, Subsample):
            pairs.append((f"trainable subsampling {op.kernel}×{op.kernel}", p))
    return _listed(kinds := _kinds(pairs)), kinds


def _head(g: Genome) -> Feature:
    out = f"RBF {g.classes}" if g.head.output == "rbf" else f"fc {g.classes}"
    pairs = [(short(op), f"head.ops[{i}]") for i, op in enumerate(g.head.ops)] + [(out, "head.output")]
    return " · ".join(k for k, _ in pairs), _kinds(pairs)


def _aux(g: Genome) -> Feature:
    if not g.aux:
        return "none", {}
    where = []
    for a in g.aux:
        st = g.stages[a.stage]
        b = expanded_blocks(st)[a.block]
        where.append(f"{b.name or f'block {a.block % len(expanded_blocks(st))}'} of stage {st.name or a.stage}")
    text = f"{len(g.aux)} (after {', '.join(where)})"
    return text, {text: [f"aux[{i}]" for i in range(len(g.aux))]}


def _bottlenecks(g: Genome) -> Feature:
    hits = [p for p, op, _ in _convs(g) if pair(op.kernel) == (1, 1) and not op.separable]
    return ("yes" if hits else "none"), _kinds(("1×1", p) for p in hits)


def _depth(g: Genome) -> Feature:
    convs = sum(n * conv_piece_count(op) for _, op, n in _convs(g))
    return f"{depth(g)} weighted layers ({convs} convs)", {}


KNOB_WORDS = {
    "input": "input",
    "classes": "classes",
    "skip": "skip connections",
    "cardinality": "cardinality (towers of the grouped convs)",
    "group_width": "group width (channels per tower of each stage's first k×k conv)",
    "factorize": "factorized convolutions",
    "separable": "separable convolutions",
    "kernels": "kernel sizes",
    "norm": "normalization",
    "activation": "activations",
    "pool": "pooling",
    "head": "head",
    "aux": "auxiliary heads",
    "bottleneck": "1×1 convolutions (bottlenecks, projections)",
    "depth": "depth",
    "drop_path": "stochastic depth",
    "layer_scale": "layer scale",
}


def knob_features(g: Genome) -> dict[str, Feature]:
    """Each knob-level property of ``g`` as ``(text, {kind: paths that show it})``."""
    c, s = g.input.channels, g.input.size
    return {
        "input": (f"{c}×{s}×{s}", {f"{c}×{s}×{s}": ["input"]}),
        "classes": (str(g.classes), {str(g.classes): ["head.output"]}),
        "skip": _skip(g),
        "cardinality": _cardinality(g),
        "group_width": _group_width(g),
        "factorize": _factorize(g),
        "separable": _separable(g),
        "kernels": _kernels(g),
        "norm": _norm(g),
        "activation": _activations(g),
        "pool": _pooling(g),
        "head": _head(g),
        "aux": _aux(g),
        "bottleneck": _bottlenecks(g),
        "depth": _depth(g),
        "drop_path": _drop_path(g),
        "layer_scale": _layer_scale(g),
    }


def _only_in(mine: dict[str, list[str]], other: dict[str, list[str]]) -> tuple[str, ...]:
    """Paths of the kinds ``mine`` has and ``other`` lacks: what a diff marks."""
    return tuple(p for k, ps in mine.items() if k not in other for p in ps)


# --- module-level features ----------------------------------------------------------------------
def block_kind(b: Block) -> str:
    """A module's name, or a short structural description for unnamed blocks."""
    if b.name:
        return b.name
    ops = [op for _, op in block_ops(b, "")]
    if len(b.branches) > 1:
        text = f"{len(b.branches)}-tower block"
    elif len(ops) == 1:
        op = ops[0]
        text = f"{kernel_text(op)} conv" if isinstance(op, Conv) else short(op)
    else:
        convs = [kernel_text(op) for op in ops if isinstance(op, Conv)]
        text = "→".join(convs) + " block" if convs else " → ".join(short(op) for op in ops)
    return text + (f" + {b.skip} skip" if b.skip != "none" else "")


def _runs(groups) -> list[tuple[str, int]]:
    """``(module name or description, copies)`` of each collapsed run of blocks."""
    return [(group_name(g.names) or block_kind(g.blocks[0]), g.count) for g in groups]


def _runs_text(runs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in runs) or "none"


def _conv_layers(blocks_: Sequence[Block]) -> int:
    return sum(b.repeat * conv_piece_count(op) for b in blocks_ for _, op in block_ops(b, "") if isinstance(op, Conv))


def _stem_text(g: Genome) -> str:
    if not g.stem:
        return "none (the first stage starts at the input)"
    towers = [b for b in g.stem if len(b.branches) > 1]
    plain = [op for b in g.stem if len(b.branches) == 1 for _, op in block_ops(b, "")]
    convs = sum(isinstance(op, Conv) for op in plain)
    pools = sum(isinstance(op, Pool) for op in plain)
    text = f"{convs} conv{'s' if convs != 1 else ''}" + (f", {pools} pool{'s' if pools != 1 else ''}" if pools else "") + " in one path"
    if towers:
        names = ", ".join(f"{b.name or 'block'}: {len(b.branches)} towers" for b in towers)
        text += f", then {len(towers)} parallel-tower block{'s' if len(towers) > 1 else ''} ({names})"
    return text


def _is_module(b: Block) -> bool:
    return len(b.branches) > 1 or b.skip != "none"


def _uniform(g: Genome) -> tuple[str, tuple[str, ...]]:
    """Which modules (multi-tower or residual) have copies of different widths."""
    shape = (g.input.channels, g.input.size, g.input.size)
    uneven, paths = [], []
    sections = [("stem", g.stem)] + [(f"stages[{si}].blocks", st.blocks) for si, st in enumerate(g.stages)]
    for prefix, bl in sections:
        groups, shape = group_blocks(bl, prefix, shape)
        for grp in groups:
            if not _is_module(grp.blocks[0]) or len(set(_strip(grp.blocks))) == 1:
                continue
            variants = [[op for _, op in block_ops(b, "")] for b in grp.blocks]
            first = next(ops for ops in zip(*variants) if len(set(ops)) > 1)
            uneven.append(f"{group_name(grp.names) or block_kind(grp.blocks[0])} ×{grp.count} ({op_label(first).replace(chr(10), ' ')})")
            paths += grp.paths
    if not uneven:
        return "uniform (the copies of each module are identical)", ()
    return "copies differ: " + "; ".join(uneven), tuple(paths)


def _strip(bl: Sequence[Block]) -> list[Block]:
    return [dataclasses.replace(b, name="", repeat=1) for b in bl]


# --- the diff -----------------------------------------------------------------------------------
def diff_genomes(a: Genome | str, b: Genome | str) -> list[Difference]:
    """What separates genome ``a`` from genome ``b``: knob-level differences, then module-level ones.

    Each :class:`Difference` has ``path``, ``kind``, ``before`` / ``after`` (``from`` / ``to`` in
    :meth:`Difference.to_dict`) and ``text``, a sentence in plain words.
    """
    a, b = as_genome(a), as_genome(b)
    sa_, sb_ = walk(a), walk(b)  # both must be valid: a bad genome fails with the path of the bad field
    out: list[Difference] = []
    fa, fb = knob_features(a), knob_features(b)
    grouped = bool(fa["cardinality"][1] or fb["cardinality"][1])
    for key, words in KNOB_WORDS.items():
        (ta, ka), (tb, kb) = fa[key], fb[key]
        if ta == tb or (key == "group_width" and not grouped):
            continue
        where = key if key in ("input", "classes", "head", "aux") else "network"
        out.append(Difference(where, key, ta, tb, f"{words}: {ta} → {tb}", _only_in(ka, kb), _only_in(kb, ka)))
    na = sum(x.repeat for _, x in blocks(a) if len(x.branches) > 1)
    nb = sum(x.repeat for _, x in blocks(b) if len(x.branches) > 1)
    if na != nb:
        out.append(Difference("network", "modules", str(na), str(nb), f"multi-tower modules: {na} → {nb}"))
    st_a, st_b = _stem_text(a), _stem_text(b)
    if st_a != st_b:
        out.append(Difference("stem", "stem", st_a, st_b, f"stem: {st_a} → {st_b}", ("stem",), ("stem",)))
    else:
        out += _section_diffs("stem", "stem", "stem", a.stem, b.stem, _in(a), _in(b))
    if len(a.stages) != len(b.stages):
        out.append(Difference("stages", "stages", str(len(a.stages)), str(len(b.stages)), f"stages: {len(a.stages)} → {len(b.stages)}"))
    shapes_a, shapes_b = [sa_.stem] + [s[-1] for s in sa_.blocks], [sb_.stem] + [s[-1] for s in sb_.blocks]
    for si in range(max(len(a.stages), len(b.stages))):
        path = f"stages[{si}]"
        if si >= len(a.stages) or si >= len(b.stages):
            have = a if si < len(a.stages) else b
            st = have.stages[si]
            gone = have is a
            out.append(Difference(path, "stage", st.name if gone else "—", "—" if gone else st.name,
                                  f"stage {st.name or si + 1}: {'removed' if gone else 'added'}",
                                  (path,) if gone else (), () if gone else (path,)))
            continue
        x, y = a.stages[si], b.stages[si]
        name = x.name if x.name == y.name else f"{x.name or si + 1}/{y.name or si + 1}"
        out += _section_diffs(path, f"{path}.blocks", f"stage {name}", x.blocks, y.blocks, shapes_a[si], shapes_b[si])
    ua, ub = _uniform(a), _uniform(b)
    if ua[0] != ub[0]:
        out.append(Difference("network", "uniform", ua[0], ub[0], f"module widths: {ua[0]} → {ub[0]}", ua[1], ub[1]))
    return out


def _in(g: Genome) -> tuple[int, int, int]:
    return (g.input.channels, g.input.size, g.input.size)


def _section_diffs(path: str, prefix: str, title: str, xa: Sequence[Block], xb: Sequence[Block], shape_a, shape_b) -> list[Difference]:
    """The stem's or one stage's differences: its modules and their counts, else the ops that changed."""
    groups_a, groups_b = group_blocks(xa, prefix, shape_a)[0], group_blocks(xb, prefix, shape_b)[0]
    runs_a, runs_b = _runs(groups_a), _runs(groups_b)
    ra, rb = _runs_text(runs_a), _runs_text(runs_b)
    da, db = _conv_layers(xa), _conv_layers(xb)
    if ra != rb:
        ma = tuple(p for g, r in zip(groups_a, runs_a) if r not in runs_b for p in g.paths)
        mb = tuple(p for g, r in zip(groups_b, runs_b) if r not in runs_a for p in g.paths)
        if [n for n, _ in runs_a] == [n for n, _ in runs_b]:  # the same modules, repeated more or less often
            return [Difference(path, "depth", str(da), str(db), f"{title}: {da} → {db} conv layers ({ra} → {rb})", ma, mb)]
        text = f"{title}: {ra} → {rb}" + (f" ({da} → {db} conv layers)" if da != db else "")
        return [Difference(path, "modules", ra, rb, text, ma, mb)]
    ea = [(f"{prefix}[{i}]", blk) for i, blk in enumerate(xa) for _ in range(blk.repeat)]
    eb = [(f"{prefix}[{i}]", blk) for i, blk in enumerate(xb) for _ in range(blk.repeat)]
    if [x for _, x in ea] == [x for _, x in eb]:
        return []
    changes: Counter = Counter()
    widths_only = True
    ma, mb = [], []
    for (pa, ba), (pb, bb) in zip(ea, eb):
        found, same_kind = _ops_changes([op for _, op in block_ops(ba, "")], [op for _, op in block_ops(bb, "")])
        if (ba.skip, ba.scale, ba.post) != (bb.skip, bb.scale, bb.post):
            found.append(f"{block_kind(ba)} → {block_kind(bb)}")
            same_kind = False
        if found:
            changes.update(found)
            widths_only &= same_kind
            ma.append(pa)
            mb.append(pb)
    if not changes:  # the blocks differ only in what the knob-level lines name (layer scale, drop path)
        return []
    items = [f"{c} (×{n})" if n > 1 else c for c, n in list(changes.items())[:4]] + (["…"] if len(changes) > 4 else [])
    kind = "widths" if widths_only else "ops"
    return [Difference(path, kind, ra, rb, f"{title}: " + "; ".join(items), tuple(dict.fromkeys(ma)), tuple(dict.fromkeys(mb)))]


def _ops_changes(oa: list[Op], ob: list[Op]) -> tuple[list[str], bool]:
    """What changed between two op lists (aligned by kind), and whether only widths changed."""
    sa, sb = [_align_key(o) for o in oa], [_align_key(o) for o in ob]
    out, widths_only = [], True
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=sa, b=sb, autojunk=False).get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for u, v in zip(oa[i1:i2], ob[j1:j2]):
                if u == v:
                    continue
                widths_only &= skeleton(u) == skeleton(v)
                lu, lv = short(u), short(v)
                out.append(f"{lu} → {lv}" if lu != lv else f"{type(u).__name__.lower()}s: {_fields_change(u, v)}")
            continue
        widths_only = False
        out += [f"removes {short(o)}" for o in oa[i1:i2]] + [f"adds {short(o)}" for o in ob[j1:j2]]
    return out, widths_only


def _align_key(op: Op) -> tuple:
    """What must match for two ops to count as the same op changed (not one removed, one added)."""
    if isinstance(op, Conv):
        return ("conv", pair(op.kernel), op.factor, op.separable)
    if isinstance(op, Pool):
        return ("pool", op.kind, op.adaptive is None)
    return (type(op).__name__,)


def _fields_change(u: Op, v: Op) -> str:
    """The fields a label leaves out (bias, norm, padding, mid width ...) that differ."""
    if type(u) is not type(v):
        return f"{type(u).__name__} → {type(v).__name__}"
    return ", ".join(f"{f.name} {getattr(u, f.name)} → {getattr(v, f.name)}" for f in dataclasses.fields(u)
                     if getattr(u, f.name) != getattr(v, f.name))


def diff_text(a: Genome | str, b: Genome | str, diffs: list[Difference] | None = None) -> str:
    """The differences as numbered lines under a header naming both genomes."""
    a, b = as_genome(a), as_genome(b)
    diffs = diff_genomes(a, b) if diffs is None else diffs
    head = f"{a.name} ({a.hash}) → {b.name} ({b.hash})"
    if not diffs:
        same = a.hash == b.hash
        return head + ("\n  the same architecture" if same else "\n  no difference in knobs or modules (details differ: compare the YAML)")
    return head + "\n" + "\n".join(f"  {i}. {d.text}" for i, d in enumerate(diffs, 1))


# --- the picture --------------------------------------------------------------------------------
def layout_diff(a: Genome | str, b: Genome | str, diffs: list[Difference] | None = None, max_height: float = 10.0) -> Diagram:
    """A and B side by side, each difference numbered in both drawings and listed below."""
    a, b = as_genome(a), as_genome(b)
    diffs = diff_genomes(a, b) if diffs is None else diffs
    page = Diagram(0.0, 0.0, [], [], [], [], title=f"{a.name} → {b.name}")
    page.texts.append(Text(0.0, 0.15, f"{a.name} → {b.name}: {len(diffs)} difference{'s' if len(diffs) != 1 else ''}", "title"))
    x = 0.0
    kinds: set[str] = set()
    marks: dict[str, tuple[str, ...]] = {"a": (), "b": ()}
    for side, g in (("a", a), ("b", b)):
        body = layout(g, max_height=max_height)
        kinds |= body.kinds
        paths = [d.a_paths if side == "a" else d.b_paths for d in diffs]
        used: Counter = Counter()
        for i, ps in enumerate(paths, 1):
            anchor = _anchor(body, ps, matches)
            if anchor is not None:  # badges on the same element sit side by side
                body.texts.append(Text(anchor[0] + 0.19 * used[anchor], anchor[1], str(i), "badge", ha="center", paths=("badge",)))
                used[anchor] += 1
        marks[side] = tuple(p for ps in paths for p in ps)
        t, sub = titles(g)
        panel = titled(body, t, sub, with_legend=False, role="panel")
        for e in panel.boxes + panel.edges + panel.frames + panel.texts:
            e.paths = tuple(f"{side}:{p}" for p in e.paths)
        merge(page, panel, x, 0.45)
        x = page.w + 0.7
    leg = legend(kinds)
    merge(page, leg, x, 0.45)
    y = page.h + 0.3
    page.texts.append(Text(0.0, y, "differences (numbers mark them in both drawings)", "panel"))
    y += 0.25
    lines = [f"{i}. {d.text}" for i, d in enumerate(diffs, 1)] or ["none: the same architecture"]
    for line in lines:
        page.texts.append(Text(0.0, y, line, "diff"))
        page.w = max(page.w, text_width(line, style.DIFF_SIZE))
        y += 0.19
    page.h = y
    page.marks = tuple(f"a:{p}" for p in marks["a"]) + tuple(f"b:{p}" for p in marks["b"])
    return page


def _anchor(body, paths: tuple[str, ...], matches) -> tuple[float, float] | None:
    """The top-left corner of the first frame (else box, else edge) that shows one of ``paths``."""
    if not paths:
        return None
    for f in body.frames:
        if matches(f.paths, paths):
            return f.x, f.y
    for bx in body.boxes:
        if matches(bx.paths, paths):
            return bx.x, bx.y
    for e in body.edges:
        if matches(e.paths, paths):
            return e.points[0]
    return None


def draw_diff(a: Genome | str, b: Genome | str, target: str | Path | IO, fmt: str | None = None) -> list[Difference]:
    """Draw A and B side by side with their differences marked; return the differences."""
    diffs = diff_genomes(a, b)
    page = layout_diff(a, b, diffs)
    save(render(page, marks=page.marks), target, fmt)
    return diffs
