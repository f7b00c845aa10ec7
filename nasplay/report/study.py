"""Load a study directory and build its report: tables, tests, verdicts, figures, Markdown and JSON.

A study directory (``runs/<experiment>/<study>/``, written by the sweep runner) holds ``results.csv``
(one row per trial), ``curves.csv`` (``trial, epoch, step, metric, value``) and ``config.yaml`` (the
resolved config). Only ``results.csv`` is required; every optional column or file that is missing just
leaves its part of the report out, with a note saying so.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasplay.manifest import FILE as MANIFEST_FILE
from nasplay.manifest import Manifest, direction, kind_of
from nasplay.report import stats

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
# Columns read as text even when they look like numbers.
TEXT_COLUMNS = {"state", "arm", "wandb_id", "fail_reason", "genome_hash", "arch", "genome", "datetime_start", "datetime_complete"}
# The primary metric when the config names none: the first present in the finished trials.
METRIC_PREFERENCE = ("test/acc", "val/acc_best", "val/acc")
# Metrics compared as well when present (e.g. epochs to a target error, as the AlexNet paper measured ReLU).
SECONDARY = ("epochs_to_target", "steps_to_target")


def lower_is_better(metric: str) -> bool:
    """Loss, error, time and "to target" metrics shrink when things improve; accuracies grow."""
    return direction(metric) == "minimize"


def _parse(value: str, column: str) -> Any:
    if column in TEXT_COLUMNS:
        return value
    if value == "" or value.lower() == "nan":  # "none" stays text: it is a knob value (skip=none)
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV file with numbers parsed and empty cells as ``None``."""
    with open(path, newline="") as f:
        return [{k: _parse(v or "", k) for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def _load_config(path: Path) -> dict:
    p = path / "config.yaml"
    if not p.exists():
        return {}
    import yaml

    data = yaml.safe_load(p.read_text()) or {}
    return data if isinstance(data, dict) else {}


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


@dataclass
class Study:
    """A loaded study directory: its trials, curves, config and the choices the report makes about them."""

    path: Path
    name: str
    experiment: str
    config: dict
    trials: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    arms: list[str]
    baseline: str | None
    baseline_source: str
    metric: str
    kind: str
    notes: list[str] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def complete(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t.get("state", "COMPLETE") == "COMPLETE"]

    def values(self, arm: str, metric: str | None = None) -> np.ndarray:
        """The finished trials' values of ``metric`` (default: the study's) in one arm, NaN where missing."""
        m = metric or self.metric
        return np.array([_num(t.get(m)) for t in self.complete if t["arm"] == arm], dtype=float)

    def column(self, name: str, arm: str | None = None) -> np.ndarray:
        return np.array([_num(t.get(name)) for t in self.complete if arm is None or t["arm"] == arm], dtype=float)

    def has(self, column: str) -> bool:
        return any(math.isfinite(_num(t.get(column))) for t in self.complete)


def _match_arm(value: str, arms: list[str], knob: str | None) -> str | None:
    """A baseline given on the command line as an arm: its name, ``knob=value``, or the one arm ending in ``=value``."""
    if value in arms:
        return value
    if knob and f"{knob}={value}" in arms:
        return f"{knob}={value}"
    ends = [a for a in arms if a.split("=", 1)[-1] == value]
    return ends[0] if len(ends) == 1 else None


def load_study(path: str | os.PathLike, *, metric: str | None = None, baseline: str | None = None) -> Study:
    """Read a study directory; ``metric`` / ``baseline`` override what its manifest says.

    The arms, their order, the baseline and the kind of study come from ``study.json``, which the runner
    writes (:mod:`nasplay.manifest`); a folder without one (results.csv written by other means) is read
    as the kind its folder name says (``runs/<experiment>/<study>``), its arms in the order they first
    ran, against the first of them in sorted order.
    """
    path = Path(path)
    results = path / "results.csv"
    if not path.is_dir():
        raise ValueError(f"study_dir: {str(path)!r} is not a directory (expected runs/<experiment>/<study>/)")
    if not results.exists():
        raise ValueError(f"study_dir: {str(path)!r} has no results.csv (is it a study directory written by "
                         "'python -m nasplay experiment=...'?)")
    trials = read_csv(results)
    curves = read_csv(path / "curves.csv") if (path / "curves.csv").exists() else []
    config = _load_config(path)
    manifest = Manifest.read(path)
    notes: list[str] = []
    if manifest is None:
        notes.append(f"no {MANIFEST_FILE} in the study directory: arms, baseline and kind are inferred from results.csv")
    experiment = manifest.experiment if manifest else (path.parent.name or path.name)

    for t in trials:
        t.setdefault("state", "COMPLETE")
        t["state"] = str(t["state"] or "COMPLETE").upper().removeprefix("TRIALSTATE.")
        arm = t.get("arm")
        t["arm"] = str(arm) if arm not in (None, "") else str(t.get("arch") or "all")
    seen = list(dict.fromkeys(t["arm"] for t in sorted(trials, key=lambda t: _num(t.get("number")))))
    configured = [a.name for a in manifest.arms if a.name in seen] if manifest else []
    arms = configured + [a for a in seen if a not in configured]

    columns = {k for t in trials for k in t}
    if metric is None and manifest is not None:
        metric = manifest.metric
    if metric is None:
        done = [t for t in trials if t["state"] == "COMPLETE"]
        metric = next((m for m in METRIC_PREFERENCE if any(math.isfinite(_num(t.get(m))) for t in done)), None)
        metric = metric or next((m for m in METRIC_PREFERENCE if m in columns), "val/acc")
    elif metric not in columns:
        raise ValueError(f"metric: {metric!r} is not a column of {results}; columns: {', '.join(sorted(columns))}")

    kind = manifest.kind if manifest else kind_of(experiment, None)
    base, source = None, ""
    if baseline is not None:
        base = _match_arm(str(baseline), arms, manifest.knob if manifest else None)
        if base is None:
            raise ValueError(f"baseline: {baseline!r} is not an arm of this study; arms: {', '.join(arms)}")
        source = "given on the command line"
    elif manifest is not None and manifest.baseline in arms:
        base, source = manifest.baseline, f"experiment.baseline ({MANIFEST_FILE})"
    elif arms:
        base = sorted(arms)[0]
        source = "no baseline recorded: the first arm in sorted order"
        notes.append(f"baseline not recorded; using {base!r}, the first arm in sorted order")
    return Study(path, path.name, experiment, config, trials, curves, arms, base, source, metric, kind, notes, manifest)


# ---------------------------------------------------------------------------------------------------
# The report as plain data (what --json prints).


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


def metric_format(study: Study, metric: str | None = None) -> tuple[float, str]:
    """``(scale, unit)`` for showing a metric: accuracies stored in [0, 1] are shown in percentage points."""
    m = metric or study.metric
    v = study.column(m)
    v = v[np.isfinite(v)]
    if "acc" in m and len(v) and v.min() >= 0 and v.max() <= 1:
        return 100.0, "points"
    return 1.0, ""


def _median(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else math.nan


def arm_table(study: Study, confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per arm: n, mean, std, CI of the metric; params, FLOPs, time; counts of pruned / failed trials."""
    rows = []
    for arm in study.arms:
        s = stats.summarize(study.values(arm), confidence)
        all_trials = [t for t in study.trials if t["arm"] == arm]
        row = {"arm": arm, "baseline": arm == study.baseline, **s.to_dict(),
               "params": _median(study.column("params", arm)), "flops": _median(study.column("flops", arm)),
               "wall_time": _mean(study.column("wall_time" if study.has("wall_time") else "duration_s", arm)),
               "imgs_per_sec": _mean(study.column("imgs_per_sec", arm)),
               "seeds": sorted({t.get("seed") for t in study.complete if t["arm"] == arm and t.get("seed") is not None}),
               "pruned": sum(t["state"] == "PRUNED" for t in all_trials),
               "failed": sum(t["state"] == "FAIL" for t in all_trials),
               "running": sum(t["state"] in ("RUNNING", "WAITING") for t in all_trials)}
        for m in SECONDARY:
            if study.has(m):
                row[m] = stats.summarize(study.values(arm, m), confidence).to_dict()
        rows.append(row)
    return rows


def _mean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def comparisons(study: Study, metric: str | None = None, *, alpha: float = 0.05, test: str = "welch",
                confidence: float = 0.95) -> list[stats.Comparison]:
    """Each arm against its reference: the baseline, or for a ladder the rung before it."""
    m = metric or study.metric
    scale, unit = metric_format(study, m)
    out = []
    for i, arm in enumerate(study.arms):
        ref = study.arms[i - 1] if study.kind == "ladder" else study.baseline
        if ref is None or arm == ref or (study.kind == "ladder" and i == 0):
            continue
        out.append(stats.compare(arm, study.values(arm, m), ref, study.values(ref, m), metric=m,
                                 higher_is_better=not lower_is_better(m), alpha=alpha, test=test, scale=scale,
                                 unit=unit, confidence=confidence))
    return out


def pareto_points(study: Study, cost: str) -> dict[str, Any]:
    """Trials on the front of the study's metric (max) against ``cost`` (min)."""
    done = study.complete
    score = [_num(t.get(study.metric)) for t in done]
    c = [_num(t.get(cost)) for t in done]
    idx = stats.pareto_front(score, c)
    return {"cost": cost, "front": [{"number": done[i].get("number"), "arm": done[i]["arm"], "seed": done[i].get("seed"),
                                     study.metric: score[i], cost: c[i]} for i in idx]}


def curve_bands(study: Study, metric: str) -> tuple[str, dict[str, tuple]]:
    """Per arm the mean and std over seeds of a logged curve at each epoch (or step), with the seed count."""
    arm_of = {t.get("number"): t["arm"] for t in study.trials if t["state"] in ("COMPLETE", "PRUNED")}
    rows = [r for r in study.curves
            if r.get("metric") == metric and r.get("trial") in arm_of and math.isfinite(_num(r.get("value")))]
    epochs = {r.get("epoch") for r in rows}
    xkey = "epoch" if len(epochs - {None}) > 1 and None not in epochs else "step"
    per: dict[str, dict[float, dict[Any, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        x = _num(r.get(xkey))
        if x == x:
            per[arm_of[r["trial"]]][x][r["trial"]].append(float(r["value"]))
    bands = {}
    for arm in study.arms:
        if arm not in per:
            continue
        xs = sorted(per[arm])
        # Average within a trial first (several logs at one x), then across seeds.
        vals = [[float(np.mean(v)) for v in per[arm][x].values()] for x in xs]
        mean = np.array([np.mean(v) for v in vals])
        std = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals])
        bands[arm] = (np.array(xs), mean, std, np.array([len(v) for v in vals]))
    return xkey, bands


def design_space(study: Study, *, bins: int = 10, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Error EDFs of each population (arm), plain and complexity-normalised, KS tests and bootstrap CIs."""
    scale, unit = metric_format(study)
    higher = not lower_is_better(study.metric)
    err = {a: ((1.0 if scale == 100 else 0.0) - study.values(a)) * scale if higher else study.values(a) * scale for a in study.arms}
    err_name = f"error ({'%' if scale == 100 else study.metric})" if higher else study.metric
    measures = [m for m in ("flops", "params") if study.has(m)]
    comp = {m: {a: study.column(m, a) for a in study.arms} for m in measures}
    populations = []
    for a in study.arms:
        e = err[a][np.isfinite(err[a])]
        lo, hi = stats.bootstrap_ci(e, resamples=resamples, seed=seed)
        populations.append({"arm": a, "n": len(e), "mean_error": _mean(e), "mean_error_ci": [lo, hi],
                            "min_error": float(e.min()) if len(e) else math.nan, "median_error": _median(e)})
    tests = []
    base = study.baseline
    for a in study.arms:
        if a == base or base is None:
            continue
        row: dict[str, Any] = {"arm": a, "baseline": base, "ks": stats.ks_test(err[a], err[base]).__dict__,
                               "mean_diff": _mean(err[a]) - _mean(err[base]),
                               "mean_diff_ci": list(stats.bootstrap_diff_ci(err[a], err[base], resamples=resamples, seed=seed))}
        for m in measures:
            wa, wb = stats.complexity_weights([comp[m][a], comp[m][base]], bins=bins)
            row[f"ks_normalised_{m}"] = stats.ks_test(err[a], err[base], wa, wb).__dict__
            row[f"mean_diff_normalised_{m}"] = (float(np.sum(wa * np.nan_to_num(err[a])) - np.sum(wb * np.nan_to_num(err[base])))
                                                if wa.sum() > 0 and wb.sum() > 0 else math.nan)
            row[f"mean_diff_normalised_{m}_ci"] = list(stats.bootstrap_diff_ci(err[a], err[base], weights_a=wa, weights_b=wb,
                                                                             resamples=resamples, seed=seed))
        row["verdict"] = _edf_verdict(row, measures, unit or "")
        tests.append(row)
    return {"error": err_name, "measures": measures, "bins": bins, "populations": populations, "tests": tests, "_err": err,
            "_comp": comp}


def _edf_verdict(row: dict, measures: list[str], unit: str) -> str:
    ks = row["ks"]
    u = f" {unit}" if unit else ""
    lo, hi = row["mean_diff_ci"]
    norm = [(m, row[f"ks_normalised_{m}"]) for m in measures]
    sig = math.isfinite(ks["p"]) and ks["p"] < 0.05
    d = row["mean_diff"]
    head = (f"{row['arm']}'s error distribution differs from {row['baseline']}'s" if sig
            else f"no significant difference between the error distributions of {row['arm']} and {row['baseline']}")
    parts = [f"{head} (KS D={ks['statistic']:.2f}, {stats.format_p(ks['p'])}, n={int(ks['n_a'])} vs {int(ks['n_b'])})"]
    for m, k in norm:
        if math.isfinite(k["statistic"]):
            parts.append(f"normalised by {m}: D={k['statistic']:.2f}, {stats.format_p(k['p'])} (approx.)")
        else:
            parts.append(f"normalised by {m}: not possible, the populations share no {m} range")
    if math.isfinite(d):
        word = "lower" if d < 0 else "higher"
        lo, hi = sorted((math.copysign(1, d) * lo, math.copysign(1, d) * hi))
        parts.append(f"mean error {word} by {abs(d):.1f}{u} (95% bootstrap CI {lo:.1f}–{hi:.1f})")
    return "; ".join(parts)


def build_report(study: Study, *, alpha: float = 0.05, test: str = "welch") -> dict[str, Any]:
    """Everything the report says about one study, as plain data (numbers, not prose, except verdicts)."""
    scale, unit = metric_format(study)
    counts = {s: sum(t["state"] == s for t in study.trials) for s in STATES}
    # A search's arms are a sampled population and the networks placed beside it: the front is the result, not tests.
    search = study.kind == "search"
    report: dict[str, Any] = {
        "study": study.name, "experiment": study.experiment, "path": str(study.path), "kind": study.kind,
        "metric": study.metric, "higher_is_better": not lower_is_better(study.metric), "scale": scale, "unit": unit,
        "baseline": study.baseline, "baseline_source": study.baseline_source,
        "reference": "previous rung" if study.kind == "ladder" else "baseline",
        "test": test, "alpha": alpha, "trials": {"total": len(study.trials), **{k: v for k, v in counts.items() if v}},
        "arms": arm_table(study),
        "comparisons": [] if search else [c.to_dict() for c in comparisons(study, alpha=alpha, test=test)],
        "secondary": {} if search else {m: [c.to_dict() for c in comparisons(study, m, alpha=alpha, test=test)]
                                        for m in SECONDARY if study.has(m)},
        "failures": [{"number": t.get("number"), "arm": t["arm"], "seed": t.get("seed"), "reason": t.get("fail_reason") or ""}
                     for t in study.trials if t["state"] == "FAIL"],
        "notes": list(study.notes) + (["search study: arms are not tested against a baseline; see the Pareto front"] if search else []),
    }
    report["pareto"] = {m: pareto_points(study, m) for m in ("flops", "params") if study.has(m)}
    if study.kind == "design_space":
        ds = design_space(study)
        report["design_space"] = {k: v for k, v in ds.items() if not k.startswith("_")}
        report["_ds"] = ds  # the raw errors and complexities, for the figures (not in the JSON)
    if not study.has(study.metric):
        report["notes"].append(f"no finished trial has a value of {study.metric!r}")
    return report


def to_json(report: dict[str, Any]) -> str:
    """The report as strict JSON (NaN -> null)."""
    return json.dumps(to_finite({k: v for k, v in report.items() if not k.startswith("_")}), indent=2)


# ---------------------------------------------------------------------------------------------------
# Figures, diagrams and the files of a report.


def make_figures(study: Study, report: dict[str, Any], out: Path) -> dict[str, list[str]]:
    """Draw the study's figures into ``out``; returns ``{name: [file names]}`` (PNG and SVG)."""
    from nasplay.report import figures

    made: dict[str, list[Path]] = {}
    scale, unit = report["scale"], report["unit"]
    ylabel = f"{study.metric} (%)" if scale == 100 else study.metric
    comps = report["comparisons"]
    if comps:
        rows = [(c["arm"], c["welch"]["diff"] * scale, c["welch"]["ci_low"] * scale, c["welch"]["ci_high"] * scale, c["significant"],
                 study.arms.index(c["arm"])) for c in comps]
        ref = "the previous rung" if study.kind == "ladder" else study.baseline
        made["effects"] = figures.effects(rows, out, xlabel=f"Δ {study.metric}" + (f" ({unit})" if unit else ""), baseline=str(ref))
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
        report["notes"].append("no curves.csv: learning curves left out")
    cost = "flops" if "flops" in report["pareto"] else "params" if "params" in report["pareto"] else None
    if cost:
        points = {a: (study.column(cost, a), study.values(a) * scale) for a in study.arms}
        if study.kind == "search":  # the sampled networks as one series; networks placed beside them each on their own
            sampled = [a for a in study.arms if not a.startswith("classic ")]
            points = {f"searched ({len(sampled)})": (np.concatenate([study.column(cost, a) for a in sampled] or [np.array([])]),
                                                     np.concatenate([study.values(a) for a in sampled] or [np.array([])]) * scale),
                      **{a: points[a] for a in study.arms if a.startswith("classic ")}}
        front = report["pareto"][cost]["front"]
        made["pareto"] = figures.pareto(points, ([q[cost] for q in front], [q[study.metric] * scale for q in front]), out,
                                        xlabel=cost if cost == "params" else "FLOPs", ylabel=ylabel,
                                        title=f"{study.experiment}: {ylabel} against {cost}")
    ds = report.get("_ds")
    if ds:
        err = ds["_err"]
        def curves(weights: dict[str, np.ndarray] | None) -> dict[str, tuple]:
            out_ = {}
            for i, a in enumerate(study.arms):
                w = None if weights is None else weights[a]
                xs, F = stats.edf(err[a], w)
                grid = np.linspace(xs.min(), xs.max(), 120) if len(xs) else xs
                lo, hi = stats.bootstrap_edf_band(err[a], grid, weights=w, resamples=300, seed=i)
                out_[a] = (xs, F, grid, lo, hi)
            return out_
        edf_panels = [("plain", curves(None))]
        if study.baseline is not None:
            for m in ds["measures"]:
                # Weights matched pairwise against the baseline; the baseline's own weights from the first pair.
                weights: dict[str, np.ndarray] = {}
                for a in study.arms:
                    if a != study.baseline:
                        wa, wb = stats.complexity_weights([ds["_comp"][m][a], ds["_comp"][m][study.baseline]], bins=ds["bins"])
                        weights[a] = wa
                        weights.setdefault(study.baseline, wb)
                if len(weights) == len(study.arms) and all(w.sum() > 0 for w in weights.values()):
                    edf_panels.append((f"normalised by {m}", curves(weights)))
        made["edf"] = figures.edfs(edf_panels, out, xlabel=ds["error"], title=f"{study.experiment}: error EDFs (bands: 95% bootstrap)")
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
    from nasplay.space.load import load_genome

    genome = load_genome(entry.arch, {k: v for k, v in entry.knobs.items() if k not in ("keep", "tol")})
    shown = ", ".join(f"{k}={v}" for k, v in entry.knobs.items()) or "no knobs"
    return genome, f"{entry.arch} with {shown} ({MANIFEST_FILE}; not adapted to the data)"


def make_diagrams(study: Study, out: Path) -> dict[str, dict[str, str]]:
    """Per arm an architecture diagram (SVG and PNG) from nasplay.report.diagram, or the reason there is none.

    Only for ablations and ladders: an arm of a design-space or search study is a population of networks.
    """
    if study.kind not in ("ablation", "ladder"):
        return {}
    try:
        from nasplay.report.diagram import layout_genome
        from nasplay.report.draw.render import render, save
    except ImportError:
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
                 baseline: str | None = None, alpha: float = 0.05, test: str = "welch", figures: bool = True,
                 diagrams: bool = True, wandb: bool = False) -> Path:
    """Build a study's report and write ``report.md``, ``report.json`` and the figures; returns report.md's path."""
    path, _ = write_study_report(study_dir, out, metric=metric, baseline=baseline, alpha=alpha, test=test, figures=figures,
                     diagrams=diagrams, wandb=wandb)
    return path


def write_study_report(study_dir, out=None, *, metric=None, baseline=None, alpha=0.05, test="welch", figures=True, diagrams=True,
           wandb=False) -> tuple[Path, dict[str, Any]]:
    study = load_study(study_dir, metric=metric, baseline=baseline)
    out = Path(out) if out is not None else study.path
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(study, alpha=alpha, test=test)
    if figures:
        report["figures"] = make_figures(study, report, out)
    if diagrams:
        report["diagrams"] = make_diagrams(study, out)
    from nasplay.report import markdown

    md = out / "report.md"
    report["report_path"] = str(md)
    md.write_text(markdown.render(report))
    (out / "report.json").write_text(to_json(report))
    if wandb:
        report["wandb_id"] = log_report_to_wandb(study.path, report, out=out)
    return md, report


def compare_studies(study_dirs: list[str | os.PathLike], out: str | os.PathLike | None = None, **kwargs) -> tuple[Path, list[dict]]:
    """Write each study's report, then ``comparison.md`` side by side (in ``out``, else the studies' common parent)."""
    from nasplay.report import markdown

    reports = []
    for i, d in enumerate(study_dirs):
        own = None if out is None else Path(out) / f"{i:02d}_{Path(d).parent.name}_{Path(d).name}"
        reports.append(write_study_report(d, own, **kwargs)[1])
    target = Path(out) if out is not None else Path(os.path.commonpath([Path(d).resolve() for d in study_dirs]))
    target.mkdir(parents=True, exist_ok=True)
    path = target / "comparison.md"
    path.write_text(markdown.render_comparison(reports))
    (target / "comparison.json").write_text(json.dumps(to_finite({"studies": [{k: v for k, v in r.items() if not k.startswith("_")}
                                                                              for r in reports]}), indent=2))
    return path, reports


def log_report_to_wandb(study_dir: str | os.PathLike, report: dict[str, Any], *, out: str | os.PathLike | None = None,
                        project: str = "nasplay", mode: str | None = None, entity: str | None = None,
                        tags: list[str] | tuple[str, ...] = ()) -> str:
    """Log a report as a W&B run of its own (``job_type="report"``, offline unless ``mode``/WANDB_MODE say otherwise).

    Tables of the arms and comparisons, the PNG figures as images and each arm's mean in the summary.
    Returns the run id; the run lives under ``<study_dir>/wandb``.
    """
    import wandb as wb

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
        comp_cols = ["arm", "baseline", "diff", "ci_low", "ci_high", "g", "welch_p", "permutation_p", "significant", "verdict"]
        comps = wb.Table(columns=comp_cols, data=[to_finite([c["arm"], c["baseline"], c["welch"]["diff"], c["welch"]["ci_low"],
                                                           c["welch"]["ci_high"], c["effect"]["g"], c["welch"]["p"],
                                                           c["permutation"]["p"], c["significant"], c["verdict"]])
                                                  for c in report["comparisons"]])
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
