"""The verdict of each claim under the rules of scripts/claims/claims.yaml (``rules``), from a committed report.json.

A claim's category, one of :data:`CATEGORIES`:

* **reproduced** — the deciding test's Holm-adjusted p < alpha in the paper's direction and the size compatible with
  the paper's (``rules.size``), or, where the paper reports no difference, equivalence shown within the margin;
* **direction only** — significant in the paper's direction, the size not compatible (a network that trains at this
  budget against one that barely does, not the paper's effect);
* **untestable at this budget** — an arm with no seed above chance, a time target no seed of either arm reached, or
  a minimum detectable effect at least ``rules.untestable_mde_ratio`` times the paper's effect where the paper claims
  a difference and the measured one is not significant in the paper's direction (a comparison not powered for the
  paper's effect cannot contradict it: a significant difference the other way there says the budget does not train
  the arm to where the claim is about); the row names the budget that would test it;
* **contradicted** — a powered comparison in which both arms trained, against the paper: significant the other way,
  a difference where the paper reports none, or equivalence where it reports one;
* **inconclusive** — none of these.

Reports written before these rules (no ``family_kind`` in their rows) are re-read under them from what they hold:
the exact permutation p over every relabelling (``permutation``, exact at 3 + 3 seeds), the exact permutation
log-rank from the seeds' times and censoring budgets, the deciding test's MDE from the pooled SD (nasplay.report.power);
Holm over the claimed comparisons the claims list reads from the same report and outcome.
"""

from __future__ import annotations

import math
from typing import Any

CATEGORIES = ("reproduced", "direction only", "untestable at this budget", "contradicted", "inconclusive")
_NUM = (int, float)


def _f(x: Any) -> float:
    return float(x) if isinstance(x, _NUM) and not isinstance(x, bool) else math.nan


def paper_size(claim: dict[str, Any]) -> dict[str, float]:
    """The paper's effect of the arm against the baseline: ``points`` (accuracy, > 0 better), ``relative`` (error
    reduction), ``ratio`` (time arm / baseline), from claims.yaml's ``paper_errors``, ``paper_points``, ``paper_ratio``."""
    out: dict[str, float] = {}
    if claim.get("paper_errors"):
        arm, base = (float(v) for v in claim["paper_errors"])
        out["points"], out["relative"] = base - arm, (base - arm) / base
    elif claim.get("paper_points") is not None:
        out["points"] = float(claim["paper_points"])
    if claim.get("paper_ratio") is not None:
        out["ratio"] = float(claim["paper_ratio"])
    return out


def deciding_p(row: dict[str, Any]) -> tuple[float, str]:
    """The row's p under the rules: its own where the report already uses them, else re-read from what it holds."""
    if "family_kind" in row:
        return _f(row.get("p")), str(row.get("test"))
    if row.get("kind") == "censored":
        from nasplay.report.exact import permutation_logrank

        a, b = row["arm_summary"], row["baseline_summary"]
        r = permutation_logrank(a["times"], a["censored_at"], b["times"], b["censored_at"])
        return r.p, "exact permutation log-rank" if r.exact else "permutation log-rank"
    perm = row.get("permutation") or {}
    if perm.get("exact") and max(row.get("n", 0), row.get("n_baseline", 0)) <= 10:
        return _f(perm.get("p")), "exact permutation"
    return _f((row.get("welch") or {}).get("p")), "welch"


