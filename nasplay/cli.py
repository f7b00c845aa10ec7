"""The ``nasplay`` console command: look at architectures and results.

Experiments themselves run through Hydra: ``python -m nasplay experiment=ablate_skip``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

EPILOG = """examples:
  nasplay list
  nasplay list 'resnet*'
  nasplay describe resnet50
  nasplay describe resnet50 skip=none input=32 --json
run an experiment (Hydra overrides):
  python -m nasplay experiment=ablate_skip
"""


def parse_knob_args(items: list[str]) -> dict[str, str]:
    """``["skip=none", "width=0.5"]`` -> ``{"skip": "none", "width": "0.5"}`` (values parsed by the knobs)."""
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"error: expected knob=value, got {it!r} (see 'nasplay describe --help')")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def load_genome(target: str, knob_args: list[str]):
    """A zoo name or a YAML/JSON genome file, with ``knob=value`` overrides applied."""
    from pathlib import Path

    from nasplay.space.genome import Genome
    from nasplay.space.zoo import get_genome

    p = Path(target)
    if p.suffix in (".yaml", ".yml", ".json") and p.exists():
        text = p.read_text()
        genome = Genome.from_json(text) if p.suffix == ".json" else Genome.from_yaml(text)
    else:
        genome = get_genome(target)
    knobs = parse_knob_args(knob_args)
    if knobs:
        from nasplay.space.knobs import apply

        genome = apply(genome, **knobs)
    return genome


def cmd_list(args: argparse.Namespace) -> int:
    from nasplay.space.zoo import entry, list_genomes

    names = list_genomes(args.pattern)
    if args.json:
        print(json.dumps([{"name": n, "year": entry(n).year, "canonical": entry(n).canonical,
                           "reference": entry(n).reference, "paper": entry(n).paper} for n in names], indent=2))
        return 0
    width = max((len(n) for n in names), default=4)
    for n in names:
        e = entry(n)
        star = "*" if e.canonical else " "
        print(f"{star} {n:<{width}}  {e.year}  {e.paper}")
    print(f"\n{len(names)} networks; * = one of the ten classic CNNs. 'nasplay describe NAME' for details.")
    return 0


def describe_dict(genome) -> dict:
    from nasplay.complexity import complexity

    c = complexity(genome)
    return {
        "name": genome.name,
        "hash": genome.hash,
        "input": [genome.input.channels, genome.input.size, genome.input.size],
        "params": c.params,
        "params_without_aux": c.params - c.params_aux,
        "flops": c.flops,
        "depth": c.depth,
        "layers": c.layers,
        "stages": [{"name": s.name, "blocks": sum(b.repeat for b in s.blocks)} for s in genome.stages],
        "aux_heads": len(genome.aux),
    }


def cmd_describe(args: argparse.Namespace) -> int:
    try:
        genome = load_genome(args.name, args.knobs)
        d = describe_dict(genome)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    c, s = d["input"], d["input"][1]
    print(f"{d['name']}  (genome {d['hash']})")
    print(f"  input        {c[0]}x{s}x{s}")
    print(f"  params       {d['params']:,}" + (f"  ({d['params_without_aux']:,} without aux heads)" if d["aux_heads"] else ""))
    print(f"  FLOPs        {d['flops']:,}  (one image, eval; multiply-add = 2)")
    print(f"  depth        {d['depth']} weighted layers on the longest path")
    print("  layers       " + ", ".join(f"{k} {v}" for k, v in d["layers"].items()))
    print("  stages       " + ", ".join(f"{st['name'] or i}: {st['blocks']}" for i, st in enumerate(d["stages"])))
    if d["aux_heads"]:
        print(f"  aux heads    {d['aux_heads']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasplay", description="Look at the classic CNNs as points of one genome space.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list the networks of the zoo", description="List the networks of the zoo, oldest first.",
                       epilog="examples:\n  nasplay list\n  nasplay list 'resnet*' --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'resnet*' (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "describe", help="params, FLOPs, depth and layers of a network",
        description="Params, FLOPs, depth and layer counts of a zoo network or a genome file, after knob changes.",
        epilog="examples:\n  nasplay describe resnet50\n  nasplay describe vgg16 norm=batch input=32 --json\n"
               "knobs: 'nasplay knobs' lists them (nasplay.knobs() in Python)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="a zoo name (nasplay list) or a genome .yaml/.json file")
    p.add_argument("knobs", nargs="*", metavar="knob=value", help="innovation knobs to apply, e.g. skip=none width=0.5")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_describe)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Subcommands contributed by other parts of the package (draw, diff, report): each adds its parser.
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def _register_report(sub: argparse._SubParsersAction) -> None:
    def run(args: argparse.Namespace) -> int:
        from nasplay.report.study import run_cli  # numpy/scipy/matplotlib only when a report is asked for

        return run_cli(args)

    p = sub.add_parser(
        "report", help="tables, statistics and figures of one or several studies",
        description="Write report.md, report.json and PNG/SVG figures of a study directory (runs/<experiment>/<study>/): "
                    "each arm's mean, std, 95% CI and n; each arm against the baseline (effect size, Welch's t and "
                    "permutation tests, a verdict); learning curves; accuracy vs FLOPs with the Pareto front; error EDFs "
                    "for design-space (edf_*) studies. Several directories also get comparison.md side by side.",
        epilog="examples:\n  nasplay report runs/ablate_skip/ablate_skip\n  nasplay report runs/ablate_skip/* --out reports/ --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study_dirs", nargs="+", metavar="STUDY_DIR", help="a study directory holding results.csv")
    p.add_argument("--out", default=None, help="write the files here instead of into the study directory")
    p.add_argument("--json", action="store_true", help="print the machine-readable report")
    p.add_argument("--metric", default=None, help="the results column to compare (default: test/acc, else val/acc_best, val/acc)")
    p.add_argument("--baseline", default=None, help="the arm the others are compared with (default: experiment.baseline)")
    p.add_argument("--test", choices=("welch", "permutation"), default="welch", help="the test behind the verdicts (default: welch)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--wandb", action="store_true", help="also log the report as a W&B run (offline unless WANDB_MODE=online)")
    p.set_defaults(func=run)


EXTRA_COMMANDS.append(_register_report)


def _register_pictures(sub: argparse._SubParsersAction) -> None:
    from nasplay.report import diagram, diff  # import-light: matplotlib loads only when a picture is drawn

    diagram.register(sub)
    diff.register(sub)


EXTRA_COMMANDS.append(_register_pictures)


def _register_knobs(sub: argparse._SubParsersAction) -> None:
    from nasplay.space.knobs.cli import register  # torch-free

    register(sub)


EXTRA_COMMANDS.append(_register_knobs)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `nasplay knobs NAME | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
