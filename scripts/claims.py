"""Rerun the claims suite and regenerate docs/claims.md's tables from the studies' report.json files.

    python scripts/claims.py estimate [--suite clutter] [--only NAME ...]   # minutes per experiment, before running
    python scripts/claims.py run [--suite clutter] [--only NAME ...] [--missing] [--collect [--rereport]] [-- OVERRIDE ...]
    python scripts/claims.py tables [--check]                                # rewrite the generated parts of claims.md

A suite (``scripts/claims/<suite>.yaml``) names the overrides every experiment runs with (``data=clutter``)
and each experiment's own budget, with the reason it was chosen. ``run`` runs ``python -m nasplay
experiment=NAME`` with them (plus any overrides after ``--``: ``data.size=64 trainer=gpu`` on a GPU), then
copies the study's ``report.json`` (and ``study.json``) to ``docs/results/<suite>/<NAME>/``, the evidence
the tables are made from. ``tables`` reads every committed report.json and the claims list
(``scripts/claims/claims.yaml``: which comparison and outcome carries each paper claim, and the direction the
paper reports) and rewrites the blocks of docs/claims.md between ``<!-- generated:NAME -->`` markers, so the
document follows from what is committed; the prose around them is written by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from claims_tables import RESULTS, ROOT, load_claims, write_tables  # scripts/ is sys.path[0] when this runs

SUITES = ROOT / "scripts" / "claims"


def show(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def load_yaml(path: Path) -> Any:
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


def load_suite(name: str) -> dict[str, Any]:
    path = SUITES / f"{name}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in SUITES.glob("*.yaml") if p.stem != "claims")
        raise SystemExit(f"--suite: no {path.relative_to(ROOT)}; suites: {names}")
    suite = load_yaml(path)
    suite.setdefault("overrides", [])
    suite.setdefault("experiments", {})
    return suite


def experiment_names(suite: dict[str, Any], only: list[str] | None) -> list[str]:
    names = list(suite["experiments"])
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise SystemExit(f"--only: {unknown} not in the suite; its experiments: {names}")
        names = [n for n in names if n in only]
    return names


def overrides_for(suite: dict[str, Any], name: str, extra: list[str]) -> list[str]:
    spec = suite["experiments"][name] or {}
    return [f"experiment={name}", *suite["overrides"], *(spec.get("overrides") or []), *extra,
            f"study={suite.get('study', suite['name'])}"]


# --- estimate ---------------------------------------------------------------------------------------------------------
def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from nasplay.sweep.config import register_configs

    register_configs()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3", job_name="nasplay"):
        return hydra_compose("config", overrides=overrides)


def step_seconds(genome: Any, batch: int, channels_last: bool, repeats: int = 3) -> float:
    """Median seconds of one SGD step (forward, backward, update) of ``genome`` on a random batch."""
    import torch

    from nasplay.nn.build import build

    net = build(genome)
    net.train()
    x = torch.randn(batch, genome.input.channels, genome.input.size, genome.input.size)
    y = torch.randint(0, genome.classes, (batch,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        out = net(x)
        logits = out[0] if isinstance(out, (tuple, list)) else out
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step is warm-up
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def pair_genomes(plan: Any, arm: str, limit: int = 8) -> list[Any]:
    """The genomes the first ``limit`` sampled pairs of an ``experiment.pairs`` study train under ``arm``: each pair's
    point read by the sweep's own :func:`nasplay.sweep.trial.suggest`, as its trials read it."""
    import optuna

    from nasplay.sweep.trial import suggest

    g = plan.genomes[arm]
    shape = (g.input.channels, g.input.size, g.classes)
    specs = [suggest(optuna.trial.FixedTrial({"seed": 0, "arm": arm, "pair": i, **point}), plan)
             for i, point in enumerate(plan.sampled_pairs()[:limit])]
    return [plan.trial_genome(s.arm, s.arch, s.knobs, shape) for s in specs]


