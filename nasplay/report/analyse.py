"""Analyse a loaded study: tables, tests and verdicts, as a typed :class:`Report` (numbers, not prose, except verdicts).

The second of the report's three parts (:mod:`~nasplay.report.load`, analyse, :mod:`~nasplay.report.write`):
no files are read or written here. :meth:`Report.to_dict` is the content of ``report.json``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.stats import fisher_exact

from nasplay import environment
from nasplay.report import intervals, power, stats
from nasplay.report.design_space import EdfData
from nasplay.report.design_space import design_space as design_space_of
from nasplay.report.families import family_baseline
from nasplay.report.load import METRIC_PREFERENCE, SECONDARY, STATES, Study, lower_is_better, margin_of, metric_format, num
from nasplay.report.load import mean as _mean
from nasplay.report.load import median as _median


@dataclass
class Report:
    """Everything the report says about one study. The fields in order are report.json's keys; those that are
    ``None`` by default appear only when the study has them (tuning, budgets, a design space) or the writer adds them."""

    study: str
    experiment: str
    path: str
    kind: str
    metric: str
    higher_is_better: bool
    scale: float
    unit: str
    baseline: str | None
    baseline_source: str
    reference: str
    test: str
    alpha: float
    adjust: str
    power: float
    outcomes: dict[str, Any]
    test_size: int | None
    test_size_source: str
    val_size: int | None
    classes: int | None
    trained_rule: str | None
    trials: dict[str, int]
    arms: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    secondary: dict[str, list[dict[str, Any]]]
    failures: list[dict[str, Any]]
    notes: list[str]
    environment: dict[str, Any] = field(default_factory=dict)  # what the numbers were made with (nasplay.environment)
    tuning: dict[str, Any] | None = None  # experiment.tune
    budgets: list[dict[str, Any]] | None = None  # experiment.budgets: every budget's comparison
    budget: float | None = None  # the budget the verdicts are read at
    pareto: dict[str, Any] = field(default_factory=dict)
    pareto_metric: str | None = None
    pareto_scale: float = 1.0
    design_space: dict[str, Any] | None = None
    figures: dict[str, list[str]] | None = None  # written by nasplay.report.write
    diagrams: dict[str, dict[str, str]] | None = None
    report_path: str | None = None
    wandb_id: str | None = None
    edf: EdfData | None = None  # private: the figures' raw data
    baselines: dict[str, str] | None = None  # several bases: arm -> its base's baseline (a family per base)

    OPTIONAL = ("baselines", "tuning", "budgets", "budget", "design_space", "figures", "diagrams", "report_path", "wandb_id")

    def to_dict(self) -> dict[str, Any]:
        """The report as report.json holds it (before NaN becomes null): the public fields, in order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "edf" and not (f.name in self.OPTIONAL and getattr(self, f.name) is None)}


def _is_proportion(study: Study, metric: str | None = None) -> bool:
    """An accuracy stored in [0, 1]: its intervals stay in [0, 1] and the test set's binomial noise counts."""
    return metric_format(study, metric)[0] == 100.0


def _nonnegative(metric: str) -> bool:
    return any(k in metric for k in ("loss", "time", "flops", "params", "to_target", "err"))


def smoke_run(study: Study) -> str | None:
    """Why the study is a smoke run (``debug=smoke``: a study named ``*-smoke``, or a few training batches an epoch), or
    ``None``: a smoke run checks the plumbing, its numbers are no result and its report gives no verdict."""
    t = study.config.get("trainer") or {}
    batches = t.get("limit_train_batches")
    few = isinstance(batches, int) and not isinstance(batches, bool) and batches < 20
    if not (study.name.endswith("-smoke") or few):
        return None
    return (f"a smoke run ({f'{batches} training batches an epoch, ' if few else ''}{t.get('max_epochs', '?')} epoch(s)): "
            "it checks that the study runs end to end; its numbers are not results, and no verdict is given")


