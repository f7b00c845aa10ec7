"""Render a report (:meth:`nasplay.report.analyse.Report.to_dict`, what report.json holds) as Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nasplay import environment
from nasplay.report.glossary import define

TESTS = {"welch": "Welch's t-test", "permutation": "two-sided permutation test",
         "exact": "the exact permutation test (every relabelling) up to 10 seeds per arm, Welch's t-test above"}


TIMES = ("epochs_to_target", "steps_to_target", "steps_to_target_baseline")  # censored time-to-target outcomes
HOLM = "Holm-adjusted within the claimed and, apart, the exploratory comparisons of each outcome"


def baseline_line(r: dict[str, Any]) -> str:
    """The report's baseline: one arm, or with several bases each base's own (a family per base, Holm within each)."""
    fams = sorted(set((r.get("baselines") or {}).values()))
    if fams:
        return (f"- baselines, one per base (each base's arms are compared with its own, Holm within each family): "
                f"{', '.join(f'`{b}`' for b in fams)} ({r['baseline_source']})")
    return f"- baseline: `{r['baseline']}` ({r['baseline_source']})" if r["baseline"] else "- baseline: none"


def defined(metric: str) -> str:
    """``: its definition`` for a metric the glossary knows (the report defines each outcome where it uses it)."""
    text = define(metric)
    return f": {text}" if text else ""


def verdict_cell(c: dict[str, Any]) -> str:
    """A comparison's outcome in bold, or, where the report withholds it (a smoke run, an arm that did not train), why."""
    return f"no verdict ({c['withheld']})" if c.get("withheld") else f"**{c['outcome']}**"


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


def _interval(lo: Any, hi: Any, digits: int = 2, scale: float = 1.0) -> str:
    return f"{num(lo, digits, scale)} – {num(hi, digits, scale)}" if isinstance(lo, (int, float)) and math.isfinite(lo) else "–"


def arms_section(report: dict[str, Any]) -> str:
    s = report["scale"]
    ci = "95% CI"
    first = "time to target" if report["metric"] in TIMES else f"mean {metric_label(report)}"
    header = ["arm", "n", first, "std", ci, "MDE", "params", "FLOPs", "time (s)", "img/s", "pruned", "failed"]
    trained_col = any(a.get("trained") and a["trained"].get("metric") != report["metric"] for a in report["arms"])
    if trained_col:
        header.append("seeds trained")
    rows = []
    for a in report["arms"]:
        name = f"**{a['arm']}** (baseline)" if a["baseline"] else a["arm"]
        tr = a.get("trained")
        tt = a.get(report["metric"]) if report["metric"] in TIMES else None
        if tt:
            # Censored: a mean of the seeds that got there would hide those that did not.
            med = "not reached by half" if isinstance(tt["median"], float) and math.isinf(tt["median"]) else num(tt["median"], 1)
            mean, interval = f"{tt['reached']} of {tt['n']} reached; Kaplan-Meier median {med}", "–"
        elif tr and tr["k"] < tr["n"] and tr.get("metric") == report["metric"]:
            # A network left at chance: the count is the result, not a mean with an interval across two regimes.
            mean = f"{tr['k']} of {tr['n']} seeds trained" + (f" (those: {num(tr['mean_of_trained'], 2, s)})" if tr["k"] else "")
            interval = "–"
        else:
            mean, interval = num(a["mean"], 2, s), _interval(a["ci_low"], a["ci_high"], 2, s)
        rows.append([name, a["n"], mean, "–" if tt else num(a["std"], 2, s), interval, "–" if tt else num(a.get("mde"), 2, s),
                     count(a["params"]), count(a["flops"]), num(a["wall_time"], 1), count(a["imgs_per_sec"]), a["pruned"], a["failed"]])
        if trained_col:
            rows[-1].append(f"{tr['k']} of {tr['n']}" if tr else "–")
    out = [table(header, rows)]
    method = next((a.get("ci_method") for a in report["arms"]), "t")
    notes = []
    if method and method.startswith("logit"):
        notes.append("95% CI: Student's t on the logit scale (stays inside 0–100%)" +
                     (", its variance the seeds' plus the binomial noise of the " + method.split("noise of ", 1)[1]
                      if "noise of" in method else ", from the seeds' spread only (evaluation-set size unknown)") +
                     "; report.json also has the plain t-interval and a two-level bootstrap (seeds, then test images).")
    notes.append(f"MDE: the smallest true difference from its reference this study detects with {int(100 * report.get('power', 0.8))}% "
                 f"power (two-sided t-test, α={report['alpha']}) at its seeds and pooled spread.")
    if report.get("trained_rule"):
        notes.append(f"Trained: {report['trained_rule']}.")
    out += ["", " ".join(notes)]
    return "\n".join(out)


