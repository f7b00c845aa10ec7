"""Write a study's report: figures, architecture diagrams, report.md and report.json, a W&B run; several side by side.

The third of the report's three parts (:mod:`~nasplay.report.load`, :mod:`~nasplay.report.analyse`, write).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from nasplay.draw.diagram import layout_genome
from nasplay.draw.render import render, save
from nasplay.manifest import FILE as MANIFEST_FILE
from nasplay.report import edfs, markdown
from nasplay.report.analyse import Report, build_report, curve_bands, metric_format
from nasplay.report.load import Study, load_study, num


def to_finite(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): to_finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_finite(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_json(report: Report) -> str:
    """The report as strict JSON (NaN -> null)."""
    return json.dumps(to_finite(report.to_dict()), indent=2)


def make_figures(study: Study, report: Report, out: Path) -> dict[str, list[str]]:
    """Draw the study's figures into ``out``; returns ``{name: [file names]}`` (PNG and SVG)."""
    from nasplay.report import figures  # matplotlib: loaded when a figure is drawn, not with the CLI

    made: dict[str, list[Path]] = {}
    scale = report.scale
    ylabel = f"{study.metric} (%)" if scale == 100 else study.metric
    # The primary outcome's differences; a censored (time-to-target) primary has none to draw: the first secondary that has.
    families = [(study.metric, report.comparisons), *report.secondary.items()]
    shown, comps = next(((m, cs) for m, cs in families if cs and cs[0].get("kind", "means") == "means"), (study.metric, []))
    if comps:
        es, eu = metric_format(study, shown)
        rows = [(c["arm"], c["welch"]["diff"] * es, c["welch"]["ci_low"] * es, c["welch"]["ci_high"] * es,
                 c["outcome"] in ("better", "worse"), study.arms.index(c["arm"])) for c in comps]
        ref = "the previous rung" if study.kind == "ladder" else study.baseline
        made["effects"] = figures.effects(rows, out, xlabel=f"Δ {shown}" + (f" ({eu})" if eu else ""), baseline=str(ref))
    if report.budgets:
        es, eu = metric_format(study)
        series: dict[str, list[list[float]]] = {}
        for b in report.budgets:
            for c in b["comparisons"]:
                if c.get("kind", "means") == "means":
                    s_ = series.setdefault(c["arm"], [[], [], [], []])
                    for lst, v in zip(s_, (b["budget"], c["welch"]["diff"] * es, c["welch"]["ci_low"] * es, c["welch"]["ci_high"] * es)):
                        lst.append(v)
        if series:
            made["budgets"] = figures.effect_vs_budget({k: tuple(v) for k, v in series.items()}, out,
                                                       xlabel="budget (x trainer.max_epochs)",
                                                       ylabel=f"Δ {study.metric}" + (f" ({eu})" if eu else ""),
                                                       baseline=str(study.baseline))
    tuning = report.tuning or {}
    if len(tuning.get("settings", [])) == 1:
        name = tuning["settings"][0]
        curves = {arm: ([num(r["setting"][name]) for r in d["curve"]], [r["mean"] for r in d["curve"]], num(d["chosen"].get(name)))
                  for arm, d in tuning["arms"].items()}
        # an arm whose tuning seeds never got the measure (a time target nobody reached) has no curve to draw
        curves = {arm: c for arm, c in curves.items() if any(math.isfinite(num(y)) for y in c[1])}
        on = tuning.get("criterion", "objective")
        if curves:
            made["tuning"] = figures.tuning_curves(curves, out, xlabel=name, ylabel=(
                "validation objective" if on == "objective" else on) + " (mean over tuning seeds)")
    panels = []
    curve_metrics = list(dict.fromkeys(r.get("metric") for r in study.curves))
    # Curves over training: validation accuracy and training loss (test/* is one final value, not a curve).
    extra = () if study.metric.startswith("test/") or study.metric == "val/acc_best" else (study.metric,)
    wanted = [m for m in ("val/acc", *extra, "train/loss", "val/loss") if m in curve_metrics]
    for m in list(dict.fromkeys(wanted))[:3]:
        xkey, bands = curve_bands(study, m)
        if bands:
            if "acc" in m and all(np.nanmax(b[1]) <= 1 for b in bands.values()):
                bands = {a: (x, mu * 100, sd * 100, n) for a, (x, mu, sd, n) in bands.items()}
                m = f"{m} (%)"
            panels.append((m, xkey, bands))
    if panels:
        made["learning_curves"] = figures.learning_curves(panels, out, title=f"{study.experiment}: mean ± std over seeds")
    elif not study.curves:
        report.notes.append("no curves.csv: learning curves left out")
    cost = "flops" if "flops" in report.pareto else "params" if "params" in report.pareto else None
    if cost:
        pm, ps = report.pareto_metric, report.pareto_scale
        ylabel = f"{pm} (%)" if ps == 100 else pm
        points = {a: (study.column(cost, a), study.values(a, pm) * ps) for a in study.arms}
        if study.kind == "search":  # the sampled networks as one series; networks placed beside them each on their own
            sampled = [a for a in study.arms if not a.startswith("classic ")]
            points = {f"searched ({len(sampled)})": (np.concatenate([study.column(cost, a) for a in sampled] or [np.array([])]),
                                                     np.concatenate([study.values(a, pm) for a in sampled] or [np.array([])]) * ps),
                      **{a: points[a] for a in study.arms if a.startswith("classic ")}}
        front = report.pareto[cost]["front"]
        made["pareto"] = figures.pareto(points, ([q[cost] for q in front], [q[pm] * ps for q in front]), out,
                                        xlabel=cost if cost == "params" else "FLOPs", ylabel=ylabel,
                                        title=f"{study.experiment}: {ylabel} against {cost}")
    ds = report.edf
    if ds:
        err = ds.errors
        every = np.concatenate([e[np.isfinite(e)] for e in err.values()] or [np.array([0.0])])
        span = (float(every.min()), float(every.max())) if len(every) else (0.0, 1.0)

        def curves(weights: dict[str, np.ndarray] | None) -> dict[str, tuple]:
            out_ = {}
            for a in study.arms:
                w = None if weights is None else weights[a]
                xs, F = edfs.edf(err[a], w)
                grid = np.unique(np.r_[xs, np.linspace(*span, 200)]) if len(xs) else xs  # the band spans the whole axis
                lo, hi, _ = edfs.dkw_band(err[a], grid, weights=w)  # simultaneous 95% (Kish n when weighted)
                out_[a] = (xs, F, grid, lo, hi)
            return out_
        edf_panels = [("plain", curves(None))]
        if study.baseline is not None:
            for m in ds.measures:
                # Weights matched pairwise against the baseline; the baseline's own weights from the first pair.
                weights: dict[str, np.ndarray] = {}
                for a in study.arms:
                    if a != study.baseline:
                        wa, wb = edfs.complexity_weights([ds.complexities[m][a], ds.complexities[m][study.baseline]],
                                                        bins=ds.bins)
                        weights[a] = wa
                        weights.setdefault(study.baseline, wb)
                if len(weights) == len(study.arms) and all(w.sum() > 0 for w in weights.values()):
                    edf_panels.append((f"normalised by {m}", curves(weights)))
        made["edf"] = figures.edfs(edf_panels, out, xlabel=ds.error,
                                   title=f"{study.experiment}: error EDFs (bands: simultaneous 95% DKW)")
    return {k: [p.name for p in v] for k, v in made.items()}


