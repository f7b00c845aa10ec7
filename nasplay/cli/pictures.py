"""``nasplay draw`` and ``nasplay diff``: pictures of one network and of what separates two.

Listing the commands imports neither torch nor matplotlib; drawing does.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from nasplay.cli.args import genome_from_args


def register(sub: argparse._SubParsersAction) -> None:
    register_draw(sub)
    register_diff(sub)


def cmd_draw(args: argparse.Namespace) -> int:
    from nasplay.draw.diagram import draw_genome, draw_poster  # matplotlib, torch: when drawing, not with --help

    if args.all:
        if args.name:
            raise ValueError("draw: give a network name or --all, not both")
        out = args.out or "poster.svg"
        draw_poster(out)
        base = Path(out)
        second = base.with_name(f"{base.stem}_2016-2022{base.suffix}")
        draw_poster(second, era="decade")
        out = f"{out} and {second}"
    else:
        if not args.name:
            raise ValueError("draw: name a network (nasplay list) or a genome .yaml/.json file, or use --all")
        genome = genome_from_args(args.name, args.knobs)
        out = args.out or re.sub(r"[^\w.-]+", "_", genome.name) + ".svg"
        draw_genome(genome, out, legend=not args.no_legend, max_height=args.max_height, collapse=not args.expand)
    print(f"wrote {out}")
    return 0


def register_draw(sub: argparse._SubParsersAction) -> None:
    """Add ``nasplay draw``."""
    p = sub.add_parser(
        "draw", help="draw a compact diagram of a network (SVG / PNG)",
        description="Draw a network from its genome: stem, stages, modules with ×N, towers, skips, aux heads and head, "
                    "with params and FLOPs in the title. --all draws the ten classic CNNs on one poster, "
                    "and the decade after them (2016-2022) on a second.",
        epilog="examples:\n  nasplay draw inception_v3 --out v3.png\n  nasplay draw resnet50 skip=none --out plain50.svg\n"
               "  nasplay draw my_genome.yaml --out mine.svg\n  nasplay draw --all --out poster.svg",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="a zoo name (nasplay list) or a genome .yaml/.json file")
    p.add_argument("knobs", nargs="*", metavar="knob=value", help="innovation knobs to apply first, e.g. skip=none")
    p.add_argument("--out", "-o", help="output file; .svg, .png or .pdf (default: NAME.svg, poster.svg with --all)")
    p.add_argument("--all", action="store_true", help="the ten classic CNNs on one page, in the order of their papers, and "
                   "the decade after them on a second (OUT with _2016-2022 before its extension)")
    p.add_argument("--no-legend", action="store_true", help="leave the legend out")
    p.add_argument("--max-height", type=float, default=8.0, help="wrap into columns above this height, inches (default 8)")
    p.add_argument("--expand", action="store_true", help="draw every block; do not collapse modules that differ only in widths")
    p.set_defaults(func=cmd_draw)


def cmd_diff(args: argparse.Namespace) -> int:
    from nasplay.draw.diff import diff_genomes, diff_text, draw_diff  # matplotlib, torch: when drawing, not with --help

    a = genome_from_args(args.a, args.a_knobs or [])
    b = genome_from_args(args.b, args.knobs)
    diffs = diff_genomes(a, b)
    if args.out:
        draw_diff(a, b, args.out)
    if args.json:
        print(json.dumps({"a": {"name": a.name, "hash": a.hash}, "b": {"name": b.name, "hash": b.hash},
                          "differences": [d.to_dict() for d in diffs]}, indent=2, ensure_ascii=False))
    else:
        print(diff_text(a, b, diffs))
        if args.out:
            print(f"wrote {args.out}")
    return 0


def register_diff(sub: argparse._SubParsersAction) -> None:
    """Add ``nasplay diff``."""
    p = sub.add_parser(
        "diff", help="what separates two networks, in knobs and modules",
        description="Name the differences between two genomes: knobs (skips, cardinality, factorization, separable convs, "
                    "normalization, pooling, head, aux heads, depth ...) and modules (stem, modules per stage and their "
                    "counts, uniform widths). --out draws both side by side with the differences marked.",
        epilog="examples:\n  nasplay diff inception_v3 inception_v4\n  nasplay diff resnet50 resnext50_32x4d --out diff.svg\n"
               "  nasplay diff vgg16 vgg19 --json\n  nasplay diff resnet50 resnet50 skip=none   (knobs apply to B; --a-knobs to A)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="genome A: a zoo name or a .yaml/.json file")
    p.add_argument("b", help="genome B: a zoo name or a .yaml/.json file")
    p.add_argument("knobs", nargs="*", metavar="knob=value", help="knobs applied to B")
    p.add_argument("--a-knobs", nargs="*", metavar="knob=value", help="knobs applied to A")
    p.add_argument("--out", "-o", help="also draw A and B side by side with the differences marked (.svg, .png, .pdf)")
    p.add_argument("--json", action="store_true", help="print the differences as JSON (path, kind, from, to, text)")
    p.set_defaults(func=cmd_diff)
