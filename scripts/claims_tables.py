"""docs/claims.md's generated blocks, from scripts/claims/claims.yaml and the committed report.json files.

Each block sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``; everything else in the
document is written by hand. ``python scripts/claims.py tables`` rewrites them; ``--check`` only says whether
they are current (a test runs it).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from claims_tally import CATEGORIES, _f, classify, deciding_p, holm_by_report, relative_error, tally_text  # noqa: F401 - scripts/ on the path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
CLAIMS = ROOT / "scripts" / "claims" / "claims.yaml"
CLAIMS_MD = ROOT / "docs" / "claims.md"
SUITES = ("digits", "clutter")
OUTCOMES = ("better", "worse", "equivalent", "inconclusive")


def load_rules(path: Path = CLAIMS) -> dict[str, Any]:
    """claims.yaml's ``rules``: how a claim's category is read (fixed before a rerun; changes carry a dated note)."""
    import yaml

    return yaml.safe_load(path.read_text()).get("rules") or {}


def load_claims(path: Path = CLAIMS) -> list[dict[str, Any]]:
    import yaml

    claims = yaml.safe_load(path.read_text())["claims"]
    names = {c.get("innovation") for c in claims}
    for i, c in enumerate(claims):
        missing = {"innovation", "paper", "experiment", "arm", "metric", "expected"} - set(c)
        if missing:
            raise ValueError(f"{path.name}: claim {i} ({c.get('innovation')!r}) lacks {sorted(missing)}")
        if c["expected"] not in ("better", "worse", "equivalent"):
            raise ValueError(f"{path.name}: claim {c['innovation']!r}: expected must be better, worse or equivalent, "
                             f"got {c['expected']!r}")
        if c.get("counted_with") is not None and c["counted_with"] not in names:
            raise ValueError(f"{path.name}: claim {c['innovation']!r}: counted_with names no claim: {c['counted_with']!r}")
    return claims


def report_file(suite: str, claim: dict[str, Any]) -> Path:
    d = RESULTS / suite / claim["experiment"]
    return d / (f"report.baseline={claim['baseline']}.json" if claim.get("baseline") else "report.json")


def load_report(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def find(report: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any] | None:
    """The comparison row of the claim's arm on the claim's metric (primary or secondary outcome)."""
    rows = report["comparisons"] if report.get("metric") == claim["metric"] else report.get("secondary", {}).get(claim["metric"])
    for row in rows or []:
        if row.get("arm") == claim["arm"]:
            return row
    return None


def fmt_p(p: Any) -> str:
    if not isinstance(p, (int, float)) or not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def effect(row: dict[str, Any], metric: str) -> str:
    """Δ (arm - baseline) with its 95% interval: accuracies in points (and as relative error reduction), other
    outcomes in their own units."""
    w = row.get("welch")
    if not isinstance(w, dict) or not all(isinstance(w.get(k), (int, float)) for k in ("diff", "ci_low", "ci_high")):
        return ""
    scale, unit = (100.0, " points") if "acc" in metric else (1.0, "")
    digits = 2 if "acc" in metric or "loss" in metric else 1
    text = f"Δ {w['diff'] * scale:+.{digits}f}{unit} (95% CI {w['ci_low'] * scale:.{digits}f} to {w['ci_high'] * scale:.{digits}f})"
    rel = relative_error(row)
    return text + (f", error {-100 * rel:+.0f}% relative" if rel is not None else "")


def _judged(suite: str, claims: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """Each claim's category in a suite (None where no report holds its comparison), Holm within its family."""
    rules = load_rules()
    found, items = [], []
    for i, c in enumerate(claims):
        report = load_report(report_file(suite, c))
        row = find(report, c) if report else None
        found.append((report, row))
        if row is not None and "family_kind" not in row and c.get("counted", True):
            items.append((f"{report_file(suite, c)}:{c['metric']}", str(i), deciding_p(row)[0]))
    adjusted = holm_by_report(items)
    out: list[dict[str, Any] | None] = []
    for i, (c, (report, row)) in enumerate(zip(claims, found)):
        if row is None:
            out.append(None)
            continue
        p, test = deciding_p(row)
        pa = _f(row.get("p_adjusted")) if "family_kind" in row else adjusted.get((f"{report_file(suite, c)}:{c['metric']}", str(i)), p)
        out.append({**classify(c, report, row, pa, rules), "p": p, "test": test, "row": row})
    return out