def arm_genome(study: Study, arm: str) -> tuple[Any, str]:
    """An arm's genome and where it came from: ``genomes/<genome_hash>.yaml`` (what the runner trained), else
    the manifest's arch with the arm's knobs applied (not adapted to the data); ``(None, "")`` if unknown."""
    from nasplay.space.genome import Genome

    rows = [t for t in study.trials if t["arm"] == arm]
    for t in rows:
        h = str(t.get("genome_hash") or "")
        if h and (study.path / "genomes" / f"{h}.yaml").exists():
            return Genome.from_yaml((study.path / "genomes" / f"{h}.yaml").read_text()), f"genomes/{h}.yaml"
    entry = next((a for a in study.manifest.arms if a.name == arm), None) if study.manifest else None
    if entry is None:
        return None, ""
    from nasplay.complexity import resolve  # the one door from an arm to its genome (the plan's)
    from nasplay.space.load import load_genome

    like = load_genome(entry.arch)  # its own input: the manifest does not record the data's
    genome = resolve(like, {k: v for k, v in entry.knobs.items() if k not in ("keep", "tol")},
                     (like.input.channels, like.input.size, study.manifest.classes or like.classes))
    shown = ", ".join(f"{k}={v}" for k, v in entry.knobs.items()) or "no knobs"
    return genome, f"{entry.arch} with {shown} ({MANIFEST_FILE}; not adapted to the data)"


def make_diagrams(study: Study, out: Path) -> dict[str, dict[str, str]]:
    """Per arm an architecture diagram (SVG and PNG) from nasplay.draw.diagram, or the reason there is none.

    Only for ablations and ladders: an arm of a design-space or search study is a population of networks.
    """
    if study.kind not in ("ablation", "ladder"):
        return {}
    result: dict[str, dict[str, str]] = {}
    drawn: dict[str, str] = {}  # genome hash -> file stem: arms with the same network share one drawing
    for arm in study.arms[:12]:
        try:
            genome, source = arm_genome(study, arm)
            if genome is None:
                continue
            stem = drawn.get(genome.hash) or "diagram_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in arm)
            if genome.hash not in drawn:
                fig = render(layout_genome(genome))  # laid out and drawn once, saved in both formats
                for ext in ("svg", "png"):
                    save(fig, out / f"{stem}.{ext}")
                drawn[genome.hash] = stem
            result[arm] = {"svg": f"{stem}.svg", "png": f"{stem}.png", "source": source, "genome_hash": genome.hash}
        except Exception as e:  # noqa: BLE001 - a diagram must never sink the report
            result[arm] = {"error": f"{type(e).__name__}: {e}"}
    return result