def _time_table(report: dict[str, Any], m: str) -> str:
    rows = []
    for a in report["arms"]:
        t = a.get(m)
        if not t:
            continue
        med = "not reached by half" if isinstance(t["median"], float) and math.isinf(t["median"]) else num(t["median"], 1)
        rows.append([a["arm"], f"{t['reached']} of {t['n']}", med, ", ".join(num(x, 0) for x in t["times"]) or "–",
                     ", ".join(num(x, 0) for x in t["censored_at"]) or "–"])
    return table(["arm", "reached the target", "Kaplan-Meier median", "times", "never reached (censored at)"], rows)


def _named(c: dict[str, Any]) -> str:
    """A verdict that names its arm (the "no difference" wording starts with the reference)."""
    v = c["verdict"]
    return v if v.startswith(c["arm"]) else f"{c['arm']}: {v}"


def comparisons_section(comps: list[dict[str, Any]], scale: float, unit: str) -> str:
    if not comps:
        return "_No arm to compare (one arm, or no baseline)._"
    if comps[0].get("kind") == "censored":
        rows = [[c["arm"], c["baseline"], num(c["logrank_z"], 2), p_value(c["p"]), p_value(c["logrank_p"]),
                 f"{p_value(c['p_adjusted'])} ({c.get('family_kind', 'all')})", p_value(c["fisher_p"]), verdict_cell(c)]
                for c in comps]
        return (table(["arm", "vs", "log-rank z", "permutation log-rank p", "asymptotic p", "adjusted p (family)",
                       "Fisher p (reached)", "outcome"], rows)
                + "\n\n" + "\n".join(f"- {c['verdict']}" for c in comps))
    u = f" ({unit})" if unit else ""
    header = ["arm", "vs", f"Δ mean{u}", "95% CI of Δ", "rel. error reduction", "Hedges' g", "deciding test", "p",
              "Welch p", "adjusted p (family)", f"MDE{u}", "margin", "TOST p (adj.)", "outcome"]
    rows = []
    for c in comps:
        w, e = c["welch"], c["effect"]
        eq = c.get("equivalence") or {}
        rel = c.get("relative_error") or {}
        rows.append([c["arm"], c["baseline"], num(w["diff"], 2, scale), f"{num(w['ci_low'], 2, scale)} to {num(w['ci_high'], 2, scale)}",
                     f"{num(rel['reduction'], 1, 100)}%" if rel else "–",
                     f"{num(e['g'], 2)} ({e['magnitude']})", c.get("test", ""), p_value(c["p"]), p_value(w["p"]),
                     f"{p_value(c['p_adjusted'])} ({c.get('family_kind', 'all')})", num(c.get("mde"), 2, scale),
                     "–" if c.get("margin") is None else f"±{num(c['margin'], 2)}",
                     p_value(eq.get("p_adjusted", math.nan)), verdict_cell(c)])
    verdicts = "\n".join(f"- {_named(c)}" if not c.get("withheld") else f"- no verdict ({c['withheld']}); the tests read: {_named(c)}"
                         for c in comps)
    claims = [c for c in comps if c.get("claimed")]
    extra = ""
    if claims:
        extra = "\n\n" + "\n".join(
            f"- The paper's claimed effect of {c['arm']}, {num(c['claimed']['effect'], 2)}{(' ' + unit) if unit else ''}: "
            + (f"{c['claimed']['seeds_needed']} seeds per arm would detect it with 80% power with the deciding test at this spread "
               f"(this study: {c['n']})." if c["claimed"]["seeds_needed"] else "no finite number of seeds at this spread (or no spread).")
            for c in claims)
    return table(header, rows) + "\n\n**Verdicts**\n\n" + verdicts + extra