def cell(suite: str, claim: dict[str, Any], judged: dict[str, Any] | None = None) -> tuple[str, str]:
    """(category, table cell) of a claim in a suite."""
    report = load_report(report_file(suite, claim))
    if report is None:
        recorded = claim.get(suite) if suite == "digits" else None
        if recorded:
            return "not recomputable", f"not recomputable under the current rules (recorded 2026-11-25: {recorded})"
        return "not run", "not yet run"
    if judged is None:
        claims = load_claims()
        judged = _judged(suite, claims)[next(i for i, c in enumerate(claims) if c is claim or c == claim)]
    if judged is None:
        return "missing", (f"no {claim['metric']} comparison of {claim['arm']} in the committed report (made before "
                           f"this outcome was stated): needs the rerun")
    row = judged["row"]
    cat, word = judged["category"], judged["word"]
    parts = [f"**{cat}**" + (f" ({word})" if word not in cat else "") + (f": {judged['why']}" if judged.get("why") else ""),
             effect(row, claim["metric"]),
             f"p {fmt_p(judged['p'])} ({judged['test']}), p_adj {fmt_p(judged['p_adjusted'])}"]
    if judged.get("budget"):
        parts.append(f"would need {judged['budget']}")
    if judged.get("note"):
        parts.append(judged["note"])
    return judged["category"], ", ".join(p for p in parts if p)


def claims_table(claims: list[dict[str, Any]] | None = None,
                 judged: dict[str, list[dict[str, Any] | None]] | None = None) -> tuple[str, str]:
    claims = claims if claims is not None else load_claims()
    judged = judged if judged is not None else {s: _judged(s, claims) for s in SUITES}
    rows, cats = [], {s: [] for s in SUITES}
    for i, c in enumerate(claims):
        cells = []
        for s in SUITES:
            k, text = cell(s, c, judged[s][i])
            cats[s].append(k)
            cells.append(text)
        if not c.get("counted", True):
            paper = f"({c['expected']}; a control, not counted)"
        elif c.get("counted_with"):
            paper = f"{c['expected']} (counted once, with {c['counted_with']!r})"
        else:
            paper = c["expected"]
        rows.append(f"| {c['innovation']} | {c['paper']} | `{c['experiment']}`: {c['arm']} vs "
                    f"{c.get('baseline') or 'baseline'}, {c['metric']} | {paper} | {cells[0]} | {cells[1]} |")
    counted = [c.get("counted", True) and not c.get("counted_with") for c in claims]
    cats = {s: [k for k, keep in zip(ks, counted) if keep] for s, ks in cats.items()}
    head = ("| innovation | the paper's claim (where) | comparison, outcome | the paper | digits | clutter |\n"
            "|---|---|---|---|---|---|")
    tallies = "\n".join(f"- **{s}**: {tally_text(cats[s])}" for s in reversed(SUITES))
    return tallies, head + "\n" + "\n".join(rows)


def test_accuracy(report: dict[str, Any], arm: dict[str, Any]) -> dict[str, Any] | None:
    """An arm's test accuracy summary, whichever outcome is the report's primary."""
    x = arm if report.get("metric") == "test/acc" else (arm.get("secondary") or {}).get("test/acc")
    return x if x and isinstance(x.get("mean"), (int, float)) and math.isfinite(x["mean"]) else None


