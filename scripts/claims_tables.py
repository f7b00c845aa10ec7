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


def claims_table() -> tuple[str, str]:
    claims = load_claims()
    judged = {s: _judged(s, claims) for s in SUITES}
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
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    missing = []
    for path in sorted(d.glob("*/report.json")) if d.exists() else []:
        r = json.loads(path.read_text())
        envs = (r.get("environment") or {}).get("environments") or {}
        if not envs:
            missing.append(r["experiment"])
        for fp, env in envs.items():
            groups.setdefault(fp, (env, []))[1].append(r["experiment"])
    old = f"not recorded (runs predate {ENVIRONMENT_SINCE})"
    if not groups:
        return f"Environment of these runs: {old}." if missing else "(no study of this suite has a committed report.json yet)"
    if len(groups) == 1 and not missing:
        ((fp, (env, _)),) = groups.items()
        return f"Environment of these runs (from their reports, fingerprint `{fp}`): {describe(env)}."
    lines = ["Environments of these runs, from their reports:"]
    lines += [f"- `{fp}` ({', '.join(f'`{n}`' for n in names)}): {describe(env)}" for fp, (env, names) in groups.items()]
    if missing:
        lines.append(f"- {old}: {', '.join(f'`{n}`' for n in missing)}")
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    tallies, table = claims_table()
    return {"tally": tallies, "claims": table, "runs-clutter": runs_table("clutter"), "runs-digits": runs_table("digits"),
            "env-clutter": environment_text("clutter"), "env-digits": environment_text("digits")}


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