def holm_by_report(items: list[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    """Holm within each (report file, metric) family: ``items`` are (family key, claim key, p)."""
    from nasplay.report.stats import holm

    out: dict[tuple[str, str], float] = {}
    for fam in dict.fromkeys(k for k, _, _ in items):
        members = [(c, p) for k, c, p in items if k == fam]
        for (c, _), pa in zip(members, holm([p for _, p in members])):
            out[(fam, c)] = float(pa)
    return out


def _arm_trained(report: dict[str, Any], arm: str) -> int | None:
    for a in report.get("arms", []):
        if a.get("arm") == arm and isinstance(a.get("trained"), dict):
            return int(a["trained"].get("k", 0))
    return None


def classify(claim: dict[str, Any], report: dict[str, Any], row: dict[str, Any], p_adj: float,
             rules: dict[str, Any]) -> dict[str, Any]:
    """The category of one claim and the numbers behind it (``why``: the reason in words, ``budget``: what would test it)."""
    from nasplay.report import power

    alpha = float(report.get("alpha", 0.05))
    expected = claim["expected"]
    size = paper_size(claim)
    better = row.get("better")
    sig = math.isfinite(p_adj) and p_adj < alpha and better is not None
    word = ("better" if better else "worse") if sig else "inconclusive"
    out: dict[str, Any] = {"word": word, "p_adjusted": p_adj}
    censored = row.get("kind") == "censored"
    eq = row.get("equivalence") or {}
    if not sig and not censored and math.isfinite(_f(eq.get("p_adjusted"))) and _f(eq["p_adjusted"]) < alpha:
        spread = [a.get("std") for a in report.get("arms", []) if a.get("arm") in (row["arm"], row["baseline"])]
        test_size = report.get("test_size") if "acc" in row.get("metric", "") else None
        margin = _f(row.get("margin_raw"))
        if all(s == 0 for s in spread):
            out["note"] = "equivalence not counted: no spread between seeds"
        elif test_size and margin < 1 / test_size:
            out["note"] = f"equivalence not counted: the margin is below one of the {test_size} test images"
        else:
            word = out["word"] = "equivalent"
    # Untestable: an arm that does not train, a target nobody reached.
    untrained = [a for a in (row["arm"], row["baseline"]) if _arm_trained(report, a) == 0]
    if untrained:
        return {**out, "category": CATEGORIES[2], "why": f"{' and '.join(untrained)}: no seed above chance",
                "budget": "a budget at which both arms train (more epochs or a wider network)"}
    if censored and row["arm_summary"]["reached"] + row["baseline_summary"]["reached"] == 0:
        return {**out, "category": CATEGORIES[2], "why": "no seed of either arm reached the target",
                "budget": "a target both arms reach within the budget, or a longer budget"}
    # The power of the deciding test against the paper's effect (accuracy points; the report's own units).
    mde = need = math.nan
    scale = 100.0 if "acc" in row.get("metric", "") else 1.0
    if not censored:
        sd = _f((row.get("effect") or {}).get("pooled_sd"))
        mde = power.mde(sd, int(row.get("n", 0)), int(row.get("n_baseline", 0)), alpha=alpha) if row.get("n", 0) >= 2 else math.nan
        if "points" in size and scale == 100:
            need = power.seeds_needed(size["points"] / 100, sd, alpha=alpha)
            out["mde_points"], out["seeds_needed"] = mde * 100, need
    ratio = float(rules.get("untestable_mde_ratio", 3))
    underpowered = expected != "equivalent" and "points" in size and scale == 100 and size["points"] != 0 \
        and not mde * 100 < ratio * abs(size["points"])
    budget = (f"about {need:,} seeds per arm" if isinstance(need, int) else "more than 100,000 seeds per arm at this spread")
    if expected == "equivalent":
        if word == "equivalent":
            return {**out, "category": CATEGORIES[0], "why": "equivalent within the margin, as the paper reports no difference"}
        if sig:
            return {**out, "category": CATEGORIES[3], "why": f"{word}, where the paper reports no difference"}
        return {**out, "category": CATEGORIES[4], "why": "neither a difference nor equivalence shown"}
    if sig and word == expected:
        ok, how = compatible(row, size, rules)
        return {**out, "category": CATEGORIES[0] if ok else CATEGORIES[1], "why": how}
    if underpowered:
        m = "∞" if math.isinf(mde) else f"{mde * 100:.1f}"
        return {**out, "category": CATEGORIES[2], "budget": budget,
                "why": f"MDE {m} points against the paper's {abs(size['points']):g}"}
    if sig or word == "equivalent":
        return {**out, "category": CATEGORIES[3], "why": f"{word}, where the paper reports {expected}"}
    return {**out, "category": CATEGORIES[4], "why": "no difference shown"}


def compatible(row: dict[str, Any], size: dict[str, float], rules: dict[str, Any]) -> tuple[bool, str]:
    """The size rule (claims.yaml ``rules.size``): the paper's relative error reduction inside the 95% interval of the
    measured one (or its points inside the interval of the difference, where the paper gives no error level); a time
    ratio within a factor ``rules.ratio_factor`` of the paper's; a paper that states no size: the direction is the claim."""
    w = row.get("welch") or {}
    if row.get("kind") == "censored":
        if "ratio" not in size:
            return True, "the paper states the direction, no size"
        a, b = _f(row["arm_summary"].get("median")), _f(row["baseline_summary"].get("median"))
        if not (math.isfinite(a) and math.isfinite(b) and b > 0):
            return False, "the median time of an arm is not reached: no ratio to compare"
        r, f = a / b, float(rules.get("ratio_factor", 2))
        return (size["ratio"] / f <= r <= size["ratio"] * f,
                f"time ratio {r:.2f} against the paper's {size['ratio']:.2f} (compatible within a factor {f:g})")
    if "acc" in row.get("metric", "") and "relative" in size:
        err = 1 - _f(row.get("mean_baseline"))
        lo, hi = _f(w.get("ci_low")) / err, _f(w.get("ci_high")) / err
        return (lo <= size["relative"] <= hi,
                f"relative error reduction 95% CI {100 * lo:.0f}% to {100 * hi:.0f}% against the paper's {100 * size['relative']:.1f}%")
    if "acc" in row.get("metric", "") and "points" in size:
        lo, hi = 100 * _f(w.get("ci_low")), 100 * _f(w.get("ci_high"))
        return (lo <= size["points"] <= hi, f"Δ 95% CI {lo:.1f} to {hi:.1f} points against the paper's {size['points']:+g}")
    return True, "the paper states the direction, no size"


def relative_error(row: dict[str, Any]) -> float | None:
    """The measured relative error reduction of an accuracy comparison (> 0: the arm errs less)."""
    if "acc" not in row.get("metric", "") or row.get("kind") == "censored":
        return None
    base, arm = _f(row.get("mean_baseline")), _f(row.get("mean"))
    return (arm - base) / (1 - base) if math.isfinite(base) and math.isfinite(arm) and base < 1 else None


def tally_text(categories: list[str]) -> str:
    """``N measured comparisons: ...`` over the counted claims' categories (plus ``not run`` and the like)."""
    n = len(categories)
    parts = [f"{sum(c == k for c in categories)} {k}" for k in CATEGORIES]
    other = sum(c not in CATEGORIES for c in categories)
    text = f"{n} measured comparisons, one count each: " + ", ".join(parts)
    if other:
        text += f", {other} not yet run or not recomputable"
    return text + "."