def runs_table(suite: str) -> str:
    """Every experiment of a suite with a committed report: its command, time, trials and arms."""
    d = RESULTS / suite
    lines = []
    for path in sorted(d.glob("*/report.json")) if d.exists() else []:
        r = json.loads(path.read_text())
        arms = "; ".join(f"{a['arm']} {x['mean'] * 100:.1f}" + (f" ({x['ci_low'] * 100:.1f}–{x['ci_high'] * 100:.1f})"
                                                            if isinstance(x.get("ci_low"), (int, float)) else "")
                         for a in r.get("arms", []) if (x := test_accuracy(r, a)))
        minutes = r.get("wall_minutes")
        trials = r.get("trials", {})
        lines.append(f"| `{r['experiment']}` | {r.get('command', '').replace('python -m nasplay ', '')} | "
                     f"{'' if minutes is None else f'{minutes:.1f}'} | {trials.get('COMPLETE', 0)}/{trials.get('total', 0)} | "
                     f"{r['metric']} | {arms} |")
    if not lines:
        return "(no study of this suite has a committed report.json yet)"
    return ("| experiment | overrides (`python -m nasplay ...`) | wall minutes | trials complete | primary outcome | "
            "test accuracy per arm, % (95% CI) |\n|---|---|---:|---:|---|---|\n" + "\n".join(lines))


# The day studies began to record their environment (nasplay.environment): a report without one is older.
ENVIRONMENT_SINCE = "2026-12-06"


def environment_text(suite: str) -> str:
    """The environment(s) the suite's committed runs ran in, as their reports record it; the runs whose reports
    predate the record are named as such."""
    from nasplay.environment import describe

    d = RESULTS / suite
    # the fingerprint leaves out whether the tree had uncommitted changes: group by both, so each line says it right
    groups: dict[tuple[str, bool], tuple[dict[str, Any], list[str]]] = {}
    missing = []
    for path in sorted(d.glob("*/report.json")) if d.exists() else []:
        r = json.loads(path.read_text())
        envs = (r.get("environment") or {}).get("environments") or {}
        if not envs:
            missing.append(r["experiment"])
        for fp, env in envs.items():
            groups.setdefault((fp, bool(env.get("dirty"))), (env, []))[1].append(r["experiment"])
    old = f"not recorded (runs predate {ENVIRONMENT_SINCE})"
    if not groups:
        return f"Environment of these runs: {old}." if missing else "(no study of this suite has a committed report.json yet)"
    if len(groups) == 1 and not missing:
        (((fp, _), (env, _)),) = groups.items()
        return f"Environment of these runs (from their reports, fingerprint `{fp}`): {describe(env)}."
    lines = ["Environments of these runs, from their reports:"]
    lines += [f"- `{fp}` ({', '.join(f'`{n}`' for n in names)}): {describe(env)}" for (fp, _), (env, names) in groups.items()]
    if missing:
        lines.append(f"- {old}: {', '.join(f'`{n}`' for n in missing)}")
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    claims = load_claims()
    judged = {s: _judged(s, claims) for s in SUITES}
    tallies, table = claims_table(claims, judged)
    return {"tally": tallies, "claims": table, "runs-clutter": runs_table("clutter"), "runs-digits": runs_table("digits"),
            "env-clutter": environment_text("clutter"), "env-digits": environment_text("digits"),
            **summary_blocks(claims, judged), **measured_blocks(claims, judged)}


def render(text: str, made: dict[str, str]) -> str:
    for name, body in made.items():
        pattern = re.compile(rf"(<!-- generated:{re.escape(name)} -->\n).*?(<!-- /generated:{re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{CLAIMS_MD.name}: no <!-- generated:{name} --> ... <!-- /generated:{name} --> block")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def write_tables(check: bool = False) -> int:
    old = CLAIMS_MD.read_text()
    new = render(old, blocks())
    if check:
        if new != old:
            print(f"{CLAIMS_MD.relative_to(ROOT)} is not what the committed results give: run python scripts/claims.py tables")
            return 1
        print(f"{CLAIMS_MD.relative_to(ROOT)} is current")
        return 0
    CLAIMS_MD.write_text(new)
    print(f"wrote {CLAIMS_MD.relative_to(ROOT)}")
    return 0


# --- each experiment's measured block and each suite's summary ----------------------------------------------------------
def experiments() -> list[str]:
    """Every experiment of the claims suites (scripts/claims/<suite>.yaml), in the digits suite's order."""
    import yaml

    names: list[str] = []
    for s in SUITES:
        spec = yaml.safe_load((CLAIMS.parent / f"{s}.yaml").read_text()) or {}
        names += [n for n in spec.get("experiments") or {} if n not in names]
    return names


