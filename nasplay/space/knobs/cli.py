"""``nasplay knobs [NAME]``: every knob and its values; with a network, what each value does to it."""

from __future__ import annotations

import argparse
import json
import sys

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


def effects(name: str) -> list[dict]:
    """For each knob value in :data:`TRY`: ``same`` (no change), ``changed`` (with the new params) or ``refused``."""
    from nasplay.space.knobs import apply
    from nasplay.space.zoo import get_genome

    base = get_genome(name)
    rows = []
    for knob, values in TRY.items():
        for v in values:
            try:
                g = apply(base, **{knob: v})
            except ValueError as e:
                rows.append({"knob": knob, "value": v, "effect": "refused", "why": str(e)})
                continue
            rows.append({"knob": knob, "value": v, "effect": "same" if g.hash == base.hash else "changed", "hash": g.hash})
    return rows


def run(args: argparse.Namespace) -> int:
    from nasplay.space.knobs import knobs

    if args.name is None:
        if args.json:
            print(json.dumps({k: vars(s) for k, s in knobs().items()}, indent=2))
        else:
            print(knobs())
            print("\napply: nasplay describe NAME knob=value ...   |   nasplay.apply(genome, knob=value, keep='flops')")
        return 0
    try:
        rows = effects(args.name)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        why = r.get("why", "")
        why = why.split(": ", 1)[1].split(" (allowed values")[0] if ": " in why else why
        print(f"  {r['knob'] + '=' + r['value']:<22} {r['effect']:<8} {why}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "knobs", help="the knobs (innovations) and their values; with NAME, what each does to that network",
        description="List every knob with its allowed values. With a network name, try each knob value on it and "
                    "say whether it changes the network, leaves it as it is, or is refused (and why).",
        epilog="examples:\n  nasplay knobs\n  nasplay knobs lenet5\n  nasplay describe resnet50 skip=none input=32",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", default=None, help="a zoo name (nasplay list)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