def write_report(study_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, metric: str | None = None,
                 baseline: str | None = None, alpha: float | None = None, test: str | None = None, adjust: str | None = None,
                 margin: float | None = None, figures: bool = True, diagrams: bool = True,
                 wandb: bool = False) -> tuple[Path, Report]:
    """Load, analyse and write a study's report: ``report.md``, ``report.json`` and the figures (in ``out``, else the
    study directory), and with ``wandb`` a W&B run of its own; returns report.md's path and the report.

    ``metric`` and ``baseline`` override the study's manifest; ``alpha``, ``test``, ``adjust`` and ``margin`` its
    ``report.*`` settings (config.yaml).
    """
    study = load_study(study_dir, metric=metric, baseline=baseline)
    out = Path(out) if out is not None else study.path
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(study, alpha=alpha, test=test, adjust=adjust, margin=margin)
    if figures:
        report.figures = make_figures(study, report, out)
    if diagrams:
        report.diagrams = make_diagrams(study, out)
    md = out / "report.md"
    report.report_path = str(md)
    md.write_text(markdown.render(report.to_dict()))
    (out / "report.json").write_text(to_json(report))
    if wandb:
        report.wandb_id = log_report_to_wandb(study.path, report.to_dict(), out=out)
    return md, report


def compare_studies(study_dirs: list[str | os.PathLike], out: str | os.PathLike | None = None,
                    **kwargs: Any) -> tuple[Path, list[Report]]:
    """Write each study's report, then ``comparison.md`` side by side (in ``out``, else the studies' common parent)."""
    reports = []
    for i, d in enumerate(study_dirs):
        own = None if out is None else Path(out) / f"{i:02d}_{Path(d).parent.name}_{Path(d).name}"
        reports.append(write_report(d, own, **kwargs)[1])
    target = Path(out) if out is not None else Path(os.path.commonpath([Path(d).resolve() for d in study_dirs]))
    target.mkdir(parents=True, exist_ok=True)
    path = target / "comparison.md"
    docs = [r.to_dict() for r in reports]
    path.write_text(markdown.render_comparison(docs))
    (target / "comparison.json").write_text(json.dumps(to_finite({"studies": docs}), indent=2))
    return path, reports


def log_report_to_wandb(study_dir: str | os.PathLike, report: dict[str, Any], *, out: str | os.PathLike | None = None,
                        project: str = "nasplay", mode: str | None = None, entity: str | None = None,
                        tags: list[str] | tuple[str, ...] = ()) -> str:
    """Log a report as a W&B run of its own (``job_type="report"``, offline unless ``mode``/WANDB_MODE say otherwise).

    Tables of the arms and comparisons, the PNG figures as images and each arm's mean in the summary.
    Returns the run id; the run lives under ``<study_dir>/wandb``.
    """
    import wandb as wb  # slow to import: only when a report goes to W&B

    study_dir = Path(study_dir)
    fig_dir = Path(out) if out is not None else study_dir
    run = wb.init(project=project, entity=entity, group=report["study"], job_type="report", name=f"report-{report['study']}",
                  dir=str(study_dir), mode=mode or os.environ.get("WANDB_MODE", "offline"), reinit="create_new",
                  tags=list(dict.fromkeys(["report", report["experiment"], *tags])),
                  config={"experiment": report["experiment"], "study": report["study"], "metric": report["metric"],
                          "baseline": report["baseline"], "test": report["test"], "alpha": report["alpha"]})
    try:
        arm_cols = ["arm", "n", "mean", "std", "ci_low", "ci_high", "params", "flops", "wall_time"]
        arms = wb.Table(columns=arm_cols, data=[[to_finite(a.get(c)) for c in arm_cols] for a in report["arms"]])
        comp_cols = ["arm", "baseline", "diff", "ci_low", "ci_high", "g", "welch_p", "permutation_p", "p_adjusted", "outcome",
                     "significant", "verdict"]
        comps = wb.Table(columns=comp_cols, data=[to_finite([c["arm"], c["baseline"], c["welch"]["diff"], c["welch"]["ci_low"],
                                                           c["welch"]["ci_high"], c["effect"]["g"], c["welch"]["p"],
                                                           c["permutation"]["p"], c["p_adjusted"], c["outcome"], c["significant"],
                                                           c["verdict"]])
                                                  for c in report["comparisons"] if c.get("kind", "means") == "means"])
        logged: dict[str, Any] = {"report/arms": arms, "report/comparisons": comps}
        for name, files in report.get("figures", {}).items():
            png = next((f for f in files if f.endswith(".png")), None)
            if png:
                logged[f"figures/{name}"] = wb.Image(str(fig_dir / png))
        run.log(logged)
        for a in report["arms"]:
            run.summary[f"{report['metric']}/{a['arm']}/mean"] = to_finite(a["mean"])
            run.summary[f"{report['metric']}/{a['arm']}/n"] = a["n"]
        for c in report["comparisons"]:
            run.summary[f"verdict/{c['arm']}"] = c["verdict"]
        md = fig_dir / "report.md"
        if md.exists():
            # A copy in the run's files directory is uploaded with the run (a symlink would dangle if the study moved).
            shutil.copyfile(md, Path(run.dir) / "report.md")
        return run.id
    finally:
        run.finish()