def outcomes_section(report: dict[str, Any]) -> str:
    o = report["outcomes"]
    adj = "Holm" if report["adjust"] == "holm" else "no"
    def margin(m: str) -> str:
        v = o["margins"].get(m)
        return f"equivalence margin ±{v:g}" if v is not None else "no equivalence margin stated: it cannot be called equivalent"
    lines = []
    if o["stated"]:
        lines.append(f"- primary: `{o['primary']}`{defined(o['primary'])} ({margin(o['primary'])})" +
                     ("" if o["primary_stated"] in (None, o["primary"]) else f" — **not the pre-stated `{o['primary_stated']}`**"))
        for m in o["secondary"]:
            lines.append(f"- secondary: `{m}`{defined(m)} ({margin(m)})")
        if o.get("source"):
            lines.append(f"- the paper's claim: {o['source']}")
    else:
        lines.append(f"- no outcomes stated in the experiment (experiment.outcomes): the primary metric is `{report['metric']}`"
                     f"{defined(report['metric'])}, "
                     f"{margin(report['metric'])}")
    lines.append(f"- the deciding p: {TESTS.get(report['test'], report['test'])}; Welch's p and interval beside it")
    lines.append(f"- families: within each outcome, {adj} adjustment over the claimed comparisons (a claimed effect stated in "
                 f"advance) and, apart, over the exploratory rest, at α={report['alpha']}; each comparison "
                 "ends as **better** or **worse** (adjusted p < α), **equivalent** (both one-sided tests of the margin, adjusted, "
                 "< α) or **inconclusive**. Time-to-target outcomes keep the seeds that never got there (censored): the "
                 "permutation log-rank for when (exact up to 10 seeds per arm), Fisher's exact test for how many.")
    return "\n".join(lines)


def figure(title: str, files: Sequence[str]) -> str:
    png = next((f for f in files if f.endswith(".png")), None)
    svg = next((f for f in files if f.endswith(".svg")), None)
    if not png:
        return ""
    return f"![{title}]({png})" + (f"  \n[SVG]({svg})" if svg else "")


def design_space_section(ds: dict[str, Any]) -> str:
    pops = table(["population", "n", f"mean {ds['error']}", "95% bootstrap CI", f"min {ds['error']}", f"median {ds['error']}",
                  "DKW ±"],
                 [[p["arm"], p["n"], num(p["mean_error"]), f"{num(p['mean_error_ci'][0])} – {num(p['mean_error_ci'][1])}",
                   num(p["min_error"]), num(p["median_error"]), num(p.get("dkw_epsilon"), 3)] for p in ds["populations"]])
    header = ["population", "vs", "KS D", "KS p", "permutation p"] + \
             [h for m in ds["measures"] for h in (f"D ({m}-normalised)", f"permutation p ({m})", f"Δ mean ({m}-normalised, 95% CI)")] + \
             ["adjusted p", "outcome"]
    rows = []
    for t in ds["tests"]:
        r = [t["arm"], t["baseline"], num(t["ks"]["statistic"]), p_value(t["ks"]["p"]), p_value(t["ks_permutation_p"])]
        for m in ds["measures"]:
            k = t[f"ks_normalised_{m}"]
            lo, hi = t[f"mean_diff_normalised_{m}_ci"]
            r += [num(k["statistic"]), p_value(k.get("permutation_p")), f"{num(t[f'mean_diff_normalised_{m}'])} ({num(lo)} to {num(hi)})"]
        r += [p_value(t["p_adjusted"]), f"**{t['outcome']}**"]
        rows.append(r)
    verdicts = "\n".join(f"- {t['verdict']}" for t in ds["tests"])
    return (f"{pops}\n\n{table(header, rows)}\n\nComplexity normalisation: {ds['bins']} log-spaced bins over the shared range, "
            "weights equalise each population's complexity distribution (Radosavovic et al. 2019); the weights are recomputed "
            "in every bootstrap resample and every permutation. DKW ±: the half-width of the simultaneous 95% band drawn "
            "around each EDF. With a `pair` column the outcome reads the paired sign-flip test.\n\n" + verdicts)


