"""A design-space study's analysis: error EDFs of each population (arm), plain and complexity-normalised, as
Radosavovic et al. (2019) compare them, with the paired tests of a paired design (:mod:`~nasplay.report.edfs` holds the
statistics). Part of :mod:`~nasplay.report.analyse`'s work, apart because only design-space studies need it."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nasplay.report import edfs, intervals, stats
from nasplay.report.load import Study, lower_is_better, margin_of, metric_format
from nasplay.report.load import mean as _mean
from nasplay.report.load import median as _median


def _pairs(study: Study, arm: str, base: str, err: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """Errors of the same sampled architecture in ``arm`` and ``base``, matched by the ``pair`` column (None without one)."""
    if not any(t.get("pair") not in (None, "") for t in study.complete):
        return None
    def by_pair(a: str) -> dict[Any, float]:
        out: dict[Any, list[float]] = defaultdict(list)
        for t, e in zip([t for t in study.complete if t["arm"] == a], err[a]):
            if t.get("pair") not in (None, "") and math.isfinite(e):
                out[t["pair"]].append(float(e))
        return {k: float(np.mean(v)) for k, v in out.items()}
    pa, pb = by_pair(arm), by_pair(base)
    keys = sorted(set(pa) & set(pb), key=str)
    return np.array([pa[k] for k in keys]), np.array([pb[k] for k in keys])


@dataclass
class EdfData:
    """The raw errors and complexities of a design-space study's populations, for its EDF figure (not in report.json)."""

    error: str  # what the errors are, e.g. "error (%)"
    measures: list[str]  # the complexity measures present ("flops", "params")
    bins: int
    errors: dict[str, np.ndarray]  # arm -> errors of its finished trials
    complexities: dict[str, dict[str, np.ndarray]]  # measure -> arm -> complexities


def design_space(study: Study, *, bins: int = 10, resamples: int | None = None,
                 seed: int = 0) -> tuple[dict[str, Any], EdfData]:
    """Error EDFs of each population (arm), plain and complexity-normalised, as Radosavovic et al. (2019) compare them.

    Per population: n, mean error with a bootstrap interval, min and median, the half-width of its simultaneous
    95% DKW band. Against the baseline: the KS statistic with scipy's p and a permutation p; per complexity
    measure the normalised KS (weights recomputed for every relabelling in its permutation p) and the normalised
    mean difference with a bootstrap interval whose weights are recomputed in every resample; with a ``pair``
    column, the paired differences (sign-flip permutation test, Wilcoxon). The outcome reads the permutation p
    (the sign-flip p when paired), Holm-adjusted across the populations. Returns the report's ``design_space``
    section and the raw errors and complexities the EDF figure draws.
    """
    st = study.settings
    resamples = resamples or st.resamples
    scale, unit = metric_format(study)
    higher = not lower_is_better(study.metric)
    err = {a: ((1.0 if scale == 100 else 0.0) - study.values(a)) * scale if higher else study.values(a) * scale for a in study.arms}
    err_name = f"error ({'%' if scale == 100 else study.metric})" if higher else study.metric
    measures = [m for m in ("flops", "params") if study.has(m)]
    comp = {m: {a: study.column(m, a) for a in study.arms} for m in measures}
    populations = []
    for a in study.arms:
        e = err[a][np.isfinite(err[a])]
        lo, hi = edfs.bootstrap_ci(e, resamples=resamples, seed=seed)
        populations.append({"arm": a, "n": len(e), "mean_error": _mean(e), "mean_error_ci": [lo, hi],
                            "min_error": float(e.min()) if len(e) else math.nan, "median_error": _median(e),
                            "dkw_epsilon": edfs.dkw_epsilon(len(e)) if len(e) else math.nan})
    tests = []
    base = study.baseline
    margin = margin_of(study, study.metric)
    for a in study.arms:
        if a == base or base is None:
            continue
        row: dict[str, Any] = {"arm": a, "baseline": base, "ks": edfs.ks_test(err[a], err[base]).__dict__,
                               "ks_permutation_p": edfs.ks_permutation(err[a], err[base], resamples=resamples, seed=seed),
                               "mean_diff": _mean(err[a]) - _mean(err[base]),
                               "mean_diff_ci": list(edfs.bootstrap_diff_ci(err[a], err[base], resamples=resamples, seed=seed))}
        for m in measures:
            wa, wb = edfs.complexity_weights([comp[m][a], comp[m][base]], bins=bins)
            ks = edfs.ks_test(err[a], err[base], wa, wb).__dict__
            ks["permutation_p"] = (edfs.ks_permutation(err[a], err[base], comp[m][a], comp[m][base], bins=bins,
                                                        resamples=min(resamples, 1000), seed=seed)
                                   if wa.sum() > 0 and wb.sum() > 0 else math.nan)
            row[f"ks_normalised_{m}"] = ks
            est, lo, hi = edfs.normalised_mean_diff_ci(err[a], err[base], comp[m][a], comp[m][base], bins=bins,
                                                        resamples=min(resamples, 1000), seed=seed)
            row[f"mean_diff_normalised_{m}"] = est
            row[f"mean_diff_normalised_{m}_ci"] = [lo, hi]
        pairs = _pairs(study, a, base, err)
        if pairs is not None:
            row["paired"] = edfs.paired_test(*pairs, resamples=resamples, seed=seed).to_dict()
        row["p"] = row["paired"]["sign_flip_p"] if pairs is not None and row["paired"]["pairs"] >= 2 else row["ks_permutation_p"]
        row["p_test"] = "paired sign-flip permutation" if pairs is not None and row["paired"]["pairs"] >= 2 else "KS permutation"
        if margin is None:
            eq = None
        elif pairs is not None and len(pairs[0]) >= 2:  # a paired design tests equivalence paired, as it tests the difference
            eq = intervals.tost_paired(pairs[0] - pairs[1], margin)
        else:
            eq = stats.tost(err[a], err[base], margin)
        row["margin"] = margin
        row["equivalence"] = None if eq is None else asdict(eq)
        tests.append(row)
    adj = stats.adjust([t["p"] for t in tests], st.adjust)
    eq_adj = stats.adjust([t["equivalence"]["p"] if t["equivalence"] else math.nan for t in tests], st.adjust)
    for t, pa, ea in zip(tests, adj, eq_adj):
        d = t["paired"]["mean_diff"] if "paired" in t and t["paired"]["pairs"] >= 2 else t["mean_diff"]
        better = None if not math.isfinite(d) or d == 0 else bool(d < 0)  # lower error is better
        t["p_adjusted"] = float(pa)
        t["adjust"] = st.adjust
        t["outcome"] = stats.outcome(float(pa), float(ea), better, st.alpha)
        t["verdict"] = _edf_verdict(t, measures, unit or "")
    return ({"error": err_name, "measures": measures, "bins": bins, "populations": populations, "tests": tests},
            EdfData(err_name, measures, bins, err, comp))


