"""The rules a genome's fields must follow: each raises ``ValueError`` whose message starts with the path of the
bad field (``stages[2].blocks[0].branches[1].ops[0].groups``) and says what is allowed. Shape inference
(:mod:`nasplay.space.shapes`) applies them to every op as it walks; :func:`nasplay.space.validate.validate` is the door.
"""

from __future__ import annotations

import math

from nasplay.space import registry
from nasplay.space.genome import SE, Branch, Conv, Genome, Linear, Norm, Op, Subsample


def fail(path: str, msg: str) -> None:
    raise ValueError(f"{path}: {msg}")


def check_choice(path: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        fail(path, f"{value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(path: str, value: object, lo: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        fail(path, f"must be an integer >= {lo}, got {value!r}")


def check_bool(path: str, value: object) -> None:
    if not isinstance(value, bool):
        fail(path, f"must be true or false, got {value!r}")


def check_number(path: str, value: object, lo: float = 0.0, *, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < lo or (strict and value == lo):
        fail(path, f"must be a number {'>' if strict else '>='} {lo}, got {value!r}")


def check_tuple(path: str, value: object, what: str) -> None:
    # Lists would pass most checks but make the genome unhashable (it is a cache key and an identity).
    if not isinstance(value, tuple):
        fail(path, f"must be a tuple of {what}, got {type(value).__name__}")


def check_pair(path: str, value: object, lo: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        fail(path, f"must be an integer or a pair of integers, got {value!r}")
    for v in value:  # type: ignore[union-attr]
        if v < lo:
            fail(path, f"must be >= {lo}, got {value!r}")
    return value  # type: ignore[return-value]


def has_weights(op: Op) -> bool:
    """Whether an op carries trainable parameters."""
    if isinstance(op, Norm):
        entry = registry.NORMS.peek(op.kind)
        return entry is not None and entry.learns
    return isinstance(op, (Conv, Linear, Subsample, SE))


def learns(genome: Genome) -> bool:
    """Whether the input-to-logits path has a trainable parameter (aux heads do not count: they only train)."""
    if genome.head.output == "linear" or any(has_weights(op) for op in genome.head.ops):
        return True

    def branch(br: Branch) -> bool:
        return any(has_weights(op) for op in br.ops) or any(branch(b) for b in br.split)

    blocks = [*genome.stem, *(b for st in genome.stages for b in st.blocks)]
    return any(b.skip == "projection" or (b.layer_scale is not None and b.skip != "none") or any(branch(br) for br in b.branches)
               or any(has_weights(op) for op in (*b.merge, *b.post)) for b in blocks)
