"""``nasplay knobs [NAME]``: every knob and its values; with a network, what each value does to it."""

from __future__ import annotations

import argparse
import json

from nasplay.space.knobs import knobs
from nasplay.space.knobs.effects import effects


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        if args.json:
            print(json.dumps({k: vars(s) for k, s in knobs().items()}, indent=2))
        else:
            print(knobs())
            print("\napply: nasplay describe NAME knob=value ...   |   nasplay.apply(genome, knob=value, keep='flops')")
        return 0
    rows = effects(args.name)
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
