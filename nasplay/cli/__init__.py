"""The ``nasplay`` console command: look at architectures and results.

Experiments run through Hydra: ``python -m nasplay experiment=ablate_skip``; ``nasplay`` given Hydra
overrides or flags (``nasplay experiment=ablate_skip``, ``nasplay -m ...``, ``nasplay -sc install=bash``)
is the same command, which is how shell completion of overrides reaches users (a shell completes a
command by its name, and ``python`` is not ours).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from nasplay.cli import export, knobs, pictures, replay, report  # each is import-light: heavy modules load when a command runs
from nasplay.cli.args import genome_from_args, parse_knob_args  # noqa: F401 - parse_knob_args: part of nasplay.cli's API
from nasplay.cli.errors import bad_input
from nasplay.complexity import complexity
from nasplay.space.plugins import load_plugins
from nasplay.space.zoo import entry, list_genomes

EPILOG = """examples:
  nasplay list
  nasplay list 'resnet*'
  nasplay describe resnet50
  nasplay describe resnet50 skip=none input=32 --json
take a study's trained network out (weights, TorchScript, ONNX) with its genome:
  nasplay export runs/ablate_skip/ablate_skip --format torchscript
run an experiment (Hydra overrides; `nasplay OVERRIDES` is the same as `python -m nasplay OVERRIDES`):
  python -m nasplay experiment=ablate_skip
  nasplay experiment=ablate_skip debug=smoke
shell completion of the overrides (bash; zsh and fish likewise):
  eval "$(nasplay -sc install=bash)"
"""
# First arguments that make `nasplay` the experiment runner (nasplay.__main__): Hydra's flags, or an override.
HYDRA_FLAGS = ("-sc", "--shell-completion", "-m", "--multirun", "-c", "--cfg", "-i", "--info", "--hydra-help", "-p", "--package",
               "--resolve", "-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "--run", "-r")


def is_hydra_command(argv: list[str]) -> bool:
    """Whether ``argv`` runs an experiment (Hydra flags, ``KEY=VALUE`` overrides, or a deletion ``~KEY``) rather than
    a subcommand."""
    return bool(argv) and (argv[0] in HYDRA_FLAGS or argv[0].startswith("~")
                           or ("=" in argv[0] and not argv[0].startswith("-")))


def cmd_list(args: argparse.Namespace) -> int:
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
    genome = genome_from_args(args.name, args.knobs)
    d = describe_dict(genome)
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

    report.register(sub)
    export.register(sub)
    replay.register(sub)
    pictures.register(sub)
    knobs.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if is_hydra_command(args):
        from nasplay.__main__ import main as run_experiment_command  # Hydra: only to run an experiment

        run_experiment_command(args)
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        # Every subcommand looks at genomes or reports: the plugins' names first (a broken plugin: one line, exit 2).
        load_plugins()
        return int(args.func(args) or 0)
    except ValueError as e:  # a bad argument found by the checks: say which, without a traceback
        return bad_input(str(e))
    except BrokenPipeError:  # `nasplay knobs NAME | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
