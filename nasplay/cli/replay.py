"""``nasplay replay TABLE``: searchers replayed on a tabulated space (:mod:`nasplay.report.replay`; numpy, optuna and
matplotlib load only when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="replay searchers on a tabulated space (anytime regret, P(beats random), importances)",
        description="Run each searcher for many seeds against a table of trained architectures (scripts/build_table.py): "
                    "each proposal's result is looked up, its cost is the recorded train time, a refused one costs nothing. "
                    "Writes replay.md, replay.json and replay.png: regret against trials and train time (median, IQR), the "
                    "probability that each searcher beats random search with a bootstrap interval, the final regret; and "
                    "the importance of each knob over the whole table with its split-half stability.",
        epilog="examples:\n  nasplay replay docs/results/table/classic_clutter.json --searchers random,tpe,nsga2,evolution --seeds 50\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", help="a table file (JSON) written by scripts/build_table.py")
    p.add_argument("--searchers", default="random,tpe,nsga2,evolution", help="comma-separated samplers (sweep=NAME)")
    p.add_argument("--seeds", type=int, default=50, help="runs per searcher (seeds 0 .. N-1)")
    p.add_argument("--trials", type=int, default=50, help="architectures each run trains (looks up)")
    p.add_argument("--out", default=None, help="folder for the files (default: beside the table, replay/)")
    p.add_argument("--no-importance", action="store_true", help="skip the importances over the table")
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    import optuna

    from nasplay.report.replay import Table, render, replay, table_importances, table_summary, write_replay
    from nasplay.sweep.table import load_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("seeds", "trials"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    searchers = [s.strip() for s in args.searchers.split(",") if s.strip()]
    table = Table(load_table(args.table))
    rep = replay(table, searchers, args.seeds, args.trials)
    rep["table"] = table_summary(table)
    if not args.no_importance:
        rep["importance"] = table_importances(table)
    out = Path(args.out) if args.out else Path(args.table).parent / "replay"
    write_replay(rep, out, figures=not args.no_figures)
    print(render(rep))
    print(f"written: {out / 'replay.md'}")
    return 0
