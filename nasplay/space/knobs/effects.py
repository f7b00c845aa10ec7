"""What each knob value does to a network (``nasplay knobs NAME`` prints it)."""

from __future__ import annotations

from nasplay.space import registry
from nasplay.space.knobs import apply
from nasplay.space.zoo import get_genome

# Values tried on a network by ``nasplay knobs NAME`` (numeric knobs show one example).
TRY = {
    "depth": ("0.5", "2"), "bottleneck": ("on", "off"), "cardinality": ("1", "32"), "group_width": ("4",),
    "branches": ("single", "multi"),
    "width": ("0.5",), "separable": ("on", "off"), "factorize": ("none", "stacked", "asymmetric"),
    "skip": ("none", "identity", "projection", "scaled"), "skip_scale": ("0.1",), "activation": ("tanh",),
    "norm": ("none", "batch", "lrn", "layer"), "pool_kind": ("max", "avg"), "pool": ("overlap", "nonoverlap"), "aux": ("on", "off"),
    "head": ("fc", "gap"), "head_width": ("1024",), "input": ("1x28", "3x32"),
    "se": ("on", "off"), "dense": ("on", "off"), "expand": ("4",),
    "depthwise": ("on", "first", "off"), "kernel": ("7",), "block_acts": ("one",), "block_norms": ("one",),
    "downsample": ("separate",), "drop_path": ("0.1",), "layer_scale": ("1e-6",), "stem": ("patchify",),
}


def tries() -> dict[str, tuple[str, ...]]:
    """:data:`TRY`, and for a plugin's knob each of its values (a choice) or its example's value."""
    out = dict(TRY)
    for e in registry.KNOBS.entries():
        if e.name not in out:
            values = e.allowed().split(" | ")
            out[e.name] = tuple(values) if len(values) > 1 else (e.example.partition("=")[2] or e.example,)
    return out


def effects(name: str) -> list[dict]:
    """For each knob value in :func:`tries`: ``same`` (no change), ``changed`` (with the new params) or ``refused``."""
    base = get_genome(name)
    rows = []
    for knob, values in tries().items():
        for v in values:
            try:
                g = apply(base, **{knob: v})
            except ValueError as e:
                rows.append({"knob": knob, "value": v, "effect": "refused", "why": str(e)})
                continue
            rows.append({"knob": knob, "value": v, "effect": "same" if g.hash == base.hash else "changed", "hash": g.hash})
    return rows
