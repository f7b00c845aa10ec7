"""The width knob: a uniform channel multiplier (re-solving it to hold compute is :mod:`nasplay.space.knobs.hold`'s)."""

from __future__ import annotations

from dataclasses import replace

from nasplay.space.genome import SE, Block, Conv, Genome, Linear, Op
from nasplay.space.knobs.tree import KnobError, Site, iter_ops, lcm, map_blocks, map_ops, refuse, round_half_up
from nasplay.space.shapes import Shape, block_shape


def _next_conv(site: Site) -> Conv | None:
    for op in site.ops[site.index + 1:]:
        if isinstance(op, Conv):
            return op
    return None


def _fix_residual(b: Block, shape: Shape, path: str, where: str) -> Block:
    """An identity / scaled block must give back as many channels as it takes: rounding each tower on its
    own can break that, so the block's last channel-setting conv (its merge conv, or the last tower's
    last conv) makes up the difference."""
    if b.skip not in ("identity", "scaled"):
        return b
    out = block_shape(replace(b, skip="none", repeat=1), shape, path)
    if out[0] == shape[0]:
        return b

    def last_conv_set(ops: tuple[Op, ...], width: int) -> tuple[Op, ...] | None:
        idx = [i for i, op in enumerate(ops) if isinstance(op, Conv)]
        if not idx or width < 1 or width % ops[idx[-1]].groups:  # type: ignore[union-attr]
            return None
        i = idx[-1]
        return ops[:i] + (replace(ops[i], out=width),) + ops[i + 1:]  # type: ignore[type-var]

    merge = last_conv_set(b.merge, shape[0])
    if merge is not None:
        return replace(b, merge=merge)
    # Concatenated towers: the last tower that ends in a conv absorbs the difference.
    for i in reversed(range(len(b.branches))):
        br = b.branches[i]
        if br.split:
            continue
        convs = [op for op in br.ops if isinstance(op, Conv)]
        if not convs:
            continue
        ops = last_conv_set(br.ops, convs[-1].out + shape[0] - out[0])
        if ops is not None:
            return replace(b, branches=b.branches[:i] + (replace(br, ops=ops),) + b.branches[i + 1:])
    raise KnobError(f"{path}: its residual gives {out[0]} channels for {shape[0]} and no conv can make up the difference")


def scale_widths(g: Genome, m: float, knob: str = "width", quantum: int = 8) -> Genome:
    """Every conv's output (and mid) width and every hidden FC width times ``m``, rounded to multiples of
    ``quantum`` (of 1 for widths that are not multiples of it, LeNet's) and of the groups that read them."""
    if m == 1:
        return g
    ops = list(iter_ops(g))
    tables = [s.path for op, s in ops if isinstance(op, Conv) and op.table is not None]
    if tables:
        raise refuse(knob, round(m, 4), g, f"its partial connection table ({tables[0]}) fixes the maps it reads and writes",
                     "a number > 0 on networks without connection tables")
    # A grouped conv that opens an op list reads a width set elsewhere: then every width honours its groups.
    opening = [op.groups for op, s in ops if isinstance(op, Conv) and op.groups > 1
               and not any(isinstance(o, Conv) for o in s.ops[: s.index])]
    everywhere = lcm(*opening) if opening else 1

    def scaled(c: int, q: int) -> int:
        q = lcm(quantum if c % quantum == 0 else 1, q, everywhere)
        return max(q, round_half_up(c * m / q) * q)

    def fn(op: Op, s: Site) -> Op:
        if isinstance(op, Conv):
            nxt = _next_conv(s)
            q = lcm(op.groups, nxt.groups if nxt is not None else 1)
            mid = None if op.mid is None else scaled(op.mid, op.groups)
            return replace(op, out=scaled(op.out, q), mid=mid)
        if isinstance(op, Linear):
            return replace(op, out=scaled(op.out, 1))
        if isinstance(op, SE):  # its squeeze is a fraction of the channels it gates
            return replace(op, squeeze=max(1, round_half_up(op.squeeze * m)))
        return op

    return map_blocks(map_ops(g, fn), _fix_residual)