def estimate(suite: dict[str, Any], names: list[str], extra: list[str]) -> list[dict[str, Any]]:
    """Predicted wall minutes of each experiment on this machine: every trial's steps at its arm's measured step
    time (one thread, as each worker trains), evaluation at a third of a training image's cost, the trials spread
    over the workers."""
    import torch

    from nasplay.sweep.plan import make_plan, to_config

    torch.set_num_threads(1)
    rows = []
    for name in names:
        cfg = compose(overrides_for(suite, name, extra))
        c = to_config(cfg)
        plan = make_plan(cfg)
        d, exp = c.data, c.experiment
        n_train = d.clutter_train if d.name == "clutter" else (d.limit or 1300)
        n_eval = (d.clutter_val + d.clutter_test) if d.name == "clutter" else 540
        grid = plan.grid or {}
        per_arm = {}
        for arm, g in plan.genomes.items():
            # a paired design trains the sampled architectures, not the arm's own network: time a few of them
            genomes = pair_genomes(plan, arm) if exp.pairs else [g]
            per_arm[arm] = statistics.fmean(step_seconds(x, d.batch_size, bool(c.trainer.channels_last)) for x in genomes)
        seeds = len(exp.seeds) + (len(exp.tune_seeds) * math.prod(len(v) for v in exp.tune.values()) if exp.tune else 0)
        if exp.pairs:
            seeds = exp.pairs  # one trial per pair and arm
        budgets = plan.budgets
        epochs = c.trainer.max_epochs
        steps = math.ceil(n_train / d.batch_size)
        total = 0.0
        for t in per_arm.values():
            per_epoch = steps * t + (n_eval / d.batch_size) * t / 3
            total += seeds * sum(b * epochs for b in budgets) * per_epoch
        if plan.grid is None:  # a search: n_trials at the arms' mean cost
            total = total / max(1, len(per_arm)) / max(1, seeds) * (c.sweep.n_trials or 1)
        workers = c.sweep.workers if isinstance(c.sweep.workers, int) else (os.cpu_count() or 1)
        rows.append({"experiment": name, "arms": len(per_arm), "trials": len(per_arm) * seeds * len(budgets),
                     "epochs": epochs, "budgets": budgets, "train": n_train, "grid": sorted(grid),
                     "step_ms": {a: round(1000 * t, 1) for a, t in per_arm.items()},
                     "cpu_minutes": total / 60, "minutes": total / 60 / max(1, workers)})
    return rows


# --- run --------------------------------------------------------------------------------------------------------------
def study_dir(suite: dict[str, Any], name: str, runs_dir: Path) -> Path:
    return runs_dir / name / suite.get("study", suite["name"])


def evidence_dir(suite: dict[str, Any], name: str) -> Path:
    return RESULTS / suite["name"] / name


def extra_baselines(name: str) -> list[str]:
    """The arms some claim of experiment ``name`` compares against instead of the experiment's baseline."""
    return sorted({c["baseline"] for c in load_claims(SUITES / "claims.yaml") if c["experiment"] == name and c.get("baseline")})


def report_cmd(src: Path, *args: str) -> int:
    return subprocess.call([sys.executable, "-c", "import sys; from nasplay.cli import main; sys.exit(main(sys.argv[1:]))",
                            "report", str(src), *args], cwd=ROOT, stdout=subprocess.DEVNULL)


def collect(suite: dict[str, Any], name: str, runs_dir: Path, command: str, minutes: float | None,
            rereport: bool = False) -> bool:
    """Copy a finished study's report.json and study.json to docs/results/<suite>/<name>/, with a report against
    each extra baseline its claims need (report.baseline=ARM.json); ``rereport`` first writes the study's report
    anew with this checkout's code (tables only)."""
    src = study_dir(suite, name, runs_dir)
    if rereport and (src / "results.csv").exists() and report_cmd(src, "--no-figures") != 0:
        print(f"[claims] {name}: the report failed", flush=True)
        return False
    if not (src / "report.json").exists():
        return False
    dest = evidence_dir(suite, name)
    dest.mkdir(parents=True, exist_ok=True)
    reports = {"report.json": json.loads((src / "report.json").read_text())}
    for arm in extra_baselines(name):
        out = runs_dir / ".claims" / name / arm
        rc = report_cmd(src, "--baseline", arm, "--out", str(out), "--no-figures")
        if rc != 0:
            print(f"[claims] {name}: the report against {arm} failed (exit {rc})", flush=True)
            return False
        reports[f"report.baseline={arm}.json"] = json.loads((out / "report.json").read_text())
    old = dest / "report.json"
    # a report written anew from an old run keeps the protocol it ran under (none where it predates the fingerprint)
    made_under = (json.loads(old.read_text()).get("protocol") if old.exists() else None) if rereport else protocol(name, command)
    for fname, report in reports.items():
        if minutes is not None:
            report["wall_minutes"] = round(minutes, 2)
        report["command"] = command
        if made_under:
            report["protocol"] = made_under
        for key in ("path", "report_path"):  # machine-specific paths: keep them relative to the runs directory
            if isinstance(report.get(key), str):
                report[key] = os.path.relpath(report[key], runs_dir)
        (dest / fname).write_text(json.dumps(report, indent=1, default=str) + "\n")
    if (src / "study.json").exists():
        shutil.copyfile(src / "study.json", dest / "study.json")
    print(f"[claims] {name}: -> {show(dest)}/ ({', '.join(reports)})", flush=True)
    return True