def under_rules(report: dict[str, Any]) -> bool:
    """Whether a report was made under the rules of 2026-12-06 (its rows name their Holm family)."""
    rows = list(report.get("comparisons") or []) + [r for rs in (report.get("secondary") or {}).values() for r in rs or []]
    return any("family_kind" in r for r in rows)


def seeds_of(arm: dict[str, Any]) -> int:
    if isinstance(arm.get("seeds"), list):
        return len(arm["seeds"])
    return int((arm.get("trained") or {}).get("n") or arm.get("n") or 0)


def _pct(x: Any) -> str:
    return f"{100 * x:.1f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def _design(suite: str, r: dict[str, Any]) -> str:
    seeds = sorted({seeds_of(a) for a in r.get("arms", [])})
    per_arm = (f"{seeds[0]} seeds per arm" if len(seeds) == 1 else
               f"{seeds[0]}–{seeds[-1]} seeds per arm" if seeds else "no arms")
    if r.get("design_space"):
        sizes = sorted({int(a.get("n") or 0) for a in r.get("arms", [])})
        cycled = len((r["arms"][0].get("seeds") or []) if r.get("arms") else [])
        per_arm = f"{'–'.join(str(n) for n in sizes)} sampled networks per design space, {cycled} seeds cycled"
    trials = r.get("trials") or {}
    minutes = r.get("wall_minutes")
    commit = ((r.get("environment") or {}).get("created") or {}).get("commit")
    rules = (f"made under the rules of {ENVIRONMENT_SINCE}" if under_rules(r) else
             f"made before the rules of {ENVIRONMENT_SINCE} and read under them")
    parts = [f"{len(r.get('arms', []))} arms", per_arm]
    if trials:
        parts.append(f"{trials.get('COMPLETE', 0)} of {trials.get('total', 0)} trials complete")
    if isinstance(minutes, (int, float)):
        parts.append(f"{minutes:.1f} min wall")
    parts.append(rules + (f", commit `{commit[:7]}`" if commit else ", no environment recorded"))
    cmd = (r.get("command") or "").strip()
    return (f"**{suite}**: " + ", ".join(parts) + "." + (f" Run: `{cmd}`." if cmd else " No command recorded."))


def _arm_table(r: dict[str, Any]) -> str:
    metric = r.get("metric", "test/acc")
    other = metric != "test/acc"
    head = ("| arm | params | MFLOPs | test accuracy, % (95% CI) | seeds trained |" + (f" {metric} |" if other else "")
            + "\n|---|---:|---:|---|---|" + ("---|" if other else ""))
    rows = []
    for a in r.get("arms", []):
        x = test_accuracy(r, a)
        acc = f"{_pct(x['mean'])} ({_pct(x.get('ci_low'))}–{_pct(x.get('ci_high'))})" if x else "n/a"
        tr = a.get("trained") or {}
        trained = f"{tr['k']} of {tr.get('n', seeds_of(a))}" if isinstance(tr.get("k"), int) else "n/a"
        params = f"{a['params'] / 1e3:,.0f} k" if isinstance(a.get("params"), (int, float)) else ""
        flops = f"{a['flops'] / 1e6:.1f}" if isinstance(a.get("flops"), (int, float)) else ""
        name = f"{a['arm']}" + (" (baseline)" if a.get("baseline") is True else "")
        row = f"| {name} | {params} | {flops} | {acc} | {trained} |"
        if other:
            t = a.get(metric)
            if isinstance(t, dict) and "reached" in t:
                med = t.get("median")
                row += f" {t['reached']} of {t.get('n')} reached" + (f", median {med:g}" if isinstance(med, (int, float)) else "") + " |"
            else:
                row += f" {a['mean']:.3f} |" if isinstance(a.get("mean"), (int, float)) else " n/a |"
        rows.append(row)
    return head + "\n" + "\n".join(rows)


