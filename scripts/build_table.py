"""Tabulate a subspace of the classics' space (issue 21): every architecture trained with 2 seeds, for ``nasplay replay``.

    python scripts/build_table.py size                       # enumerate the subspace, print its size (no training)
    python scripts/build_table.py estimate                   # train the cheapest and the costliest architecture once,
                                                          # extrapolate the whole table's CPU time by FLOPs
    python scripts/build_table.py build --hours 3            # start the table (runs/table/table_classic/...)
    python scripts/build_table.py build --missing --hours 3  # continue it: only the architectures the table lacks
    python scripts/build_table.py write                      # (re)write the table file from the studies
    python scripts/build_table.py migrate                    # after the space changed: keep what is still in it

The subspace is ``search_spaces/table_classic.yaml`` (six bases x depth, factorize, cardinality, skip, separable,
norm: 340 distinct architectures), enumerated by :func:`nasplay.sweep.table.enumerate_space` at the budget's input.
Every architecture is one named arm of a grid study (``sweep=grid``, seeds 0 and 1), so the build is an ordinary
nasplay study: resumable, parallel with ``--workers``, split across runs (``--hours`` stops starting trials after that
long). After each run the table is written to ``docs/results/table/classic_clutter.json`` (genome hash, arch, knobs,
params, FLOPs and per seed the per-epoch validation accuracy, the final test accuracy and the train time), with the
command and the budget that made it; architectures not yet trained have no seeds. ``--missing`` reads that file, not
the runs folder: it trains only the architectures the file lacks, in a study named after them, so a build goes on in a
fresh clone (runs/ is not committed) as well as on the machine that began it, and the file adds the runs up.

Budget (CPU, fixed before any result): ``data=clutter`` at 32x32 (1 channel, 10 classes), 2,000 training images
(``data.limit``), batch 64, 4 epochs, widths 1/8, one thread per trial, seeds 0 and 1. The first estimate (one line
in FLOPs from LeNet-5 to Xception) said 2.5 CPU hours; the first build measured per training, on the shared 2-core
machine: LeNet-5 5 s, AlexNet 13 s, VGG-16 7 s, GoogLeNet 64 s, ResNet-50 26 s, Xception 22 s (mean over its
architectures), so the 340 x 2 trainings take about 4.3 CPU hours, about 2.2 hours of wall time with ``--workers 2``.
``estimate`` now measures each base apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # nasplay from this checkout (a script in scripts/ must not be named after a package torch imports)

SPACE = "table_classic"
TABLE = ROOT / "docs" / "results" / "table" / "classic_clutter.json"
SEEDS = [0, 1]
BUDGET = {"data": "clutter", "data.size": 32, "data.limit": 2000, "data.batch_size": 64, "trainer.max_epochs": 4,
          "width": 0.125, "trainer.threads": 1, "seeds": SEEDS}
COMMON = ["data=clutter", "data.limit=2000", "data.batch_size=64", "trainer.max_epochs=4", "trainer.threads=1"]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from nasplay.sweep.config import register_configs

    register_configs()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3", job_name="nasplay"):
        return compose("config", overrides=overrides)


def subspace(runs_dir: str):
    """The enumerated subspace (a conditional config of the space at the budget's input) and the data's shape."""
    from nasplay.sweep.conditional import data_shape_of
    from nasplay.sweep.plan import make_plan
    from nasplay.sweep.table import enumerate_space

    cfg = _compose(["experiment=search_classic", f"experiment.space={SPACE}", "experiment.classics=null", "logger=none",
                    f"runs_dir={runs_dir}", "study=table_space", "sweep.workers=1", "arch.knobs={width: 0.125}", *COMMON])
    plan = make_plan(cfg)
    shape = data_shape_of(plan)
    return enumerate_space(plan.cfg, shape), shape


def study_config(sub, runs_dir: str, workers: int, extra: list[str], arms: dict | None = None):
    """The table's grid study: one named arm per architecture, seeds 0 and 1."""
    from omegaconf import OmegaConf

    cfg = _compose(["arch=resnet50", "arch.knobs={}", "sweep=grid", "experiment.name=table_classic", "experiment.seeds=[0,1]",
                    "experiment.kind=ablation", "logger=csv", "progress=false", f"runs_dir={runs_dir}", f"sweep.workers={workers}",
                    *COMMON, *extra])
    arms = arms if arms is not None else {a["arm"]: {"arch": a["arch"], "knobs": a["knobs"]} for a in sub.architectures.values()}
    OmegaConf.update(cfg, "experiment.arms", arms, merge=False)
    return cfg


def cmd_size(args: argparse.Namespace) -> int:
    sub, shape = subspace(args.runs_dir)
    refused = sum(v is None for v in sub.combos.values())
    print(f"{len(sub.combos)} combinations, {refused} refused by the knobs, {len(sub.architectures)} distinct architectures "
          f"at input {shape[0]}x{shape[1]}x{shape[1]}, {shape[2]} classes")
    for base in sub.bases:
        n = sum(a["arch"] == base for a in sub.architectures.values())
        print(f"  {base}: {n}  ({', '.join(f'{k} {v}' for k, v in sub.knobs[base].items())})")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    """Per base, train its cheapest and its costliest architecture once and extrapolate linearly in FLOPs within the
    base. (One line across all bases, as this first did, was wrong by several times: at width 1/8 on one CPU thread a
    network's time follows its number of layers and branches as much as its FLOPs; GoogLeNet's 24 architectures took
    91 s each where that line said about 20.)"""
    from rich.console import Console

    from nasplay.sweep.runner import run_study
    from nasplay.sweep.table import measure

    sub, shape = subspace(args.runs_dir)
    measure(sub, shape)
    total = 0.0
    for base in sub.bases:
        archs = sorted((a for a in sub.architectures.values() if a["arch"] == base), key=lambda a: a["flops"])
        times = []
        for a in archs[:1] + archs[1:][-1:]:  # the cheapest and the costliest (one, for a base of one)
            cfg = study_config(sub, args.runs_dir, 1, [f"study=table_estimate_{part_name([a['arm']])[-8:]}", "experiment.seeds=[0]"],
                               arms={a["arm"]: {"arch": a["arch"], "knobs": a["knobs"]}})
            began = time.perf_counter()
            run_study(cfg, console=Console(quiet=True))
            times.append((a["flops"], time.perf_counter() - began))
            print(f"{a['arm']} ({a['flops'] / 1e6:.1f} MFLOPs) trained in {times[-1][1]:.0f} s")
        (f0, t0), (f1, t1) = times[0], times[-1]
        slope = (t1 - t0) / (f1 - f0) if f1 > f0 else 0.0
        part = sum(t0 + slope * (a["flops"] - f0) for a in archs) * len(SEEDS)
        print(f"  {base}: {len(archs)} architectures x {len(SEEDS)} seeds, about {part / 3600:.2f} CPU hours")
        total += part
    print(f"estimate: {total / 3600:.1f} CPU hours for {len(sub.architectures)} architectures x {len(SEEDS)} seeds at one thread")
    return 0


def committed(out: Path) -> dict | None:
    """The table file written before (the committed one in a fresh clone), checked to be of this budget; None if none."""
    from nasplay.sweep.table import load_table

    if not out.exists():
        return None
    from nasplay.sweep.table import TABLE_VERSION

    doc = load_table(out)
    if doc.get("budget") != json.loads(json.dumps(BUDGET)):
        raise SystemExit(f"{out} was built at another budget ({doc.get('budget')}, this script's is {BUDGET}): "
                         f"give the new table its own file with --out")
    if doc.get("version") != TABLE_VERSION:
        raise SystemExit(f"{out} is a table of version {doc.get('version')}, this script writes version {TABLE_VERSION}: "
                         f"give the new table its own file with --out")
    return doc


def same_space(sub, doc: dict) -> None:
    """Refuse to go on from a table whose architectures are not the subspace's (the space file or a builder changed
    since: the committed results would be of other networks)."""
    theirs = {a["hash"] for a in doc["architectures"]}
    if theirs != set(sub.architectures):
        raise SystemExit(f"the table file's {len(theirs)} architectures are not the subspace's {len(sub.architectures)} "
                         f"({len(theirs - set(sub.architectures))} of its genome hashes are not in the subspace now: "
                         f"search_spaces/{SPACE}.yaml or a builder changed); give the new table its own file with --out")


def part_name(arms) -> str:
    """The study of one build run, named by the architectures it trains: a run cut short and started again with the
    same ones resumes its journal; a later run (fewer left) is a study of its own, and the table adds them up."""
    return "table_classic_" + hashlib.sha1("\n".join(sorted(arms)).encode()).hexdigest()[:8]


def plan_runs(sub, prior: dict | None) -> list[tuple[list[int], dict, str]]:
    """The studies a build runs: per set of seeds the table lacks, its architectures' arms and the study's name (most
    seeds first); a seed the table already holds is not trained again."""
    from nasplay.sweep.table import missing

    held = {a["hash"]: set(a["seeds"]) for a in prior["architectures"]} if prior else {}
    groups: dict[tuple[int, ...], dict] = {}
    for h in missing(sub, prior, SEEDS):
        a = sub.architectures[h]
        lacking = tuple(s for s in SEEDS if str(s) not in held.get(h, set()))
        groups.setdefault(lacking, {})[a["arm"]] = {"arch": a["arch"], "knobs": a["knobs"]}
    runs = []
    for seeds, arms in sorted(groups.items(), key=lambda kv: -len(kv[0])):
        name = part_name(arms if seeds == tuple(SEEDS) else {f"{arm} seeds={list(seeds)}" for arm in arms})
        runs.append((list(seeds), arms, name))
    return runs


def cmd_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nasplay.sweep.runner import run_study

    out = Path(args.out)
    prior = committed(out)
    n_held = sum(len(a["seeds"]) for a in prior["architectures"]) if prior else 0
    if n_held and not args.missing:
        raise SystemExit(f"{out} already holds {n_held} results: --missing continues the table (only what it lacks runs)")
    sub, shape = subspace(args.runs_dir)
    if prior:
        same_space(sub, prior)
    began = time.time()
    for seeds, arms, name in plan_runs(sub, prior):
        hours = args.hours - (time.time() - began) / 3600 if args.hours else None
        if hours is not None and hours <= 0:
            break
        print(f"{len(arms)} of {len(sub.architectures)} architectures to train with seeds {seeds}: study {name}")
        extra = [f"study={name}", f"experiment.seeds={seeds}", *([f"sweep.timeout={hours * 3600:g}"] if hours else [])]
        result = run_study(study_config(sub, args.runs_dir, args.workers, extra, arms=arms), console=Console())
        if result.stopped == "interrupted":  # the same command resumes this study (its plan is unchanged until a write)
            print("interrupted: the table file is left as it was; run the same command to go on", file=sys.stderr)
            return 130
        if not result.complete:
            break
    left = write(sub, shape, args)
    return 0 if not left else 3  # a table not yet complete: run again with --missing


def cmd_write(args: argparse.Namespace) -> int:
    sub, shape = subspace(args.runs_dir)
    write(sub, shape, args)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Carry the table file over to the subspace as it is now (after a change to the space file or to how genomes are
    resolved): the results of every architecture still in it are kept by genome hash, the others are dropped and
    named, and the architectures new to it have no seeds (``build --missing`` trains them)."""
    out = Path(args.out)
    doc = committed(out)  # the budget and version must be this script's
    if doc is None:
        raise SystemExit(f"{out}: no table file to migrate")
    sub, shape = subspace(args.runs_dir)
    kept = {a["hash"]: a["seeds"] for a in doc["architectures"] if a["hash"] in sub.architectures}
    gone = [a for a in doc["architectures"] if a["hash"] not in sub.architectures]
    held = sum(len(a["seeds"]) for a in gone)
    for a in gone:
        print(f"dropped: {a['arm']} ({a['hash'][:12]}, {len(a['seeds'])} results): not an architecture of the subspace now")
    archs = [{"hash": h, "seeds": kept.get(h, {})} for h in sub.architectures]
    out.write_text(json.dumps({**doc, "architectures": archs}))  # write() fills in the rest
    print(f"kept {len(kept)} architectures, dropped {len(gone)} ({held} results); {len(sub.architectures) - len(kept)} new")
    write(sub, shape, args)
    return 0


def dump(doc: dict) -> str:
    """The table as JSON with one architecture per line, so that a diff shows which architectures a run added."""
    head = json.dumps({k: v for k, v in doc.items() if k != "architectures"}, separators=(",", ":"), default=str)
    body = ",\n".join(json.dumps(a, separators=(",", ":"), default=str) for a in doc["architectures"])
    return head[:-1] + ',"architectures":[\n' + body + "\n]}\n"


def write(sub, shape, args: argparse.Namespace) -> int:
    """Write the table from the committed file and every build study under --runs-dir; return how many architectures
    still lack a seed."""
    from nasplay.sweep.table import measure, missing, table_from_study

    measure(sub, shape)
    meta = {"command": "python scripts/build_table.py build --missing", "budget": BUDGET, "space_file": f"search_spaces/{SPACE}.yaml",
            "input": list(shape)}
    out = Path(args.out)
    root = Path(args.runs_dir) / "table_classic"
    studies = sorted(d for d in root.glob("table_classic*") if (d / "results.csv").exists())
    prior = committed(out)
    if prior:
        same_space(sub, prior)
    doc = table_from_study(studies, sub, meta, prior=prior)
    done = sum(len(a["seeds"]) for a in doc["architectures"])
    doc["trained"] = {"trials": done, "of": len(doc["architectures"]) * len(SEEDS)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump(doc))
    left = missing(sub, doc, SEEDS)
    print(f"table: {out} ({done} of {len(doc['architectures']) * len(SEEDS)} architecture x seed results; "
          f"{len(left)} architectures still lack a seed{': build --missing goes on' if left else ''})")
    return len(left)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("size", "estimate", "build", "write", "migrate"))
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "table"))
    p.add_argument("--out", default=str(TABLE))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--hours", type=float, default=None, help="build: start no trial after this long (continue with --missing)")
    p.add_argument("--missing", action="store_true", help="build: continue the table's study")
    args = p.parse_args(argv)
    return {"size": cmd_size, "estimate": cmd_estimate, "build": cmd_build, "write": cmd_write, "migrate": cmd_migrate}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
