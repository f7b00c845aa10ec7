"""Reports of searches over the classics' space (:mod:`nasplay.sweep.conditional`) and of searchers compared.

:func:`write_search_report` (one study folder, written after the standard report when the folder holds
``space.json``): the Pareto front of the metric against FLOPs, each front point's difference from its
base classic (the base network with its own knobs, as trained beside the search) with a diagram, the
refusals, and the importance of each innovation: Optuna's fANOVA and mean-decrease-impurity evaluators
over the knobs (the per-base parameters ``resnet50.skip`` mapped back to ``skip``), with their spread
over evaluator seeds and bootstrap resamples of the trials, and how stable the ranking is at the
study's budget (split-half rank agreement as the number of trials grows).

:func:`anytime` (several study folders, ``nasplay report DIR ... --anytime``): the NAS-benchmark way of
reporting a search (NAS-Bench-201, NATS-Bench) -- the best accuracy found so far against trials, against
training compute (FLOPs x epochs per image) and against wall time; median and interquartile range over
the runs (seeds) of each searcher.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from nasplay.complexity import resolve
from nasplay.draw.diagram import draw_genome
from nasplay.draw.diff import diff_genomes, diff_text
from nasplay.report import stats
from nasplay.report.load import Study, load_study, num
from nasplay.report.write import to_finite
from nasplay.space.genome import Genome
from nasplay.sweep.conditional import SPACE_FILE, knob_of, read_refusals

NA = "-"  # the value of a knob on a trial whose base does not accept it (not sampled: the base's own)
EVALUATORS = ("fanova", "mdi")
STABLE_RHO = 0.8  # split-half Spearman above which an importance ranking is called stable


# ---------------------------------------------------------------------------------------------------
# Trials of a search


def is_classic(t: dict[str, Any]) -> bool:
    return str(t.get("arm", "")).startswith("classic ")


def searched(study: Study) -> list[dict[str, Any]]:
    """The sampled trials that trained and finished (the classics placed beside them left out)."""
    return [t for t in study.complete if not is_classic(t)]


def refusals(study: Study) -> dict[str, Any]:
    """Proposals refused before training: by cause (knob combination / budget) and by base, and per trained network.

    The refusal-free ask (:mod:`nasplay.sweep.feasible`) lists them in ``refusals.json`` (never trials); an older
    study kept them as FAIL trials (``Refused: ...``), which count too.
    """
    doc = read_refusals(study.path) or {}
    records = [{"arch": r.get("arch"), "arm": r.get("arm"), "reason": f"Refused: {r.get('reason')}", "number": None}
               for r in doc.get("refusals", [])]
    failed = [t for t in study.trials if t["state"] == "FAIL" and str(t.get("fail_reason") or "").startswith("Refused")]
    records += [{"arch": t.get("arch"), "arm": t["arm"], "reason": t["fail_reason"], "number": t.get("number")} for t in failed]
    by_cause: dict[str, int] = defaultdict(int)
    by_base: dict[str, int] = defaultdict(int)
    for r in records:
        why = str(r["reason"]).removeprefix("Refused: ")
        by_cause["knob combination" if why.startswith("knobs:") else "over budget"] += 1
        by_base[str(r.get("arch") or "?")] += 1
    trained = sum(1 for t in study.trials if t["state"] in ("COMPLETE", "PRUNED"))
    searched_n = sum(1 for t in study.trials if not is_classic(t) and t["state"] in ("COMPLETE", "PRUNED"))
    return {"n": len(records), "of_sampled": len(records) + searched_n, "trained": trained, "as_trials": len(failed),
            "per_trained": len(records) / trained if trained else math.nan,
            "duplicates": int(doc.get("duplicate_proposals", 0)), "probes": int(doc.get("probes_over_budget", 0)),
            "by_cause": dict(by_cause), "by_base": dict(by_base),
            "examples": [{"number": r["number"], "arm": r["arm"], "reason": r["reason"]} for r in records[:5]]}


def knob_table(trials: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, str]]]:
    """Per trial the value of every knob, per-base parameters mapped back (``param.resnet50.skip`` -> ``skip``).

    Returns the parameter names (``arch`` first, then knobs in first-seen order) and, per trial, a label
    per name; a knob its base does not accept is :data:`NA`.
    """
    names: list[str] = ["arch"]
    per: list[dict[str, str]] = []
    for t in trials:
        row = {"arch": str(t.get("param.arch") or t.get("arch"))}
        for col, v in t.items():
            if not col.startswith("param.") or col == "param.arch" or v is None or v == "":
                continue
            base, knob = knob_of(col.removeprefix("param."))
            if base is not None and base != row["arch"]:
                continue
            row[knob] = _label(v)
            if knob not in names:
                names.append(knob)
        per.append(row)
    for row in per:
        for n in names:
            row.setdefault(n, NA)
    return names, per


def _label(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------------
# Importances


def _evaluator(kind: str, seed: int) -> Any:
    import optuna  # slow to import: only for the importances

    if kind == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=seed)
    if kind == "mdi":
        return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)
    raise ValueError(f"importance evaluator must be one of {list(EVALUATORS)}, got {kind!r}")


def _importance(names: list[str], rows: list[dict[str, str]], values: np.ndarray, kind: str, seed: int) -> dict[str, float]:
    """One evaluator's normalised importances (sum 1) of ``names`` for ``values`` on these trials."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    keep = [n for n in names if len({r[n] for r in rows}) > 1]
    if not keep or len(rows) < 2 or np.ptp(values) == 0:
        return {n: 0.0 for n in names}
    dists = {n: CategoricalDistribution(sorted({r[n] for r in rows})) for n in keep}
    study = optuna.create_study(direction="maximize")
    study.add_trials([optuna.trial.create_trial(params={n: r[n] for n in keep}, distributions=dists, value=float(v))
                      for r, v in zip(rows, values)])
    # params=None: Optuna 5.0's MDI evaluator mislabels importances when params are not in its own order.
    imp = optuna.importance.get_param_importances(study, evaluator=_evaluator(kind, seed), normalize=True)
    return {n: float(imp.get(n, 0.0)) for n in names}