def _populations(space: dict[str, Any]) -> str:
    """A design-space comparison's error distributions (edf_skip): mean error (bootstrap CI), min, median, KS."""
    rows = []
    for p in space["populations"]:
        ci = p.get("mean_error_ci") or [math.nan, math.nan]
        rows.append(f"| {p['arm']} | {p.get('n')} | {p['mean_error']:.1f} ({ci[0]:.1f}–{ci[1]:.1f}) | "
                    f"{p['min_error']:.1f} | {p['median_error']:.1f} |")
    tests = []
    for x in space.get("tests") or []:
        ks = x.get("ks") or {}
        if isinstance(ks.get("statistic"), (int, float)):
            tests.append(f"KS {x['arm']} vs {x['baseline']}: D {ks['statistic']:.2f}, permutation p "
                         f"{fmt_p(x.get('ks_permutation_p'))}")
    return ("| design space | networks | mean error, % (bootstrap 95% CI) | min error, % | median error, % |\n"
            "|---|---:|---|---:|---:|\n" + "\n".join(rows) + ("\n\n" + "; ".join(tests) + "." if tests else ""))


def _delta(row: dict[str, Any]) -> str:
    if row.get("kind") == "censored":
        a, b = row.get("arm_summary") or {}, row.get("baseline_summary") or {}
        return f"reached {a.get('reached')} of {a.get('n')} vs {b.get('reached')} of {b.get('n')}"
    return effect(row, row.get("metric", "")).replace("Δ ", "").replace("(95% CI ", "(")


def _rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(r.get("comparisons") or [])
    for rows in (r.get("secondary") or {}).values():
        out += list(rows or [])
    return out


def _exploratory(r: dict[str, Any], skip: set[tuple[str, str]]) -> list[tuple[dict[str, Any], str, float, float, str]]:
    """The report's comparisons no claim reads: (row, outcome word, deciding p, p_adj, test). A report made under the
    rules gives them; an older one is re-read as the claims are (Holm within each outcome's unclaimed rows)."""
    rows = [x for x in _rows(r) if (x.get("metric"), x.get("arm"), x.get("baseline")) not in skip]
    if under_rules(r):
        return [(x, str(x.get("outcome")), _f(x.get("p")), _f(x.get("p_adjusted")), str(x.get("test"))) for x in rows]
    ps = [deciding_p(x) for x in rows]
    adjusted = holm_by_report([(str(x.get("metric")), str(i), p) for i, (x, (p, _)) in enumerate(zip(rows, ps))])
    out = []
    for i, (x, (p, test)) in enumerate(zip(rows, ps)):
        pa = adjusted[(str(x.get("metric")), str(i))]
        word = classify({"expected": "better"}, r, x, pa, load_rules())["word"]
        out.append((x, word, p, pa, test))
    return out


def _beside_a_claim(row: dict[str, Any], claims: list[dict[str, Any]], default: str | None) -> bool:
    """An unclaimed comparison worth showing beside an experiment's claims: against a baseline a claim uses, of an arm
    no claim compares with another baseline (ablate_depth's plain-34 against VGG-11 is not shown)."""
    if row.get("baseline") not in {c.get("baseline") or default for c in claims}:
        return False
    elsewhere = {a for c in claims if (c.get("baseline") or default) != row.get("baseline")
                 for a in (c["arm"], c.get("baseline") or default)}
    return row.get("arm") not in elsewhere


def suite_measured(suite: str, name: str, claims: list[dict[str, Any]], judged: list[dict[str, Any] | None]) -> str:
    """What one suite's committed report of an experiment holds: its design, each arm, each comparison."""
    path = RESULTS / suite / name / "report.json"
    if not path.exists():
        return f"**{suite}**: no report of `{name}` is committed under `docs/results/{suite}/` yet."
    r = json.loads(path.read_text())
    lines = [_design(suite, r), "", _arm_table(r), ""]
    if (r.get("design_space") or {}).get("populations"):
        lines += [_populations(r["design_space"]), ""]
    head = ("| comparison (outcome) | result | Δ (95% CI) | deciding p (test) | p_adj | tally |\n"
            "|---|---|---|---|---|---|")
    rows, claimed = [], set()
    for c, j in zip(claims, judged):
        if c["experiment"] != name:
            continue
        base = c.get("baseline") or r.get("baseline")
        claimed.add((c["metric"], c["arm"], base))
        label = f"{c['arm']} vs {base} ({c['metric']})"
        if j is None:
            k, _ = cell(suite, c, j)
            rows.append(f"| {label} | — | — | — | — | {k} |")
            continue
        tally = j["category"] + ("" if c.get("counted", True) and not c.get("counted_with") else
                                 " (a control, not counted)" if not c.get("counted", True) else " (counted once, with its twin)")
        rows.append(f"| {label} | **{j['word']}** | {_delta(j['row'])} | {fmt_p(j['p'])} ({j['test']}) | "
                    f"{fmt_p(j['p_adjusted'])} | {tally} |")
    mine = [c for c in claims if c["experiment"] == name]
    for x, word, p, pa, test in _exploratory(r, claimed):
        if mine and not _beside_a_claim(x, mine, r.get("baseline")):
            continue
        rows.append(f"| {x.get('arm')} vs {x.get('baseline')} ({x.get('metric')}) | {word} | {_delta(x)} | "
                    f"{fmt_p(p)} ({test}) | {fmt_p(pa)} | exploratory |")
    if rows:
        lines += [head, *rows]
    else:
        lines.append("(the report holds no comparison)")
    return "\n".join(lines).rstrip()


