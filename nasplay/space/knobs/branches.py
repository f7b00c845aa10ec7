"""The branches knob: Inception's parallel towers against a single path (GoogLeNet, Sec. 4).

``single`` keeps one tower of every multi-branch block — the deepest one (most convs; ties go to the
larger kernel, then the first) — and widens its last conv to the block's concatenated output, so the
blocks after it see the same shapes. With ``keep="flops"`` the widths are then re-solved to the
multi-branch network's compute, which makes the comparison "towers vs one path at equal FLOPs".
"""

from __future__ import annotations

from dataclasses import replace

from nasplay.space.genome import Block, Branch, Conv, Genome, pair
from nasplay.space.knobs.tree import map_blocks, refuse
from nasplay.space.shapes import Shape, branch_shape

VALUES = ("single", "multi")


def _tower(b: Block) -> int | None:
    """The index of the tower a single path keeps: an unsplit branch ending in a conv, the deepest, widest kernel."""
    best, key = None, None
    for i, br in enumerate(b.branches):
        convs = [op for op in br.ops if isinstance(op, Conv)]
        if br.split or not convs or not isinstance(br.ops[-1], Conv):
            continue
        k = (len(convs), max(max(pair(op.kernel)) for op in convs), -i)
        if key is None or k > key:
            best, key = i, k
    return best


def branches(g: Genome, value: str) -> Genome:
    """single: each multi-branch stage block becomes its deepest tower, widened to the block's output; multi: as is."""
    multi = [b for st in g.stages for b in st.blocks if len(b.branches) > 1]
    if value == "multi":
        if multi:
            return g
        raise refuse("branches", value, g, "it has no multi-branch blocks (and the knob does not invent towers)", " | ".join(VALUES))
    changed = 0

    def single(b: Block, shape: Shape, path: str, where: str) -> Block:
        nonlocal changed
        if where != "stage" or len(b.branches) < 2:
            return b
        keep = _tower(b)
        if keep is None:
            return b
        out = sum(branch_shape(br, shape, f"{path}.branches[{i}]")[0] for i, br in enumerate(b.branches))
        br = b.branches[keep]
        last = br.ops[-1]
        assert isinstance(last, Conv)
        if out % last.groups:
            return b
        changed += 1
        return replace(b, branches=(Branch(br.ops[:-1] + (replace(last, out=out),)),))

    result = map_blocks(g, single, stem=False)
    if not changed:
        raise refuse("branches", value, g, "it has no multi-branch stage blocks with a conv tower to keep", " | ".join(VALUES))
    return result