def _is_accuracy(comps: list[dict[str, Any]]) -> bool:
    """A secondary accuracy stored in [0, 1] (shown in points like the primary)."""
    means = [x for c in comps for x in (c["mean"], c["mean_baseline"]) if isinstance(x, (int, float)) and math.isfinite(x)]
    return "acc" in comps[0]["metric"] and bool(means) and all(0 <= x <= 1 for x in means)


def compute_section(report: dict[str, Any]) -> str:
    """How equal "equal compute" was: each arm's params and FLOPs as trained and their ratios to the baseline's."""
    computes = [(a["arm"], c) for a in report["arms"] if (c := a.get("compute"))]
    grouped = any(c.get("grouping") and not c["grouping"].startswith("1x") for _, c in computes)
    rows = [[arm, count(c["params"]), f"{c['params_ratio']:.3f}", count(c["flops"]), f"{c['flops_ratio']:.3f}",
             *([c.get("grouping") or "—"] if grouped else [])] for arm, c in computes]
    keep = computes[0][1]["keep"]
    note = ("; groups x channels per group: the first bottleneck stage's grouped conv, ResNeXt's \"C x d\" (Table 3)"
            if grouped else "")
    return table(["arm", "params", "× baseline", "FLOPs", "× baseline", *(["groups x width"] if grouped else [])], rows) + \
        f"\n\nCompute held: {keep} (experiment.keep), measured on each network exactly as it trained{note}."


def tuning_section(tuning: dict[str, Any]) -> str:
    """experiment.tune: what each arm's tuning tried, its validation objective, and what it chose."""
    names = tuning["settings"]
    rows = []
    for arm, d in tuning["arms"].items():
        tried = "; ".join(f"{', '.join(str(r['setting'][n]) for n in names)}: {num(r['mean'], 4)} ({r['finished']}/{r['n']})"
                          for r in d["curve"])
        rows.append([arm, ", ".join(f"{n}={d['chosen'].get(n)}" for n in names), tried])
    on = tuning.get("criterion", "objective")
    judged = "mean validation objective, finished/run" if on == "objective" else f"mean {on}, seeds that have it/run"
    how = "" if on == "objective" else (f" Settings were judged by {on} (experiment.tune_on): the fewest tuning seeds "
                                        f"without it first, then its mean, then the validation objective.")
    return table(["arm", "chosen", f"tried ({', '.join(names)}: {judged})"], rows) + \
        f"\n\nEach arm tuned on its own seeds, not the comparison's; the comparison's seeds trained at the chosen value.{how}"


def budgets_section(report: dict[str, Any]) -> str:
    """Every budget's comparison of the primary outcome, so that no verdict rests on one budget."""
    s = report["scale"]
    rows = []
    for b in report["budgets"]:
        for c in b["comparisons"]:
            w = c.get("welch", {})
            rows.append([f"x{b['budget']:g} ({num(b['epochs'], 0)} epochs)", c["arm"], c["baseline"], num(w.get("diff"), 2, s),
                         _interval(w.get("ci_low"), w.get("ci_high"), 2, s), p_value(c.get("p_adjusted")), c.get("outcome", "")])
    return table(["budget", "arm", "against", "Δ", "95% CI", "p (adjusted)", "outcome"], rows)