def protocol(name: str, command: str) -> str:
    """A fingerprint of what experiment ``name`` runs: its experiment file as parsed (comments aside) and the command
    with the suite's overrides. Shared config groups (trainer, data) are not in it: after changing one, rerun the
    experiments it touches with ``--only``."""
    from omegaconf import OmegaConf

    spec = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "experiment" / f"{name}.yaml"))
    return hashlib.sha256(json.dumps([spec, command], sort_keys=True, default=str).encode()).hexdigest()[:16]


def current(path: Path, fingerprint: str | None = None) -> bool:
    """A committed report made under the current rules (claims.yaml, 2026-12-06: the deciding test named in every
    comparison row and its Holm family, ``family_kind``) and, where it records one, with the protocol ``fingerprint``
    (:func:`protocol`) the experiment has now; an older one counts as missing for ``--missing``."""
    if not path.exists():
        return False
    r = json.loads(path.read_text())
    if fingerprint and r.get("protocol") and r["protocol"] != fingerprint:
        print(f"[claims] {path.parent.name}: its experiment file or command changed since the report was made: rerun",
              flush=True)
        return False
    rows = [*r.get("comparisons", []), *(x for rows in (r.get("secondary") or {}).values() for x in rows)]
    return r.get("kind") in ("search", "design_space") and r.get("test") == "exact" or \
        (bool(rows) and all("family_kind" in x for x in rows))


def run(suite: dict[str, Any], names: list[str], extra: list[str], runs_dir: Path, missing: bool,
        collect_only: bool = False, rereport: bool = False) -> int:
    failed = []
    for name in names:
        dest = evidence_dir(suite, name)
        overrides = overrides_for(suite, name, extra)
        command = "python -m nasplay " + " ".join(overrides)
        if missing and current(dest / "report.json", protocol(name, command)):
            print(f"[claims] {name}: {show(dest)}/report.json exists, skipped (--missing)", flush=True)
            continue
        minutes = None
        if not collect_only:
            cmd = [sys.executable, "-m", "nasplay", *overrides, f"runs_dir={runs_dir}", "progress=false"]
            print(f"[claims] {name}: {command}", flush=True)
            t0 = time.time()
            rc = subprocess.call(cmd, cwd=ROOT)
            minutes = (time.time() - t0) / 60
            if rc != 0:
                print(f"[claims] {name}: FAILED (exit {rc}) after {minutes:.1f} min", flush=True)
        elif (dest / "report.json").exists():  # keep the time the run measured
            minutes = json.loads((dest / "report.json").read_text()).get("wall_minutes")
        if not collect(suite, name, runs_dir, command, minutes, rereport=collect_only and rereport):
            print(f"[claims] {name}: no report.json in {study_dir(suite, name, runs_dir)}; nothing copied", flush=True)
            failed.append(name)
    if failed:
        print(f"[claims] failed: {failed}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="scripts/claims.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for cmd in ("estimate", "run"):
        s = sub.add_parser(cmd)
        s.add_argument("--suite", default="clutter")
        s.add_argument("--only", nargs="*")
        if cmd == "run":
            s.add_argument("--missing", action="store_true",
                           help="skip experiments with a committed report.json made under the current rules")
            s.add_argument("--runs-dir", default="runs/claims", type=Path)
            s.add_argument("--collect", action="store_true",
                           help="do not train: copy the finished studies' reports from --runs-dir (and write the extra-baseline reports)")
            s.add_argument("--rereport", action="store_true", help="with --collect: write each study's report anew first")
    t = sub.add_parser("tables")
    t.add_argument("--check", action="store_true", help="exit 1 if docs/claims.md is not what the results give")
    a = p.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    if a.cmd == "tables":
        return write_tables(check=a.check)
    suite = load_suite(a.suite)
    names = experiment_names(suite, a.only)
    if a.cmd == "estimate":
        total = 0.0
        for r in estimate(suite, names, extra):
            total += r["minutes"]
            print(f"{r['experiment']:32s} {r['trials']:4d} trials  {r['epochs']} ep x {r['budgets']}  "
                  f"train {r['train']}  ~{r['minutes']:5.1f} min  step ms {r['step_ms']}", flush=True)
        print(f"{'total':32s} ~{total:.0f} min")
        return 0
    return run(suite, names, extra, a.runs_dir.resolve(), a.missing, a.collect, a.rereport)


if __name__ == "__main__":
    sys.exit(main())
