"""Render report data (from :func:`nasplay.report.study.build_report`) as Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

TESTS = {"welch": "Welch's t-test", "permutation": "two-sided permutation test"}


def count(x: Any) -> str:
    """``1234567 -> '1.23M'``; blank for missing."""
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return ""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.0f}"


def num(x: Any, digits: int = 2, scale: float = 1.0) -> str:
    if isinstance(x, (int, float)) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "–"
    return f"{x * scale:.{digits}f}"


def p_value(p: Any) -> str:
    if not isinstance(p, (int, float)) or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def metric_label(report: dict[str, Any], metric: str | None = None) -> str:
    m = metric or report["metric"]
    return f"{m} (%)" if report["scale"] == 100 and m == report["metric"] else m


def arms_section(report: dict[str, Any]) -> str:
    s = report["scale"]
    ci = "95% CI"
    header = ["arm", "n", f"mean {metric_label(report)}", "std", ci, "params", "FLOPs", "time (s)", "img/s", "pruned", "failed"]
    rows = []
    for a in report["arms"]:
        name = f"**{a['arm']}** (baseline)" if a["baseline"] else a["arm"]
        rows.append([name, a["n"], num(a["mean"], 2, s), num(a["std"], 2, s),
                     f"{num(a['ci_low'], 2, s)} – {num(a['ci_high'], 2, s)}" if math.isfinite(a["ci_low"]) else "–",
                     count(a["params"]), count(a["flops"]), num(a["wall_time"], 1), count(a["imgs_per_sec"]), a["pruned"], a["failed"]])
    out = [table(header, rows)]
    extra = [m for m in ("epochs_to_target", "steps_to_target") if any(m in a for a in report["arms"])]
    for m in extra:
        out.append("")
        out.append(table(["arm", "n", f"mean {m}", "std", ci],
                         [[a["arm"], a[m]["n"], num(a[m]["mean"], 1), num(a[m]["std"], 1),
                           f"{num(a[m]['ci_low'], 1)} – {num(a[m]['ci_high'], 1)}"] for a in report["arms"] if m in a]))
    return "\n".join(out)


def comparisons_section(comps: list[dict[str, Any]], scale: float, unit: str) -> str:
    if not comps:
        return "_No arm to compare (one arm, or no baseline)._"
    u = f" ({unit})" if unit else ""
    header = ["arm", "vs", f"Δ mean{u}", "95% CI of Δ", "Hedges' g", "effect", "Welch t (df)", "Welch p", "permutation p", "significant"]
    rows = []
    for c in comps:
        w, perm, e = c["welch"], c["permutation"], c["effect"]
        rows.append([c["arm"], c["baseline"], num(w["diff"], 2, scale), f"{num(w['ci_low'], 2, scale)} to {num(w['ci_high'], 2, scale)}",
                     num(e["g"], 2), e["magnitude"], f"{num(w['t'], 2)} ({num(w['df'], 1)})", p_value(w["p"]),
                     p_value(perm["p"]) + ("" if perm["exact"] else " (MC)"), "yes" if c["significant"] else "no"])
    verdicts = "\n".join(f"- {c['verdict']}" for c in comps)
    return table(header, rows) + "\n\n**Verdicts**\n\n" + verdicts


def figure(title: str, files: Sequence[str]) -> str:
    png = next((f for f in files if f.endswith(".png")), None)
    svg = next((f for f in files if f.endswith(".svg")), None)
    if not png:
        return ""
    return f"![{title}]({png})" + (f"  \n[SVG]({svg})" if svg else "")


def design_space_section(ds: dict[str, Any]) -> str:
    pops = table(["population", "n", f"mean {ds['error']}", "95% bootstrap CI", f"min {ds['error']}", f"median {ds['error']}"],
                 [[p["arm"], p["n"], num(p["mean_error"]), f"{num(p['mean_error_ci'][0])} – {num(p['mean_error_ci'][1])}",
                   num(p["min_error"]), num(p["median_error"])] for p in ds["populations"]])
    header = ["population", "vs", "KS D", "KS p"] + [h for m in ds["measures"] for h in (f"D ({m}-normalised)", f"p ({m}, approx.)")]
    rows = []
    for t in ds["tests"]:
        r = [t["arm"], t["baseline"], num(t["ks"]["statistic"]), p_value(t["ks"]["p"])]
        for m in ds["measures"]:
            k = t[f"ks_normalised_{m}"]
            r += [num(k["statistic"]), p_value(k["p"])]
        rows.append(r)
    verdicts = "\n".join(f"- {t['verdict']}" for t in ds["tests"])
    return (f"{pops}\n\n{table(header, rows)}\n\nComplexity normalisation: {ds['bins']} log-spaced bins over the shared range, "
            f"weights equalise each population's complexity distribution (Radosavovic et al. 2019).\n\n{verdicts}")


def render(report: dict[str, Any]) -> str:
    """The whole report of one study."""
    r = report
    trials = ", ".join(f"{k.lower()} {v}" for k, v in r["trials"].items() if k != "total")
    lines = [f"# {r['experiment']} — {r['study']}", "",
             f"- study directory: `{r['path']}`",
             f"- kind: {r['kind']}; metric: `{r['metric']}` ({'higher' if r['higher_is_better'] else 'lower'} is better)",
             f"- trials: {r['trials']['total']} ({trials})",
             f"- baseline: `{r['baseline']}` ({r['baseline_source']})" if r["baseline"] else "- baseline: none",
             f"- statistics: mean ± 95% t-interval over seeds; {TESTS.get(r['test'], r['test'])} at α={r['alpha']} for the verdicts; "
             "Hedges' g with the pooled SD; two-sided permutation test as a check", ""]
    if r["notes"]:
        lines += ["> " + n for n in r["notes"]] + [""]
    lines += ["## Arms", "", arms_section(r), ""]
    ref = "the previous rung" if r["reference"] == "previous rung" else "the baseline"
    lines += [f"## Each arm against {ref}", "", comparisons_section(r["comparisons"], r["scale"], r["unit"]), ""]
    for m, comps in r.get("secondary", {}).items():
        lines += [f"### {m} (lower is better)", "", comparisons_section(comps, 1.0, ""), ""]
    if "design_space" in r:
        lines += ["## Design spaces: error EDFs", "", design_space_section(r["design_space"]), ""]
    figs = r.get("figures", {})
    titles = {"effects": "Differences from the baseline", "learning_curves": "Learning curves (mean ± std over seeds)",
              "pareto": "Accuracy against FLOPs, Pareto front", "edf": "Error EDFs"}
    if figs:
        lines += ["## Figures", ""]
        for key, files in figs.items():
            lines += [f"### {titles.get(key, key)}", "", figure(titles.get(key, key), files), ""]
    for cost, p in r.get("pareto", {}).items():
        if p["front"]:
            shown = p["front"][:25]
            lines += [f"### Pareto front: {metric_label(r)} against {cost}", "",
                      table(["trial", "arm", "seed", metric_label(r), cost],
                            [[q["number"], q["arm"], q["seed"], num(q[r["metric"]], 2, r["scale"]), count(q[cost])] for q in shown]),
                      "" if len(shown) == len(p["front"]) else f"\n({len(p['front']) - len(shown)} more in report.json)", ""]
    if r.get("diagrams"):
        lines += ["## Architectures", ""]
        for arm, d in r["diagrams"].items():
            if "error" in d:
                lines += [f"### {arm}", "", f"_no diagram: {d['error']}_", ""]
            else:
                lines += [f"### {arm}", "", f"![{arm}]({d['png']})  \n[SVG]({d['svg']}) · genome {d['genome_hash']}, {d['source']}", ""]
    if r["failures"]:
        lines += ["## Failed trials", "", table(["trial", "arm", "seed", "reason"],
                                                [[f["number"], f["arm"], f["seed"], f["reason"]] for f in r["failures"]]), ""]
    return "\n".join(lines).rstrip() + "\n"


def render_comparison(reports: list[dict[str, Any]]) -> str:
    """Several studies side by side: one row per arm, one column per study, then each study's verdicts."""
    names = [f"{r['experiment']}/{r['study']}" for r in reports]
    names = [n if names.count(n) == 1 else f"{n} ({i})" for i, n in enumerate(names)]
    arms = list(dict.fromkeys(a["arm"] for r in reports for a in r["arms"]))
    rows = []
    for arm in arms:
        row = [arm]
        for r in reports:
            a = next((x for x in r["arms"] if x["arm"] == arm), None)
            if a is None:
                row.append("")
                continue
            ci = f" [{num(a['ci_low'], 2, r['scale'])}, {num(a['ci_high'], 2, r['scale'])}]" if math.isfinite(a["ci_low"]) else ""
            row.append(f"{num(a['mean'], 2, r['scale'])}{ci} (n={a['n']})" + (" *baseline*" if a["baseline"] else ""))
        rows.append(row)
    lines = ["# Studies side by side", "",
             table(["study", "experiment", "metric", "baseline", "trials", "report"],
                   [[r["study"], r["experiment"], r["metric"], r["baseline"], r["trials"]["total"],
                     r.get("report_path", f"{r['path']}/report.md")] for r in reports]), "",
             "## Mean and 95% CI of each study's metric per arm", "",
             table(["arm", *names], rows), "", "## Verdicts", ""]
    for n, r in zip(names, reports):
        lines += [f"### {n}", ""] + [f"- {c['verdict']}" for c in r["comparisons"]] + \
                 [f"- {t['verdict']}" for t in r.get("design_space", {}).get("tests", [])] + [""]
        if not r["comparisons"]:
            lines += ["- no comparison (one arm or no baseline)", ""]
    return "\n".join(lines).rstrip() + "\n"