def _spearman(a: dict[str, float], b: dict[str, float]) -> float:
    from scipy.stats import spearmanr

    keys = sorted(a)
    x, y = [a[k] for k in keys], [b[k] for k in keys]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def importances(trials: list[dict[str, Any]], metric: str, *, seeds: int = 5, bootstrap: int = 20,
                splits: int = 10, seed: int = 0) -> dict[str, Any]:
    """fANOVA and MDI importances of the knobs (and the base) for ``metric``, with their spread and stability.

    ``seeds``: each evaluator on all trials with that many seeds (mean, std). ``bootstrap``: trials
    resampled with replacement (5-95% interval). Stability: ``splits`` random splits of the trials into
    two disjoint halves of ``n`` trials each, for growing ``n``; the Spearman correlation of the two
    halves' fANOVA rankings (mean over splits) says how far a ranking from ``n`` trials can be trusted.
    """
    rows_t = [t for t in trials if math.isfinite(num(t.get(metric)))]
    names, rows = knob_table(rows_t)
    values = np.array([num(t.get(metric)) for t in rows_t], dtype=float)
    n = len(rows)
    out: dict[str, Any] = {"metric": metric, "n_trials": n, "params": names, "evaluators": {}, "stability": {}}
    if n < 4:
        out["note"] = f"{n} finished searched trials: too few for importances"
        return out
    rng = np.random.default_rng(seed)
    for kind in EVALUATORS:
        by_seed = [_importance(names, rows, values, kind, s) for s in range(seeds)]
        boots = []
        for b in range(bootstrap):
            idx = rng.integers(0, n, n)
            boots.append(_importance(names, [rows[i] for i in idx], values[idx], kind, b))
        table = {}
        for p in names:
            s = np.array([d[p] for d in by_seed])
            bs = np.array([d[p] for d in boots]) if boots else np.array([math.nan])
            table[p] = {"mean": float(s.mean()), "std_seeds": float(s.std(ddof=1)) if len(s) > 1 else 0.0,
                        "boot_lo": float(np.nanpercentile(bs, 5)), "boot_hi": float(np.nanpercentile(bs, 95)),
                        "boot_std": float(np.nanstd(bs, ddof=1)) if len(bs) > 1 else math.nan}
        ranked = sorted(names, key=lambda p: -table[p]["mean"])
        out["evaluators"][kind] = {"importance": table, "ranking": ranked,
                                   "boot_top_agreement": float(np.mean([max(d, key=d.get) == ranked[0] for d in boots]))
                                   if boots else math.nan}
    f, m = out["evaluators"]["fanova"]["importance"], out["evaluators"]["mdi"]["importance"]
    out["fanova_vs_mdi_rho"] = _spearman({p: f[p]["mean"] for p in names}, {p: m[p]["mean"] for p in names})
    # Split-half agreement as the number of trials per half grows.
    sizes = sorted({k for k in (4, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100, 150, 200) if k <= n // 2} | {n // 2})
    curve = []
    for k in sizes:
        rhos = []
        for s in range(splits):
            perm = rng.permutation(n)
            a, b = perm[:k], perm[k:2 * k]
            ia = _importance(names, [rows[i] for i in a], values[a], "fanova", s)
            ib = _importance(names, [rows[i] for i in b], values[b], "fanova", s)
            rho = _spearman(ia, ib)
            if math.isfinite(rho):
                rhos.append(rho)
        curve.append({"per_half": k, "rho_mean": float(np.mean(rhos)) if rhos else math.nan,
                      "rho_q25": float(np.percentile(rhos, 25)) if rhos else math.nan,
                      "rho_q75": float(np.percentile(rhos, 75)) if rhos else math.nan, "splits": len(rhos)})
    stable = next((c["per_half"] for c in curve if c["rho_mean"] >= STABLE_RHO), None)
    out["stability"] = {"curve": curve, "threshold": STABLE_RHO, "stable_at": stable,
                        "verdict": _stability_verdict(curve, stable, n)}
    return out


def _stability_verdict(curve: list[dict], stable: int | None, n: int) -> str:
    if not curve:
        return "too few trials to measure stability"
    last = curve[-1]
    if stable is not None:
        return (f"the fANOVA ranking is stable (split-half Spearman >= {STABLE_RHO}) from about {stable} trials per half; "
                f"at {last['per_half']} per half rho = {last['rho_mean']:.2f}")
    xs = [c["per_half"] for c in curve if math.isfinite(c["rho_mean"])]
    ys = [c["rho_mean"] for c in curve if math.isfinite(c["rho_mean"])]
    extra = ""
    if len(xs) >= 2 and ys[-1] > ys[0] and ys[-1] < STABLE_RHO:
        # Extrapolate rho linearly in log(n): a rough guide to the budget that would reach the threshold.
        slope = (ys[-1] - ys[0]) / (math.log(xs[-1]) - math.log(xs[0]))
        need = xs[-1] * math.exp((STABLE_RHO - ys[-1]) / slope) if slope > 0 else math.inf
        if math.isfinite(need):
            k = int(round(need))
            extra = f"; extrapolating in log(trials), about {k} trials per half ({2 * k} in all) would reach it"
    return (f"NOT stable at this budget: two disjoint halves of {last['per_half']} trials agree on the fANOVA ranking only at "
            f"Spearman rho = {last['rho_mean']:.2f} (threshold {STABLE_RHO}){extra}")


# ---------------------------------------------------------------------------------------------------
# The front and its differences from the classics


def _genome_of(study: Study, t: dict[str, Any]) -> Any:
    h = str(t.get("genome_hash") or "")
    p = study.path / "genomes" / f"{h}.yaml"
    return Genome.from_yaml(p.read_text()) if h and p.exists() else None


def classic_genome(study: Study, base: str, like: Any = None) -> Any:
    """The base network as the search's reference: the ``classic BASE`` trial's genome, else rebuilt from space.json."""
    for t in study.trials:
        if t["arm"] == f"classic {base}":
            g = _genome_of(study, t)
            if g is not None:
                return g
    space = _space(study)
    if like is None or base not in space.get("bases", {}):
        return None
    return resolve(base, space["bases"][base].get("own_knobs") or {}, (like.input.channels, like.input.size, like.classes))


def _space(study: Study) -> dict[str, Any]:
    p = study.path / SPACE_FILE
    return json.loads(p.read_text()) if p.exists() else {}


def front(study: Study, cost: str = "flops") -> list[dict[str, Any]]:
    """Front points (max metric, min cost) over the searched trials and the classics, ordered by cost."""
    done = study.complete
    idx = stats.pareto_front([num(t.get(study.metric)) for t in done], [num(t.get(cost)) for t in done])
    return [done[i] for i in idx]


def _flips(arm: str, base: str) -> str:
    """The knob values a searched arm sets (its label after the base's name)."""
    return arm.removeprefix(base).strip().replace(" ", ", ") or "nothing"


def front_diffs(study: Study, out: Path, points: list[dict[str, Any]], *, diagrams: bool = True) -> list[dict[str, Any]]:
    """Per front point: its base, knobs, metric, cost, its diff from the base classic and a diagram file."""
    rows = []
    for t in points:
        base = str(t.get("arch") or "")
        row: dict[str, Any] = {"number": t.get("number"), "arm": t["arm"], "arch": base, "classic": is_classic(t),
                               study.metric: num(t.get(study.metric)), "flops": num(t.get("flops")),
                               "params": num(t.get("params"))}
        g = _genome_of(study, t)
        try:
            ref = classic_genome(study, base, g) if g is not None else None
            if g is not None and ref is not None:
                diffs = diff_genomes(ref, g)
                knob_level = [d for d in diffs if d.path in ("network", "input", "classes", "head", "aux")]  # the table's short form
                row["diff"] = [d.text for d in diffs]
                row["diff_text"] = diff_text(ref, g, diffs)
                row["summary"] = (f"the search took {base} and changed nothing" if not diffs and not row["classic"] else
                                  "the classic itself" if row["classic"] else
                                  f"the search took {base}, set {_flips(t['arm'], base)}: " + "; ".join(d.text for d in knob_level))
            if g is not None and diagrams and not row["classic"]:
                name = f"front_{int(t.get('number') or 0):03d}.png"
                draw_genome(g, out / name, max_height=6.0)
                row["diagram"] = name
        except Exception as e:  # noqa: BLE001 - a drawing or diff must not sink the report
            row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------
# The report of one search study


def build_search_report(study_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, diagrams: bool = True,
                        seeds: int = 5, bootstrap: int = 20, splits: int = 10) -> dict[str, Any]:
    """Everything :func:`write_search_report` writes, as plain data; the figures are drawn into ``out``."""
    study = load_study(study_dir)
    out = Path(out) if out is not None else study.path
    out.mkdir(parents=True, exist_ok=True)
    trials = searched(study)
    space = _space(study)
    rep: dict[str, Any] = {"study": study.name, "experiment": study.experiment, "metric": study.metric,
                           "searched": len(trials), "classics": sum(is_classic(t) for t in study.complete),
                           "refusals": refusals(study),
                           "space": {b: e.get("knobs", {}) for b, e in space.get("bases", {}).items()},
                           "max_flops": space.get("max_flops"), "max_params": space.get("max_params")}
    cost = "flops" if study.has("flops") else "params"
    rep["front"] = front_diffs(study, out, front(study, cost), diagrams=diagrams)
    rep["importance"] = importances(trials, study.metric, seeds=seeds, bootstrap=bootstrap, splits=splits)
    if rep["importance"].get("evaluators"):
        rep["figures"] = {"importance": [p.name for p in importance_figure(rep["importance"], out)]}
    return rep


def write_search_report(study_dir: str | os.PathLike, out: str | os.PathLike | None = None, **kw: Any) -> Path:
    """Write ``search.md`` and ``search.json`` (and the importance figure, front diagrams); returns search.md's path.

    A line pointing to it is added to ``report.md`` when that exists.
    """
    out_dir = Path(out) if out is not None else Path(study_dir)
    rep = build_search_report(study_dir, out_dir, **kw)
    md = out_dir / "search.md"
    md.write_text(render_search(rep))
    (out_dir / "search.json").write_text(json.dumps(to_finite(rep), indent=2, default=str))
    report = out_dir / "report.md"
    if report.exists() and "search.md" not in report.read_text():
        with open(report, "a") as f:
            f.write("\n## Search\n\nThe front's differences from the classics and the importance of each innovation: "
                    "[search.md](search.md).\n")
    return md


def render_search(rep: dict[str, Any]) -> str:
    scale = 100.0 if "acc" in rep["metric"] else 1.0
    unit = " (%)" if scale == 100 else ""
    lines = [f"# {rep['experiment']} / {rep['study']}: the search", "",
             f"{rep['searched']} searched networks trained and finished, beside {rep['classics']} classics; metric "
             f"{rep['metric']}.", ""]
    r = rep["refusals"]
    if r["of_sampled"]:
        causes = ", ".join(f"{v} {k}" for k, v in r["by_cause"].items()) or "none"
        old = (f" ({r['as_trials']} of them kept as FAIL trials by an older nasplay)" if r.get("as_trials") else
               "; none is a trial of the study, none counts against sweep.max_failures")
        lines += [f"Refused proposals, asked again before training: {r['n']} ({causes}) for {r.get('trained', 0)} trained "
                  f"networks, {r.get('per_trained', math.nan):.2f} per trained network{old}. The sampler saw each refusal as an "
                  f"infeasible trial, as it saw {r.get('probes', 0)} single-knob variants of the bases measured over budget "
                  f"before the search (not proposals); {r.get('duplicates', 0)} more proposals were asked again because "
                  "their genome had already trained with every seed.", ""]
    lines += ["## Pareto front (accuracy against FLOPs)", "",
              f"| trial | network | {rep['metric']}{unit} | MFLOPs | params | against its classic |", "|---|---|---|---|---|---|"]
    for p in rep["front"]:
        lines.append(f"| {p['number']} | {p['arm']} | {p[rep['metric']] * scale:.2f} | {p['flops'] / 1e6:.2f} | "
                     f"{int(p['params']):,} | {p.get('summary') or p.get('error', '')} |")
    lines.append("")
    for p in rep["front"]:
        if p["classic"] or not (p.get("diff_text") or p.get("diagram")):
            continue
        lines += [f"### trial {p['number']}: {p['arm']}", "", "Against its classic (the base with its own knobs, as trained beside "
                  "the search), every difference `nasplay diff` finds:", ""]
        if p.get("diff_text"):
            lines += ["```", p["diff_text"], "```", ""]
        if p.get("diagram"):
            lines += [f"![trial {p['number']}]({p['diagram']})", ""]
    imp = rep["importance"]
    lines += ["## Which innovation matters", ""]
    if not imp.get("evaluators"):
        lines += [imp.get("note", "no importances"), ""]
        return "\n".join(lines)
    lines += [f"Importance of each knob for {imp['metric']} over {imp['n_trials']} searched networks (per-base parameters "
              "mapped back to knobs; `arch` is the choice of base). Mean over evaluator seeds ± their std; "
              "[5%, 95%] over bootstrap resamples of the trials.", "",
              "| parameter | fANOVA | fANOVA bootstrap | MDI | MDI bootstrap |", "|---|---|---|---|---|"]
    f, m = imp["evaluators"]["fanova"]["importance"], imp["evaluators"]["mdi"]["importance"]
    for p in imp["evaluators"]["fanova"]["ranking"]:
        lines.append(f"| {p} | {f[p]['mean']:.3f} ± {f[p]['std_seeds']:.3f} | [{f[p]['boot_lo']:.3f}, {f[p]['boot_hi']:.3f}] | "
                     f"{m[p]['mean']:.3f} ± {m[p]['std_seeds']:.3f} | [{m[p]['boot_lo']:.3f}, {m[p]['boot_hi']:.3f}] |")
    top = imp["evaluators"]["fanova"]
    lines += ["", f"fANOVA and MDI rankings agree at Spearman rho = {imp['fanova_vs_mdi_rho']:.2f}; the top parameter "
              f"({top['ranking'][0]}) is also top in {top['boot_top_agreement'] * 100:.0f}% of bootstrap resamples.", "",
              f"**Stability.** {imp['stability']['verdict']}.", "",
              "| trials per half | split-half Spearman rho (mean) | IQR |", "|---|---|---|"]
    for c in imp["stability"]["curve"]:
        lines.append(f"| {c['per_half']} | {c['rho_mean']:.2f} | [{c['rho_q25']:.2f}, {c['rho_q75']:.2f}] |")
    if rep.get("figures", {}).get("importance"):
        lines += ["", f"![importance]({rep['figures']['importance'][0]})"]
    return "\n".join(lines) + "\n"


def importance_figure(imp: dict[str, Any], out: Path, stem: str = "importance") -> list[Path]:
    """Bars of fANOVA and MDI importance (seed std and bootstrap 5-95% whiskers) and the split-half stability curve."""
    from nasplay.report import figures  # matplotlib: only when a figure is drawn

    fig, (ax, ax2) = figures._new(9.0, 3.6, ncols=2)
    names = list(reversed(imp["evaluators"]["fanova"]["ranking"]))
    y = np.arange(len(names))
    for i, kind in enumerate(EVALUATORS):
        t = imp["evaluators"][kind]["importance"]
        mean = np.array([t[p]["mean"] for p in names])
        lo = np.array([t[p]["boot_lo"] for p in names])
        hi = np.array([t[p]["boot_hi"] for p in names])
        yy = y + (0.2 if i == 0 else -0.2)
        ax.barh(yy, mean, height=0.38, color=figures.color(i), label={"fanova": "fANOVA", "mdi": "MDI"}[kind],
                xerr=np.array([t[p]["std_seeds"] for p in names]), capsize=2)
        ax.hlines(yy, lo, hi, color="k", lw=0.8)
    ax.set_yticks(y, names)
    ax.set_xlabel(f"importance for {imp['metric']} (sum 1)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"n = {imp['n_trials']} trials; bars ± seed std, lines: bootstrap 5-95%", fontsize=8)
    curve = imp["stability"]["curve"]
    xs = [c["per_half"] for c in curve]
    ax2.plot(xs, [c["rho_mean"] for c in curve], "o-", color=figures.color(0))
    ax2.fill_between(xs, [c["rho_q25"] for c in curve], [c["rho_q75"] for c in curve], alpha=0.25, color=figures.color(0))
    ax2.axhline(STABLE_RHO, ls="--", color="gray", lw=0.8)
    ax2.set_ylim(-1, 1)
    ax2.set_xlabel("trials per half")
    ax2.set_ylabel("split-half Spearman rho (fANOVA)")
    ax2.set_title("stability of the ranking", fontsize=9)
    return figures.save(fig, out, stem)


# ---------------------------------------------------------------------------------------------------
# Searchers compared: anytime curves over seeds


def run_curve(study: Study, metric: str) -> dict[str, np.ndarray]:
    """One search run's best-so-far ``metric`` against trials, compute (FLOPs x epochs per image) and wall time.

    Only searched trials that trained count (COMPLETE or PRUNED, in trial order); the classics placed
    beside a search and refused samples spend nothing of the searcher's budget.
    """
    epochs_default = num((study.config.get("trainer") or {}).get("max_epochs"))
    rows = sorted((t for t in study.trials if t["state"] in ("COMPLETE", "PRUNED") and not is_classic(t)),
                  key=lambda t: num(t.get("number")))
    val = np.array([num(t.get(metric)) for t in rows], dtype=float)
    best = np.fmax.accumulate(np.where(np.isfinite(val), val, -np.inf)) if len(val) else val
    best = np.where(np.isfinite(best), best, np.nan)
    epochs = np.array([num(t.get("epochs")) if math.isfinite(num(t.get("epochs"))) else epochs_default for t in rows])
    flops = np.array([num(t.get("flops")) for t in rows]) * np.nan_to_num(epochs, nan=1.0)
    wall = np.array([num(t.get("duration_s")) for t in rows])
    refused = refusals(study)["n"]
    return {"trials": np.arange(1, len(rows) + 1, dtype=float), "best": best, "refused": refused,
            "compute": np.cumsum(np.nan_to_num(flops)), "wall": np.cumsum(np.nan_to_num(wall))}


def _at(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A best-so-far step function (points ``x``, values ``y``) read at ``grid`` (NaN before its first point)."""
    i = np.searchsorted(x, grid, side="right") - 1
    return np.where(i >= 0, y[np.clip(i, 0, None)], np.nan) if len(x) else np.full(len(grid), np.nan)


def band(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> dict[str, np.ndarray]:
    """Median and interquartile range over runs of step curves at ``grid``, and how many runs have a value there."""
    ys = np.array([_at(x, y, grid) for x, y in curves]) if curves else np.full((0, len(grid)), np.nan)
    n = np.isfinite(ys).sum(axis=0)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(ys, axis=0) if len(ys) else np.full(len(grid), np.nan)
            q25 = np.nanpercentile(ys, 25, axis=0) if len(ys) else med
            q75 = np.nanpercentile(ys, 75, axis=0) if len(ys) else med
    return {"x": grid, "median": med, "q25": q25, "q75": q75, "n": n}


def searcher_of(study: Study) -> str:
    """A run's searcher: its sampler (``sweep.sampler``), with its objectives when there are several."""
    sw = study.config.get("sweep") or {}
    sampler = str(sw.get("sampler") or study.name)
    objectives = sw.get("objectives") or []
    return sampler + (f" ({', '.join(objectives)})" if len(objectives) > 1 else "")


def anytime(study_dirs: list[str | os.PathLike], out: str | os.PathLike | None = None, *, metric: str | None = None,
            figures: bool = True) -> dict[str, Any]:
    """Compare searchers over their runs: anytime curves (median, IQR over runs) and a table; writes ``anytime.*``.

    Each folder is one run of one searcher (its seed: ``sweep.seed``); runs are grouped by searcher.
    ``metric`` defaults to the first run's first objective when it is an accuracy, else its report metric.
    """
    studies = [load_study(d) for d in study_dirs]
    if metric is None:
        first = studies[0]
        objectives = first.manifest.objectives if first.manifest else []
        metric = objectives[0] if objectives and "acc" in objectives[0] else first.metric
    runs: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)
    names: dict[str, list[str]] = defaultdict(list)
    for s in studies:
        runs[searcher_of(s)].append(run_curve(s, metric))
        names[searcher_of(s)].append(str(s.path))
    result: dict[str, Any] = {"metric": metric, "searchers": {}}
    finals_all = {}
    for who, rs in runs.items():
        n_max = max((len(r["trials"]) for r in rs), default=0)
        by_trials = band([(r["trials"], r["best"]) for r in rs], np.arange(1, n_max + 1, dtype=float))
        finals = np.array([r["best"][-1] if len(r["best"]) else np.nan for r in rs])
        finals_all[who] = finals
        result["searchers"][who] = {"runs": names[who], "n_runs": len(rs), "trials": [len(r["trials"]) for r in rs],
                                    "refused": [int(r["refused"]) for r in rs],
                                    "final_median": float(np.nanmedian(finals)) if np.isfinite(finals).any() else math.nan,
                                    "final_q25": float(np.nanpercentile(finals, 25)) if np.isfinite(finals).any() else math.nan,
                                    "final_q75": float(np.nanpercentile(finals, 75)) if np.isfinite(finals).any() else math.nan,
                                    "by_trials": {k: v.tolist() for k, v in by_trials.items()}}
    for axis in ("compute", "wall"):
        xs = np.concatenate([r[axis] for rs in runs.values() for r in rs if len(r[axis])] or [np.array([1.0])])
        lo, hi = max(xs[xs > 0].min() if (xs > 0).any() else 1.0, 1e-9), max(xs.max(), 1e-9)
        grid = np.geomspace(lo, hi, 60) if hi > lo else np.array([hi])
        for who, rs in runs.items():
            result["searchers"][who][f"by_{axis}"] = {k: v.tolist() for k, v in band([(r[axis], r["best"]) for r in rs], grid).items()}
    ref = next((w for w in finals_all if w.startswith("random")), None)
    for who, finals in finals_all.items():
        if ref is None or who == ref:
            continue
        a, b = finals[np.isfinite(finals)], finals_all[ref][np.isfinite(finals_all[ref])]
        if len(a) and len(b):  # probability that a run of this searcher ends better than a run of random search
            wins = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
            result["searchers"][who]["p_beats_random"] = float(wins)
    target = Path(out) if out is not None else Path(os.path.commonpath([Path(d).resolve() for d in study_dirs]))
    target.mkdir(parents=True, exist_ok=True)
    if figures:
        result["figures"] = [p.name for p in anytime_figure(result, target)]
    (target / "anytime.json").write_text(json.dumps(to_finite(result), indent=2))
    (target / "anytime.md").write_text(render_anytime(result))
    result["path"] = str(target / "anytime.md")
    return result


def render_anytime(result: dict[str, Any]) -> str:
    m = result["metric"]
    scale = 100.0 if "acc" in m else 1.0
    lines = [f"# Searchers compared: best {m} found", "",
             "Best-so-far over the searched trials that trained (classics and refused samples excluded); median and "
             "interquartile range over each searcher's runs. Refused proposals (knob combinations the knobs refuse, "
             "networks over the FLOPs budget) never train and are not trials; each searcher sees them as infeasible and "
             "asks again, so many refusals mean it keeps proposing outside the feasible space.", "",
             f"| searcher | runs | trials per run | refused per run | final best {m} median | IQR | P(run beats a random-search run) |",
             "|---|---|---|---|---|---|---|"]
    for who, s in result["searchers"].items():
        p = s.get("p_beats_random")
        lines.append(f"| {who} | {s['n_runs']} | {', '.join(map(str, s['trials']))} | {', '.join(map(str, s['refused']))} | "
                     f"{s['final_median'] * scale:.2f} | "
                     f"[{s['final_q25'] * scale:.2f}, {s['final_q75'] * scale:.2f}] | {'' if p is None else f'{p:.2f}'} |")
    if result.get("figures"):
        lines += ["", f"![anytime]({result['figures'][0]})"]
    return "\n".join(lines) + "\n"


def anytime_figure(result: dict[str, Any], out: Path, stem: str = "anytime") -> list[Path]:
    from nasplay.report import figures  # matplotlib: only when a figure is drawn

    fig, axes = figures._new(11.0, 3.4, ncols=3)
    m = result["metric"]
    scale = 100.0 if "acc" in m else 1.0
    labels = {"trials": "trials trained", "compute": "training compute (FLOPs x epochs per image)", "wall": "wall time (s)"}
    for ax, axis in zip(axes, ("trials", "compute", "wall")):
        for i, (who, s) in enumerate(result["searchers"].items()):
            b = s[f"by_{axis}"]
            x = np.array(b["x"], dtype=float)
            med, q25, q75 = (np.array(b[k], dtype=float) * scale for k in ("median", "q25", "q75"))
            ax.step(x, med, where="post", color=figures.color(i), label=f"{who} ({s['n_runs']} runs)")
            ax.fill_between(x, q25, q75, step="post", alpha=0.2, color=figures.color(i))
        if axis != "trials":
            ax.set_xscale("log")
        ax.set_xlabel(labels[axis])
        ax.set_ylabel(f"best {m}" + (" (%)" if scale == 100 else ""))
    axes[0].legend(fontsize=7, loc="lower right")
    axes[1].set_title("median and IQR over runs", fontsize=9)
    return figures.save(fig, out, stem)