def _edf_verdict(row: dict, measures: list[str], unit: str) -> str:
    ks = row["ks"]
    u = f" {unit}" if unit else ""
    lo, hi = row["mean_diff_ci"]
    norm = [(m, row[f"ks_normalised_{m}"]) for m in measures]
    out = row["outcome"]
    d = row["mean_diff"]
    if out in ("better", "worse"):
        head = f"{row['arm']}'s errors are {'lower' if out == 'better' else 'higher'} than {row['baseline']}'s — {out}"
    elif out == "equivalent":
        head = f"{row['arm']}'s mean error is within ±{row['margin']:.1f}{u} of {row['baseline']}'s — equivalent"
    else:
        head = f"no difference shown between the errors of {row['arm']} and {row['baseline']} — inconclusive"
    parts = [f"{head} ({row['p_test']} {stats.format_p(row['p'])}, Holm-adjusted {stats.format_p_bare(row['p_adjusted'])})",
             f"KS D={ks['statistic']:.2f}, {stats.format_p(ks['p'])}, permutation {stats.format_p(row['ks_permutation_p'])}, "
             f"n={int(ks['n_a'])} vs {int(ks['n_b'])}"]
    for m, k in norm:
        if math.isfinite(k["statistic"]):
            parts.append(f"normalised by {m}: D={k['statistic']:.2f}, permutation {stats.format_p(k['permutation_p'])}")
        else:
            parts.append(f"normalised by {m}: not possible, the populations share no {m} range")
    if math.isfinite(d):
        word = "lower" if d < 0 else "higher"
        lo, hi = sorted((math.copysign(1, d) * lo, math.copysign(1, d) * hi))
        parts.append(f"mean error {word} by {abs(d):.1f}{u} (95% bootstrap CI {lo:.1f}–{hi:.1f})")
    if "paired" in row and row["paired"]["pairs"] >= 2:
        pr = row["paired"]
        parts.append(f"{pr['pairs']} pairs: mean paired difference {pr['mean_diff']:+.2f}{u} (95% CI {pr['ci_low']:.2f} to "
                     f"{pr['ci_high']:.2f}), sign-flip {stats.format_p(pr['sign_flip_p'])}, Wilcoxon {stats.format_p(pr['wilcoxon_p'])}")
    return "; ".join(parts)
