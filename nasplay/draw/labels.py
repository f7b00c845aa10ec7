"""What each op looks like and says: its kind (a key of the visual language) and a short label.

Labels take a list of variants of the same op (the copies of a collapsed module) and merge the values
that differ, e.g. ``1×1, 64/128`` for a module whose copies are 64 and 128 channels wide.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasplay.draw import style
from nasplay.space import registry
from nasplay.space.genome import SE, Act, Conv, Dropout, Linear, Norm, Op, Pool, Subsample, pair
from nasplay.space.shapes import conv_piece_count


def act_name(fn: str) -> str:
    """An activation as drawings and diffs name it: its registered label (``leaky ReLU``), else its name."""
    return registry.ACTIVATIONS.get(fn).label if fn in registry.ACTIVATIONS else fn


def norm_name(kind: str) -> str:
    """A norm as drawings name it: its registered label (``BatchNorm``, ``LRN``), else its name."""
    return registry.NORMS.get(kind).label if kind in registry.NORMS else kind


def merge_values(values: Sequence[object]) -> str:
    """``[64]`` -> ``64``; ``[64, 128, 128]`` -> ``64/128``; four or more distinct numbers -> ``min–max``."""
    seen = list(dict.fromkeys(values))
    if len(seen) == 1:
        return _num(seen[0])
    if len(seen) <= 3 or not all(isinstance(v, (int, float)) for v in seen):
        return "/".join(_num(v) for v in seen)
    return f"{_num(min(seen))}–{_num(max(seen))}"  # type: ignore[type-var]


def _num(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def kernel_text(op: Conv) -> str:
    """``3×3``, ``1×7+7×1`` (asymmetric), ``3×3+3×3`` (stacked 5×5) or ``sep 3×3``."""
    kh, kw = pair(op.kernel)
    if op.factor in ("asymmetric", "asymmetric_t"):
        a, b = (f"1×{kh}", f"{kh}×1") if op.factor == "asymmetric" else (f"{kh}×1", f"1×{kh}")
        return f"{a}+{b}"
    if op.factor == "stacked":
        steps = conv_piece_count(op)
        return "+".join(["3×3"] * steps) if steps <= 3 else f"{steps}× 3×3"
    return f"{'sep ' if op.separable else 'dw ' if op.depthwise else ''}{kh}×{kw}"


def act_suffix(fn: str) -> str:
    """ReLU is the default look and goes unsaid; other activations are named."""
    return "" if fn in ("none", "relu") else f", {act_name(fn)}"


def op_kind(op: Op) -> str:
    if isinstance(op, Conv):
        if op.separable:
            return "sep"
        if op.factor != "none":
            return "factor"
        return "conv1" if pair(op.kernel) == (1, 1) else "conv"
    if isinstance(op, Pool):
        return "maxpool" if op.kind == "max" else "avgpool"
    return {Subsample: "subsample", Norm: "norm", Act: "act", Dropout: "dropout", Linear: "fc", SE: "se"}[type(op)]


def op_label(ops: Sequence[Op], cells: bool = True) -> str:
    """The label of an op (and of the same op in the other copies of a collapsed module).

    With ``cells`` a conv with a few groups is labelled for one of its side-by-side towers, as drawn.
    """
    op = ops[0]
    if isinstance(op, Conv):
        cells = op.groups if cells and op.groups < style.GROUP_STACK else 1
        text = f"{kernel_text(op)}, {merge_values([o.out // cells for o in ops])}"  # type: ignore[union-attr]
        if op.stride > 1:
            text += f" /{op.stride}"
        text += act_suffix(op.act)
        if op.norm == "layer":
            text += ", LN"
        elif op.norm not in ("none", "batch"):  # a plugin's norm (BatchNorm is drawn as the conv's dark base)
            text += f", {norm_name(op.norm)}"
        if op.table is not None:
            text += "\npartial connection table"
        if cells == 1 and op.groups > 1:
            per = merge_values([o.out // o.groups for o in ops])  # type: ignore[union-attr]
            text += f"\n{merge_values([o.groups for o in ops])} towers × {per}"  # type: ignore[union-attr]
        return text
    if isinstance(op, Pool):
        if op.adaptive == 1:
            return f"global {op.kind} pool"
        if op.adaptive is not None:
            return f"{op.kind} pool to {op.adaptive}×{op.adaptive}"
        kh, kw = pair(op.kernel)
        stride = kh if op.stride is None else op.stride
        return f"{op.kind} {kh}×{kw}" + (f" /{stride}" if stride > 1 else "")
    if isinstance(op, Subsample):
        return f"subsample {op.kernel}×{op.kernel}{act_suffix(op.act)}"
    if isinstance(op, Norm):
        return norm_name(op.kind)
    if isinstance(op, SE):
        return f"SE, {merge_values([o.squeeze for o in ops])}{act_suffix(op.act)}"  # type: ignore[union-attr]
    if isinstance(op, Act):
        return act_name(op.fn)
    if isinstance(op, Dropout):
        return f"dropout {merge_values([o.p for o in ops])}"  # type: ignore[union-attr]
    if isinstance(op, Linear):
        return f"fc {merge_values([o.out for o in ops])}{act_suffix(op.act)}"  # type: ignore[union-attr]
    raise ValueError(f"cannot draw op {op!r}")


def op_pieces(op: Op) -> int:
    """Rows (factorized) or columns (separable) drawn inside the box."""
    return conv_piece_count(op) if isinstance(op, Conv) and (op.separable or op.factor != "none") else 1


def short(op: Op) -> str:
    """A one-line label for lists (aux heads, diffs), grouped convs at their full width."""
    return op_label([op], cells=False).replace("\n", ", ")


def is_thin(kind: str) -> bool:
    return style.LOOKS[kind].shape in ("thin", "pill", "dashed") and kind != "aux"