def measured_blocks(claims: list[dict[str, Any]] | None = None,
                    judged: dict[str, list[dict[str, Any] | None]] | None = None) -> dict[str, str]:
    """``measured-EXPERIMENT``: both suites' reports of each experiment of the claims suites."""
    claims = claims if claims is not None else load_claims()
    judged = judged if judged is not None else {s: _judged(s, claims) for s in SUITES}
    return {f"measured-{n}": "\n\n".join(suite_measured(s, n, claims, judged[s]) for s in SUITES) for n in experiments()}


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def suite_summary(suite: str, claims: list[dict[str, Any]], judged: list[dict[str, Any] | None]) -> str:
    """A suite's counted claims by category, by name, and what its reports are: seeds per arm, rules, commits."""
    by: dict[str, list[str]] = {}
    for c, j in zip(claims, judged):
        if not c.get("counted", True) or c.get("counted_with"):
            continue
        k = j["category"] if j else cell(suite, c, j)[0]
        by.setdefault(k, []).append(c["innovation"])
    order = [*CATEGORIES, *sorted(k for k in by if k not in CATEGORIES)]
    lines = [f"- **{k}** ({len(by[k])}): " + "; ".join(by[k]) + "." for k in order if by.get(k)]
    d = RESULTS / suite
    reports = [json.loads(p.read_text()) for p in sorted(d.glob("*/report.json"))] if d.exists() else []
    seeds: dict[str, list[str]] = {}
    for r in reports:
        if r.get("design_space"):
            continue
        ns = sorted({seeds_of(a) for a in r.get("arms", [])})
        key = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}" if ns else "no"
        seeds.setdefault(key, []).append(r["experiment"])
    old = [r["experiment"] for r in reports if not under_rules(r)]
    commits = sorted({c[:7] for r in reports if (c := ((r.get("environment") or {}).get("created") or {}).get("commit"))})
    facts = [f"{len(reports)} of {len(experiments())} experiments have a report."]
    facts += [f"{k} seeds per arm: {len(v)} report{'s' if len(v) != 1 else ''}" + (f" ({_names(v)})" if len(v) <= 6 else "") + "."
              for k, v in sorted(seeds.items(), key=lambda kv: -len(kv[1]))]
    facts.append(f"Made under the rules of {ENVIRONMENT_SINCE}: {len(reports) - len(old)}" +
                 (f"; before them, read under them: {len(old)}" + (f" ({_names(old)})" if len(old) <= 6 else "")
                  if old else "") + ".")
    if commits:
        facts.append("Commits recorded: " + ", ".join(f"`{c}`" for c in commits) + ".")
    return " ".join(facts) + ("\n\n" + "\n".join(lines) if lines else "")


def summary_blocks(claims: list[dict[str, Any]] | None = None,
                   judged: dict[str, list[dict[str, Any] | None]] | None = None) -> dict[str, str]:
    """``summary-SUITE``: each suite's counted claims by category and what its reports hold."""
    claims = claims if claims is not None else load_claims()
    judged = judged if judged is not None else {s: _judged(s, claims) for s in SUITES}
    return {f"summary-{s}": suite_summary(s, claims, judged[s]) for s in SUITES}