def withheld(study: Study, arm: str, ref: str) -> str | None:
    """Why a comparison gets no verdict in the report: a smoke run, or an arm with no seed above chance (it did not
    train, so an 'equivalent' or 'worse' would describe chance, not the knob); ``None`` when it gets one."""
    if smoke_run(study):
        return "smoke run"
    if untrained := untrained_arms(study, arm, ref):
        return f"{' and '.join(untrained)} did not train: no seed above chance"
    return None


def untrained_arms(study: Study, *arms: str) -> list[str]:
    """The arms among ``arms`` with seeds of which none ended above chance (the one place that decides it): a
    comparison with such an arm says that one network trains, not what the knob does."""
    return [a for a in dict.fromkeys(arms) if (t := _trained(study, a)) is not None and t[1] and t[0] == 0]


def references(study: Study) -> list[tuple[str, str]]:
    """``(arm, reference)`` pairs the study tests: each arm against its (family's) baseline, or for a ladder the rung before it."""
    out = []
    for i, arm in enumerate(study.arms):
        ref = study.arms[i - 1] if study.kind == "ladder" else family_baseline(study, arm)
        if ref is None or arm == ref or (study.kind == "ladder" and i == 0):
            continue
        out.append((arm, ref))
    return out


def accuracy_metric(study: Study) -> str | None:
    """The accuracy that decides whether a seed trained: the primary metric if it is one, else test/acc, val/acc_best, val/acc."""
    for m in (study.metric, *METRIC_PREFERENCE):
        if "acc" in m and study.has(m) and _is_proportion(study, m):
            return m
    return None


def trained_rule(study: Study) -> str | None:
    """The stated rule for "a seed trained", or ``None`` without an accuracy or where the classes are unknown."""
    m = accuracy_metric(study)
    if m is None or not study.classes:
        return None
    n = study.eval_size(m)
    thr = stats.chance_threshold(study.classes, n)
    split = "test" if m.startswith("test/") else "validation"
    how = (f"3 binomial standard errors of a chance classifier on the {n} {split} images" if n
           else f"5 points (the {split} split's size is unknown)")
    return (f"a seed trained when its {m} exceeds chance (1/{study.classes} = {100 / study.classes:.1f}%) by more than "
            f"{how}: above {100 * thr:.1f}%")


def _trained(study: Study, arm: str) -> tuple[int, int] | None:
    m = accuracy_metric(study)
    if m is None or not study.classes:
        return None
    v = study.values(arm, m)
    v = v[np.isfinite(v)]
    return int((v > stats.chance_threshold(study.classes, study.eval_size(m))).sum()), len(v)