def render(report: dict[str, Any]) -> str:
    """The whole report of one study."""
    r = report
    trials = ", ".join(f"{k.lower()} {v}" for k, v in r["trials"].items() if k not in ("total", "tuning", "compared"))
    if "compared" in r["trials"]:
        tuned = f"{r['trials']['tuning']} tuned the arms, " if r["trials"].get("tuning") else ""
        at = f" (budget x{r['budget']:g})" if r.get("budget") is not None else ""
        trials += f"; {tuned}{r['trials']['compared']} are compared below{at}"
    lines = [f"# {r['experiment']} — {r['study']}", "",
             f"- study directory: `{r['path']}`",
             f"- kind: {r['kind']}; metric: `{r['metric']}` ({'higher' if r['higher_is_better'] else 'lower'} is better)",
             f"- trials: {r['trials']['total']} ({trials})",
             baseline_line(r),
             f"- statistics: mean and a 95% interval inside the metric's range over seeds; {TESTS.get(r['test'], r['test'])} at "
             f"α={r['alpha']} for the verdicts, {HOLM if r.get('adjust') == 'holm' else 'unadjusted'}; "
             "equivalence by two one-sided tests (TOST) against the stated margin; Hedges' g with the pooled SD; Welch's "
             "t-test and the permutation test beside the deciding p", ""]
    if r["notes"]:
        lines += ["> " + n for n in r["notes"]] + [""]
    if "outcomes" in r:
        lines += ["## Outcomes", "", outcomes_section(r), ""]
    lines += ["## Arms", "", arms_section(r), ""]
    if any(a.get("compute") for a in r["arms"]):
        lines += ["### Compute as trained", "", compute_section(r), ""]
    if r.get("tuning"):
        lines += ["### Per-arm tuning", "", tuning_section(r["tuning"]), ""]
    for m in TIMES:
        if any(m in a for a in r["arms"]):
            lines += [f"### {m}: seeds that reached the target", "", _time_table(r, m), ""]
    ref = "the previous rung" if r["reference"] == "previous rung" else "the baseline"
    at = f", budget x{r['budget']:g}" if r.get("budget") is not None else ""
    lines += [f"## Primary outcome: each arm against {ref} (`{r['metric']}`{at})", "",
              *([f"`{r['metric']}`{defined(r['metric'])}.", ""] if define(r["metric"]) else []),
              comparisons_section(r["comparisons"], r["scale"], r["unit"]), ""]
    if r.get("budgets"):
        lines += ["### Effect against the budget", "", budgets_section(r), ""]
    for m, comps in r.get("secondary", {}).items():
        scale = 100.0 if comps and comps[0].get("kind") == "means" and _is_accuracy(comps) else 1.0
        better = "lower" if any(k in m for k in ("loss", "err", "time", "to_target")) else "higher"
        lines += [f"### {m} ({better} is better; secondary)", "", *([f"`{m}`{defined(m)}.", ""] if define(m) else [])]
        per_arm = [(a["arm"], a["secondary"][m]) for a in r["arms"] if m in a.get("secondary", {})]
        if per_arm:
            digits = 2 if scale == 100 else 3
            lines += [table(["arm", "n", f"mean {m}" + (" (%)" if scale == 100 else ""), "std", "95% CI"],
                            [[arm, x["n"], num(x["mean"], digits, scale), num(x["std"], digits, scale),
                              _interval(x["ci_low"], x["ci_high"], digits, scale)] for arm, x in per_arm]), ""]
        lines += [comparisons_section(comps, scale, "points" if scale == 100 else ""), ""]
    if "design_space" in r:
        lines += ["## Design spaces: error EDFs", "", design_space_section(r["design_space"]), ""]
    figs = r.get("figures", {})
    titles = {"budgets": "Effect against the budget", "tuning": "Per-arm tuning",
              "effects": "Differences from the baseline", "learning_curves": "Learning curves (mean ± std over seeds)",
              "pareto": "Accuracy against FLOPs, Pareto front", "edf": "Error EDFs"}
    if figs:
        lines += ["## Figures", ""]
        for key, files in figs.items():
            lines += [f"### {titles.get(key, key)}", "", figure(titles.get(key, key), files), ""]
    for cost, p in r.get("pareto", {}).items():
        if p["front"]:
            shown = p["front"][:25]
            pm, ps = p.get("metric", r["metric"]), r.get("pareto_scale", r["scale"])
            label = f"{pm} (%)" if ps == 100 else pm
            lines += [f"### Pareto front: {label} against {cost}", "",
                      table(["trial", "arm", "seed", label, cost],
                            [[q["number"], q["arm"], q["seed"], num(q[pm], 2, ps), count(q[cost])] for q in shown]),
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
    lines += environment.markdown(r.get("environment"))
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
        lines += [f"### {n}", ""] + [f"- {_named(c)}" for c in r["comparisons"]] + \
                 [f"- {t['verdict']}" for t in r.get("design_space", {}).get("tests", [])] + [""]
        if not r["comparisons"]:
            lines += ["- no comparison (one arm or no baseline)", ""]
    return "\n".join(lines).rstrip() + "\n"
