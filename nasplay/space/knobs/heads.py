"""Knobs on the classifier side: head (+ head_width) and aux."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from nasplay.space.genome import Act, Aux, Conv, Dropout, Genome, Linear, Pool
from nasplay.space.knobs.tree import KnobError, iter_ops, refuse, uses_bn
from nasplay.space.measure import depth
from nasplay.space.shapes import walk

HEADS = ("fc", "gap")
FC_WIDTH = 4096  # AlexNet's and VGG's hidden FC width
FC_GRID = 7  # an FC head flattens at most a 7 x 7 map (VGG's); larger maps are pooled down to it
AUX_MIN_DEPTH = 10  # auxiliary classifiers help deep networks; below this they only add a second loss
GAP = Pool("avg", adaptive=1)


def head_kind(g: Genome) -> str:
    return "fc" if any(isinstance(op, Linear) for op in g.head.ops) else "gap"


def main_act(g: Genome) -> str:
    """The network's most common activation (the one new layers get)."""
    acts = Counter(op.act if isinstance(op, Conv) else op.fn for op, _ in iter_ops(g, where=("stem", "stage"))
                   if isinstance(op, (Conv, Act)))
    acts.pop("none", None)
    return acts.most_common(1)[0][0] if acts else "relu"



def head(g: Genome, value: str | None, width: int | None) -> Genome:
    """gap: global average pooling straight to the classifier (keeping the head's dropout); fc: an
    AlexNet-style stack (average-pool to the last map's grid, at most 7 x 7, then dropout, FC ``head_width``,
    dropout, FC ``head_width``). ``head_width`` alone resizes the hidden FC layers of an FC head."""
    kind = head_kind(g)
    if value is None:
        if kind != "fc":
            raise refuse("head_width", width, g, "its head has no hidden FC layers; set head=fc too", "an integer >= 1")
        return replace(g, head=replace(g.head, ops=tuple(replace(op, out=width) if isinstance(op, Linear) else op for op in g.head.ops)))
    if value == "gap":
        if width is not None:
            raise KnobError(f"head_width={width!r} only goes with head='fc', not head='gap'")
        if kind == "gap":
            return g
        drops = [op.p for op in g.head.ops if isinstance(op, Dropout)]
        return replace(g, head=replace(g.head, ops=(GAP,) + ((Dropout(drops[-1]),) if drops else ())))
    if kind == "fc":
        return g if width is None else head(g, None, width)
    hw = walk(g).head_in
    if len(hw) != 3:
        raise refuse("head", value, g, "its features are flattened before the head", " | ".join(HEADS))
    act, w = main_act(g), width or FC_WIDTH
    ops = (Pool("avg", adaptive=min(hw[1], FC_GRID)), Dropout(0.5), Linear(w, act=act), Dropout(0.5), Linear(w, act=act))
    return replace(g, head=replace(g.head, ops=ops))


def aux(g: Genome, value: str) -> Genome:
    """off: no auxiliary classifiers; on: keeps a network's own, or adds one in GoogLeNet's form (adaptive
    4 x 4 average pool, 1x1 conv to 128, FC 1024, dropout 0.7) after the last block of the penultimate
    stage, where Inception-v3 has its one."""
    if value == "off":
        return replace(g, aux=())
    if g.aux:
        return g
    d = depth(g)
    if len(g.stages) < 3 or d < AUX_MIN_DEPTH:
        raise refuse("aux", value, g, f"auxiliary classifiers help deep networks (at least {AUX_MIN_DEPTH} weighted layers "
                     f"and 3 stages, the head on the penultimate one); it has {d} layers in {len(g.stages)} stages", "on | off")
    act = main_act(g)
    conv = Conv(128, 1, norm="batch", act=act) if uses_bn(g) else Conv(128, 1, bias=True, act=act)
    ops = (Pool("avg", adaptive=4), conv, Linear(1024, act=act), Dropout(0.7))
    return replace(g, aux=(Aux(len(g.stages) - 2, -1, ops),))