def arm_table(study: Study, confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per arm: n, mean, std, an interval inside the metric's range, the minimum detectable effect, seeds
    trained; params, FLOPs, time; counts of pruned / failed trials; censored time-to-target summaries."""
    refs = dict(references(study))
    st = study.settings
    secondary = [m for m in study.outcomes.secondary if m != study.metric and m not in SECONDARY and study.available(m)]
    rows = []
    for arm in study.arms:
        v = study.values(arm)
        s = stats.summarize(v, confidence)
        all_trials = [t for t in study.trials if t["arm"] == arm]
        is_base = arm == study.baseline or arm in study.baselines.values()
        row = {"arm": arm, "baseline": is_base, **summary(study, arm, study.metric, confidence),
               "params": _median(study.column("params", arm)), "flops": _median(study.column("flops", arm)),
               "wall_time": _mean(study.column("wall_time" if study.has("wall_time") else "duration_s", arm)),
               "imgs_per_sec": _mean(study.column("imgs_per_sec", arm)),
               "seeds": sorted({t.get("seed") for t in study.complete if t["arm"] == arm and t.get("seed") is not None}),
               "pruned": sum(t["state"] == "PRUNED" for t in all_trials),
               "failed": sum(t["state"] == "FAIL" for t in all_trials),
               "running": sum(t["state"] in ("RUNNING", "WAITING") for t in all_trials)}
        if secondary:
            row["secondary"] = {m: summary(study, arm, m, confidence) for m in secondary}
        held = _compute_held(study, arm)
        if held is not None:
            row["compute"] = held
        # The smallest true difference from its reference this arm's comparison detects: the deciding test's power
        # (nasplay.report.power) at the pooled SD and both n.
        ref = refs.get(arm)
        if ref is not None:
            w = study.values(ref)
            sd, n_ref = stats.effect_size(v, w).pooled_sd, int(np.isfinite(w).sum())
        else:
            sd, n_ref = s.std, s.n
        row["mde"] = power.mde(sd, s.n, n_ref, alpha=st.alpha, power=st.power, test=st.test) if s.n >= 2 and n_ref >= 2 else math.nan
        tr = _trained(study, arm)
        if tr is not None:
            k, n = tr
            acc = study.values(arm, accuracy_metric(study))
            good = acc[np.isfinite(acc) & (acc > stats.chance_threshold(study.classes, study.eval_size(accuracy_metric(study))))]
            row["trained"] = {"k": k, "n": n, "metric": accuracy_metric(study), "mean_of_trained": _mean(good)}
        for m in SECONDARY:
            if study.available(m):
                row[m] = stats.time_to_target(*_to_target(study, arm, m)).to_dict()
        rows.append(row)
    return rows


def _compute_held(study: Study, arm: str) -> dict[str, Any] | None:
    """An arm's params and FLOPs as trained (study.json) and their ratios to the baseline's, for every study that
    holds compute (experiment.keep), so a reader sees how equal "equal" was."""
    m = study.manifest
    if m is None or m.keep is None:
        return None
    arms = {a.name: a for a in m.arms}
    a, b = arms.get(arm), arms.get(family_baseline(study, arm) or "")
    if a is None or b is None or not (a.params and a.flops and b.params and b.flops):
        return None
    return {"keep": m.keep, "params": a.params, "flops": a.flops, "params_ratio": a.params / b.params,
            "flops_ratio": a.flops / b.flops, "held_ratio": (a.flops / b.flops) if m.keep == "flops" else (a.params / b.params),
            "grouping": a.grouping}


def tuning_table(study: Study) -> dict[str, Any]:
    """experiment.tune: per arm, what the tuning judged (``experiment.tune_on``, else the study's objective on the
    validation split) for each tried setting over the tuning seeds, and the setting its comparison trials trained
    with (the ``tuned.*`` columns)."""
    if not study.tuning:
        return {}
    names = sorted({k.removeprefix("param.") for t in study.tuning for k in t if k.startswith("param.")})
    on = ((study.config.get("experiment") or {}).get("tune_on")) or None
    out: dict[str, Any] = {"settings": names, "arms": {}, "criterion": on or "objective"}
    for arm in study.arms:
        rows = [t for t in study.tuning if t["arm"] == arm]
        if not rows:
            continue
        curve: dict[tuple, list[float]] = defaultdict(list)
        for t in rows:
            v = num(t.get(on or "value"))
            curve[tuple(t.get(f"param.{n}") for n in names)].append(v if t["state"] == "COMPLETE" else math.nan)
        chosen = next(({n: t.get(f"tuned.{n}") for n in names} for t in study.trials
                       if t["arm"] == arm and any(t.get(f"tuned.{n}") not in (None, "") for n in names)), {})
        out["arms"][arm] = {"chosen": chosen, "curve": [
            {"setting": dict(zip(names, k)), "mean": _mean(np.array(v)), "n": len(v),
             "finished": int(np.isfinite(np.array(v)).sum())} for k, v in sorted(curve.items(), key=lambda kv: [num(x) for x in kv[0]])]}
        # A choice at the grid's edge: the grid does not bracket the arm's optimum (extend it past that edge).
        edges = {}
        for i, n in enumerate(names):
            tried = sorted({num(k[i]) for k in curve if math.isfinite(num(k[i]))})
            c = num(chosen.get(n))
            if len(tried) >= 3 and math.isfinite(c) and c in (tried[0], tried[-1]):
                edges[n] = "lowest" if c == tried[0] else "highest"
        if edges:
            out["arms"][arm]["at_edge"] = edges
    return out


def tuning_notes(tuning: dict[str, Any]) -> list[str]:
    """A note for every arm whose tuned setting is the grid's lowest or highest value."""
    return [f"tuning: {arm} chose the {where} {n} tried ({a['chosen'].get(n)}): the grid does not bracket its optimum; "
            f"extend it past that edge" for arm, a in (tuning.get("arms") or {}).items() for n, where in a.get("at_edge", {}).items()]


def budget_table(study: Study) -> list[dict[str, Any]]:
    """experiment.budgets: every budget's comparison of the primary outcome (Holm within each budget)."""
    if len(study.budgets) < 2:
        return []
    out = []
    for b in study.budgets:
        sub = dataclasses.replace(study, trials=study.by_budget[b], notes=[])
        epochs = [num(t.get("epochs")) for t in sub.complete]
        out.append({"budget": b, "epochs": _median(np.array(epochs, dtype=float)) if epochs else math.nan,
                    "arms": [{"arm": a["arm"], "n": a["n"], "mean": a["mean"], "ci_low": a["ci_low"], "ci_high": a["ci_high"]}
                             for a in arm_table(sub)],
                    "comparisons": comparison_rows(sub)})
    return out


def effective_eval_size(study: Study, metric: str) -> tuple[float | None, str]:
    """The images behind an accuracy counted at the level of their sources (:func:`~nasplay.report.intervals.effective_test_size`:
    clutter composes its images from a pool of source digits, each counted once), and how it was counted."""
    n_eval = study.eval_size(metric)
    split = "test" if metric.startswith("test/") else "validation"
    pool = (study.source_images or {}).get("test" if split == "test" else "val")
    n_eff = intervals.effective_test_size(n_eval, pool)
    if not n_eval:
        return None, " (seeds only)"
    if pool and n_eff is not None and n_eff < n_eval:
        return n_eff, (f" + binomial noise of the {pool} source images the {n_eval} {split} images are composed from "
                       f"(design effect at within-source correlation 1)")
    return n_eff, f" + binomial noise of {n_eval} {split} images"


def summary(study: Study, arm: str, metric: str, confidence: float = 0.95) -> dict[str, Any]:
    """n, mean, std and an interval inside the metric's range: for an accuracy the logit interval of the seeds' spread
    (t) and the test set's binomial noise (normal, at its effective size) (``ci_low``/``ci_high``), the plain
    t-interval and the two-level bootstrap beside it."""
    v = study.values(arm, metric)
    s = stats.summarize(v, confidence)
    out = {**s.to_dict(), "t_interval": [s.ci_low, s.ci_high], "ci_method": "t"}
    if _is_proportion(study, metric):
        n_eff, how = effective_eval_size(study, metric)
        out["ci_low"], out["ci_high"], _ = intervals.accuracy_interval(v, n_test=n_eff, confidence=confidence)
        out["ci_method"] = "logit, seeds with t" + how.replace(" + binomial", " + normal on the binomial")
        out["effective_test_size"] = n_eff
        out["bootstrap_ci"] = list(stats.two_level_bootstrap(v, n_test=n_eff, resamples=study.settings.resamples,
                                                             confidence=confidence))
    elif _nonnegative(metric) and math.isfinite(s.ci_low):
        out["ci_low"] = max(0.0, s.ci_low)
    return out


def claimed_of(study: Study, metric: str, arm: str, reference: str | None = None) -> float | None:
    """The paper's claimed effect of ``arm`` against ``reference`` on ``metric``, in the metric's points, if stated.

    ``experiment.outcomes.claimed`` maps ``{metric: value}`` (every arm), ``{metric: {arm: value}}`` (against the
    experiment's baseline) or ``{metric: {"arm vs reference": value}}`` (against another arm: a second report)."""
    c = study.outcomes.claimed.get(metric)
    experiment_baseline = study.manifest.baseline if study.manifest is not None else study.baseline
    against_baseline = reference is None or reference == experiment_baseline
    if isinstance(c, dict):
        v = c.get(f"{arm} vs {reference}") if reference is not None else None
        if v is None and against_baseline:
            v = c.get(arm, c.get(arm.split("=", 1)[-1]))
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return float(c) if against_baseline and isinstance(c, (int, float)) and not isinstance(c, bool) else None


def families(study: Study, metric: str) -> dict[tuple[str, str], str]:
    """Each comparison's Holm family on ``metric``: ``claimed`` (the experiment states the paper's effect for it
    before the run), ``exploratory`` (the rest), or ``all`` where the experiment states no claim on the metric."""
    pairs = references(study)
    claimed = {(a, r) for a, r in pairs if claimed_of(study, metric, a, r) is not None}
    if not claimed:
        return {(a, r): "all" for a, r in pairs}
    return {(a, r): "claimed" if (a, r) in claimed else "exploratory" for a, r in pairs}


def _family_keys(study: Study, kinds: dict[tuple[str, str], str], comps: list) -> list[tuple[str, str]]:
    """Each comparison's family: its base's baseline (several bases: a family per base) and its kind (:func:`families`)."""
    return [(c.baseline if study.baselines else "", kinds[(c.arm, c.baseline)]) for c in comps]


def _by_family(items: list, keys: list[tuple[str, str]], adjust_one) -> list:
    """Adjust each family of ``items`` (its ``(base, kind)`` key in ``keys``) on its own, keeping the items' order;
    ``adjust_one(family, kind)``."""
    out = list(items)
    for key in dict.fromkeys(keys):
        idx = [i for i, k in enumerate(keys) if k == key]
        for i, c in zip(idx, adjust_one([items[i] for i in idx], key[1])):
            out[i] = c
    return out


def comparisons(study: Study, metric: str | None = None, *, alpha: float | None = None, test: str | None = None,
                confidence: float = 0.95, adjust: str | None = None) -> list[stats.Comparison]:
    """Each arm against its reference on one metric; Holm within the claimed comparisons and, apart, the exploratory
    ones (:func:`families`), and with several bases within each base's family apart. An accuracy's margin is at least
    one test image (:func:`~nasplay.report.intervals.margin_floor`)."""
    m = metric or study.metric
    st = study.settings
    alpha = st.alpha if alpha is None else alpha
    scale, unit = metric_format(study, m)
    margin = margin_of(study, m)
    margin = None if margin is None else margin / scale
    if _is_proportion(study, m):
        margin, _ = intervals.margin_floor(margin, study.eval_size(m))
    bounds = (0.0, 1.0) if _is_proportion(study, m) else None
    fam = families(study, m)
    out = [stats.compare(arm, study.values(arm, m), ref, study.values(ref, m), metric=m, higher_is_better=not lower_is_better(m),
                         alpha=alpha, test=test or st.test, scale=scale, unit=unit, confidence=confidence,
                         margin=margin, bounds=bounds, power=st.power)
           for arm, ref in references(study)]
    keys = _family_keys(study, fam, out)
    return _by_family(out, keys, lambda cs, kind: stats.adjust_family(cs, adjust or st.adjust, alpha=alpha, scale=scale,
                                                                      unit=unit, confidence=confidence, kind=kind))


def relative_error(c: stats.Comparison) -> dict[str, float] | None:
    """An accuracy's effect as relative error reduction, ``(err_ref - err_arm) / err_ref`` (> 0: the arm errs less),
    with Welch's interval of the difference divided by the reference's error."""
    err = 1.0 - c.mean_baseline
    if not (math.isfinite(err) and err > 0 and math.isfinite(c.welch.diff)):
        return None
    return {"reduction": c.welch.diff / err, "ci_low": c.welch.ci_low / err, "ci_high": c.welch.ci_high / err,
            "error": 1.0 - c.mean, "error_baseline": err}


def comparison_rows(study: Study, metric: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`comparisons` as report rows: the margin in points, the claimed effect and the seeds it needs, seeds trained."""
    m = metric or study.metric
    if m in SECONDARY:
        return censored_comparisons(study, m, **kwargs)
    scale, _ = metric_format(study, m)
    st = study.settings
    rows = []
    for c in comparisons(study, m, **kwargs):
        d = c.to_dict()
        d["kind"] = "means"
        # The margin as the experiment states it (the metric's points: percentage points for an accuracy), and as stored.
        d["margin"], d["margin_raw"] = (None if c.margin is None else c.margin * scale), c.margin
        d["family_kind"] = c.family_kind
        if _is_proportion(study, m) and margin_of(study, m) is not None and c.margin is not None \
                and c.margin * scale > margin_of(study, m) + 1e-12:
            d["margin_note"] = intervals.margin_floor(margin_of(study, m) / scale, study.eval_size(m))[1]
        if _is_proportion(study, m):
            d["relative_error"] = relative_error(c)
        claim = claimed_of(study, m, c.arm, c.baseline)
        if claim is not None:
            need = power.seeds_needed(claim / scale, c.effect.pooled_sd, alpha=st.alpha, power=st.power, test=st.test)
            d["claimed"] = {"effect": claim, "seeds_needed": need, "test": power.deciding_test(c.n, c.n_baseline, st.test),
                            "mde_over_claim": c.mde * scale / abs(claim) if claim and math.isfinite(c.mde) else
                            (math.inf if claim and math.isinf(c.mde) else math.nan)}
            if c.outcome == "inconclusive":
                unit = metric_format(study, m)[1]
                mde = ("∞" if math.isinf(c.mde) else f"{c.mde * scale:.1f}") + (f" {unit}" if unit else "")
                needs = f"needs about {need:,} seeds per arm" if need else "is beyond 100,000 seeds per arm at this spread"
                d["verdict"] = d["verdict"].rsplit(" — inconclusive", 1)[0] + (
                    f" — inconclusive (MDE {mde}; the paper's effect, {claim:g}, {needs})")
        if m == accuracy_metric(study):
            ta, tb = _trained(study, c.arm), _trained(study, c.baseline)
            if ta and tb and (ta[0] < ta[1] or tb[0] < tb[1]):
                p = float(fisher_exact([[ta[0], ta[1] - ta[0]], [tb[0], tb[1] - tb[0]]]).pvalue)
                d["trained"] = {"arm": list(ta), "baseline": list(tb), "fisher_p": p}
                d["verdict"] += (f" [{c.arm}: {ta[0]} of {ta[1]} seeds trained, {c.baseline}: {tb[0]} of {tb[1]}; "
                                 f"Fisher's exact test {stats.format_p(p)}]")
                if dead := untrained_arms(study, c.arm, c.baseline):
                    d["untestable"] = f"{' and '.join(dead)}: no seed above chance"
                    d["verdict"] += f" — untestable at this budget ({d['untestable']})"
        why = withheld(study, c.arm, c.baseline)
        if why:
            d["withheld"] = why
        rows.append(d)
    return rows


def _to_target(study: Study, arm: str, metric: str) -> tuple[list[float], list[float]]:
    """An arm's times to the target and, for the seeds that never reached it, the budget they ran (censoring times)."""
    budget_col = "epochs" if metric.startswith("epochs") else "steps"
    reached = [x for x in study.column(metric) if math.isfinite(x)]
    fallback = float(max(reached)) if reached else 1.0
    if budget_col == "epochs":
        fallback = float((study.config.get("trainer") or {}).get("max_epochs") or fallback)
    times, censored = [], []
    for t in study.complete:
        if t["arm"] != arm:
            continue
        v = num(t.get(metric))
        if math.isfinite(v):
            times.append(v)
        else:
            b = num(t.get(budget_col))
            censored.append(b if math.isfinite(b) else fallback)
    return times, censored


def censored_comparisons(study: Study, metric: str, *, adjust: str | None = None, alpha: float | None = None,
                         **_: Any) -> list[dict[str, Any]]:
    """Time to target of each arm against its reference: log-rank (the outcome, Holm within the family) and Fisher."""
    st = study.settings
    alpha = st.alpha if alpha is None else alpha
    comps = [stats.compare_censored(arm, *_to_target(study, arm, metric), ref, *_to_target(study, ref, metric), metric=metric)
             for arm, ref in references(study)]
    fam = families(study, metric)
    method = adjust or st.adjust

    def settle(cs: list[stats.CensoredComparison], kind: str) -> list[stats.CensoredComparison]:
        out = []
        for c, pa in zip(cs, stats.adjust([c.p for c in cs], method)):
            c = replace(c, p_adjusted=float(pa), outcome=stats.outcome(float(pa), math.nan, c.better, alpha),
                        family=len(cs), family_kind=kind)
            out.append(replace(c, verdict=stats.censored_verdict(c, alpha)))
        return out

    comps = _by_family(comps, _family_keys(study, fam, comps), settle)
    return [{**c.to_dict(), **({"withheld": why} if (why := withheld(study, c.arm, c.baseline)) else {}),
             "kind": "censored", "margin": None, "margin_raw": None,
             "significant": bool(math.isfinite(c.p_adjusted) and c.p_adjusted < alpha), "adjust": method} for c in comps]


def pareto_metric(study: Study) -> str | None:
    """The score of the Pareto front: the study's metric when higher is better, else its accuracy (a loss is no score)."""
    return study.metric if not lower_is_better(study.metric) else accuracy_metric(study)


def pareto_points(study: Study, cost: str) -> dict[str, Any]:
    """Trials on the front of the score (:func:`pareto_metric`, max) against ``cost`` (min)."""
    done = study.complete
    m = pareto_metric(study) or study.metric
    score = [num(t.get(m)) for t in done]
    c = [num(t.get(cost)) for t in done]
    idx = stats.pareto_front(score, c)
    return {"cost": cost, "metric": m, "front": [{"number": done[i].get("number"), "arm": done[i]["arm"], "seed": done[i].get("seed"),
                                                  m: score[i], cost: c[i]} for i in idx]}


def curve_bands(study: Study, metric: str) -> tuple[str, dict[str, tuple]]:
    """Per arm the mean and std over seeds of a logged curve at each epoch (or step), with the seed count."""
    arm_of = {t.get("number"): t["arm"] for t in study.trials if t["state"] in ("COMPLETE", "PRUNED")}
    rows = [r for r in study.curves
            if r.get("metric") == metric and r.get("trial") in arm_of and math.isfinite(num(r.get("value")))]
    epochs = {r.get("epoch") for r in rows}
    xkey = "epoch" if len(epochs - {None}) > 1 and None not in epochs else "step"
    per: dict[str, dict[float, dict[Any, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        x = num(r.get(xkey))
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


def configure(study: Study, **overrides: Any) -> Study:
    """Apply command-line overrides (``alpha``, ``test``, ``adjust``, ``margin``; ``None`` keeps config.yaml's) to the study."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        study.settings = replace(study.settings, **given).check()
    return study


def outcome_plan(study: Study) -> dict[str, Any]:
    """What the report tests and how: the primary and secondary outcomes, their margins and families, the claim."""
    o = study.outcomes
    secondary = [m for m in o.secondary if m != study.metric]
    stated = bool(o.primary or o.secondary)
    return {"stated": stated, "primary": study.metric, "primary_stated": o.primary, "secondary": secondary,
            "margins": {m: margin_of(study, m) for m in [study.metric, *secondary]},
            "claimed": o.claimed, "source": o.source,
            "families": "each outcome is its own family" + ("" if study.settings.adjust == "none" else
                                                             ", Holm-adjusted within its claimed comparisons (those with a "
                                                             "claimed effect stated in advance) and, apart, the exploratory rest"),
            "test": "exact permutation (every relabelling) up to 10 seeds per arm, Welch above; time to target: "
                    "exact permutation log-rank" if study.settings.test == "exact" else study.settings.test}


def build_report(study: Study, *, alpha: float | None = None, test: str | None = None, adjust: str | None = None,
                 margin: float | None = None) -> Report:
    """Everything the report says about one study; ``alpha``, ``test``, ``adjust`` and ``margin`` override its settings."""
    configure(study, alpha=alpha, test=test, adjust=adjust, margin=margin)
    st = study.settings
    scale, unit = metric_format(study)
    compared = [t for b in study.budgets for t in study.by_budget[b]] if study.budgets else study.trials
    everything = [*study.tuning, *compared]  # every trial: tuning, and every budget's
    counts = {s: sum(t["state"] == s for t in everything) for s in STATES}
    # A search's arms are a sampled population and the networks placed beside it: the front is the result, not tests.
    search = study.kind == "search"
    plan = outcome_plan(study)
    notes = list(study.notes) + (["search study: arms are not tested against a baseline; see the Pareto front"] if search else [])
    smoke = smoke_run(study)
    if smoke:
        notes.insert(0, smoke[0].upper() + smoke[1:])
    env = environment.report_block(study.manifest, everything)  # what the numbers were made with
    notes += [n for n in [environment.note(env)] if n]
    if _is_proportion(study):
        n_eval = study.eval_size(study.metric)
        split = "test" if study.metric.startswith("test/") else "validation"
        source = study.test_size_source if split == "test" else study.val_size_source
        pool = (study.source_images or {}).get("test" if split == "test" else "val")
        source += f"; composed from {pool} source images" if pool else ""
        notes.append(f"{split}-set size: {n_eval} images ({source}); the intervals of each arm count its binomial sampling noise"
                     if n_eval else
                     f"{split}-set size unknown (not in study.json, results.csv or config.yaml's data): the intervals count the "
                     f"seeds' spread only, not the finite {split} set's sampling noise")
    secondary: dict[str, list[dict[str, Any]]] = {}
    if not search:
        for m in plan["secondary"]:
            if study.available(m):
                secondary[m] = comparison_rows(study, m)
            else:
                notes.append(f"secondary outcome {m!r} has no values in this study: not analysed")
        for m in SECONDARY:  # time to target, when measured, even where the experiment did not name it
            if m not in secondary and m != study.metric and study.available(m):
                secondary[m] = comparison_rows(study, m)
    report = Report(
        study=study.name, experiment=study.experiment, path=str(study.path), kind=study.kind,
        metric=study.metric, higher_is_better=not lower_is_better(study.metric), scale=scale, unit=unit,
        baseline=study.baseline, baseline_source=study.baseline_source, baselines=dict(study.baselines) or None,
        reference="previous rung" if study.kind == "ladder" else "baseline",
        test=st.test, alpha=st.alpha, adjust=st.adjust, power=st.power, outcomes=plan,
        test_size=study.test_size, test_size_source=study.test_size_source, val_size=study.val_size,
        classes=study.classes,
        trained_rule=trained_rule(study),
        trials={"total": len(everything), **{k: v for k, v in counts.items() if v},
                **({"tuning": len(study.tuning)} if study.tuning else {}),
                **({"compared": len(study.trials)} if len(everything) != len(study.trials) else {})},
        arms=arm_table(study),
        comparisons=[] if search else comparison_rows(study),
        secondary=secondary,
        failures=[{"number": t.get("number"), "arm": t["arm"], "seed": t.get("seed"), "reason": t.get("fail_reason") or ""}
                  for t in study.trials if t["state"] == "FAIL"],
        notes=notes,
        environment=env,
    )
    if study.tuning:
        report.tuning = tuning_table(study)
        report.notes += tuning_notes(report.tuning)
    if len(study.budgets) > 1:
        report.budgets = budget_table(study)
        report.budget = study.budgets[-1]
    report.pareto = {m: pareto_points(study, m) for m in ("flops", "params") if study.has(m) and pareto_metric(study)}
    report.pareto_metric = pareto_metric(study)
    report.pareto_scale = metric_format(study, pareto_metric(study))[0] if pareto_metric(study) else 1.0
    if study.kind == "design_space":
        report.design_space, report.edf = design_space_of(study)
    if not study.available(study.metric):
        report.notes.append(f"no finished trial has a value of {study.metric!r}")
    return report
