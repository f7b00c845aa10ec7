"""Statistics of a study: summaries over seeds, arm-vs-baseline tests, Pareto fronts (EDFs: :mod:`~nasplay.report.edfs`).

Pure functions of numbers (numpy / scipy), no I/O. The definitions, so a reader knows what a number is:

* **Summary** over seeds: mean, sample standard deviation (``ddof=1``), and the 95% confidence interval
  ``mean ± t(0.975, n-1) · s / √n`` (Student's t). ``n < 2`` gives ``nan`` for std and CI.
* **Welch's t-test** (unequal variances) of ``a - b``: ``t = (ā - b̄) / √(s²a/na + s²b/nb)`` with the
  Welch–Satterthwaite degrees of freedom; two-sided p. The CI of the difference in means uses the same
  standard error and df.
* **Permutation test** of the difference in means, two-sided: the share of relabelings of the pooled
  values whose ``|mean(a') - mean(b')|`` reaches the observed one (``scipy.stats.permutation_test``). Exact
  (every split enumerated) when there are at most ``exact_limit`` splits, otherwise seeded Monte-Carlo with
  ``p = (1 + hits) / (1 + R)``.
  With 3 seeds per arm there are only 20 splits, so the smallest possible p is 0.1: it cannot reach 0.05.
* **Effect size**: Hedges' g — Cohen's d with the *pooled* SD ``√(((na-1)s²a + (nb-1)s²b)/(na+nb-2))``,
  times the exact small-sample correction ``J(ν) = Γ(ν/2) / (√(ν/2) Γ((ν-1)/2))``, ``ν = na+nb-2``. With
  equal n (the usual case: the same seeds in every arm) the pooled SD equals the average-variance SD.
  Magnitude words follow Cohen: |g| < 0.2 negligible, < 0.5 small, < 0.8 medium, else large.
* **Pareto front**: the non-dominated points when maximising the score and minimising the cost.
What a reviewer asks of a verdict:

* **Holm** (step-down, family-wise): p-values sorted ascending, ``p_(i) -> max_{j<=i} min(1, (m-j+1) p_(j))``;
  a family is one outcome (metric) of one study: every arm against its reference.
* **Equivalence (TOST)** against a stated margin ``m``: two one-sided Welch tests of ``Δ <= -m`` and
  ``Δ >= +m`` (scipy's ``ttest_ind`` on shifted values); ``p = max`` of the two, equivalent to the
  ``1 - 2α`` interval lying inside ``(-m, m)``. Arms without any spread give ``p = 1`` (no equivalence without an
  estimate of uncertainty); paired designs use the paired TOST (:func:`nasplay.report.intervals.tost_paired`).
* **Outcome**, one of four: *better* / *worse* (adjusted p < α, by the direction of Δ), else *equivalent*
  (adjusted TOST p < α), else *inconclusive*. No margin stated: never equivalent.
* **The deciding p** (``compare(test="exact")``, the default): the exact permutation p over every relabelling
  (:mod:`~nasplay.report.exact`) while neither arm has more than 10 seeds, Welch's p above; Welch's p and interval
  are shown beside it.
* **Minimum detectable effect** of a comparison: the deciding test's (:mod:`~nasplay.report.power`, simulated).
  :func:`mde` / :func:`seeds_needed` here are the pooled t-test's (noncentral t), a lower bound kept for reference.
* **Accuracy intervals** stay inside (0, 1): on the logit scale (delta method), the seeds' spread ``s²/n`` with
  Student's t and the test set's known binomial variance ``p̄(1-p̄)/N_eff`` with a normal quantile, combined by
  Satterthwaite (:mod:`~nasplay.report.intervals`; ``N_eff`` counts images that share source digits once per
  design effect); beside it a two-level percentile bootstrap (seeds, then ``Binomial(N_eff, acc)/N_eff`` per draw).
* **Trained**: a seed's accuracy above chance ``1/K`` by more than 3 binomial SEs of a chance classifier on
  the test set (5 points when its size is unknown).
* **Time to target**, right-censored at each seed's budget when it never got there: Kaplan-Meier median
  (``scipy.stats.ecdf``), the permutation log-rank test that decides (exact over every relabelling up to 10 seeds
  per arm, :mod:`~nasplay.report.exact`), the asymptotic log-rank beside it (``scipy.stats.logrank``; its signed
  z > 0 means sooner), Fisher's exact test of how many reached it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import special
from scipy import stats as sps

# The summary over seeds is the study's closing summary's too (the sweep prints it): one definition, below the report.
from nasplay.report import exact
from nasplay.report import power as power_
from nasplay.report.exact import permutation_logrank
from nasplay.report.intervals import Equivalence, accuracy_interval  # noqa: F401 - Equivalence is part of this module's API
from nasplay.report.power import power_t  # noqa: F401 - part of this module's API
from nasplay.sweep.results import ArrayLike, Summary, summarize, t_quantile  # noqa: F401 - part of this module's API
from nasplay.sweep.results import finite as _clean


@dataclass(frozen=True)
class TTest:
    """Welch's t-test of ``mean(a) - mean(b)`` with the CI of the difference."""

    diff: float
    t: float
    df: float
    p: float
    ci_low: float
    ci_high: float


def welch(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> TTest:
    """Welch's unequal-variance t-test, two-sided (``scipy.stats.ttest_ind(equal_var=False)`` and its interval);
    ``nan`` where either side has fewer than 2 values, and the exact difference where neither side varies."""
    a, b = _clean(a), _clean(b)
    na, nb = len(a), len(b)
    diff = float(a.mean() - b.mean()) if na and nb else math.nan
    if na < 2 or nb < 2:
        return TTest(diff, math.nan, math.nan, math.nan, math.nan, math.nan)
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        # Every seed gave the same value in both arms: the test is undefined (the permutation test still works).
        return TTest(diff, math.nan, math.nan, math.nan, diff, diff)
    r = sps.ttest_ind(a, b, equal_var=False)
    ci = r.confidence_interval(confidence)
    return TTest(diff, float(r.statistic), float(r.df), float(r.pvalue), float(ci.low), float(ci.high))


@dataclass(frozen=True)
class PermutationTest:
    """Two-sided permutation test of the difference in means."""

    diff: float
    p: float
    exact: bool
    resamples: int


def _abs_mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    # Rounded to 12 decimals: relabelings that tie with the observed split must count as "as extreme" although their
    # means differ in the last bits (accuracies are multiples of 1/N, so ties are common).
    return np.round(np.abs(np.mean(x, axis=axis) - np.mean(y, axis=axis)), 12)


def permutation_test(a: ArrayLike, b: ArrayLike, *, exact_limit: int = 20_000, resamples: int = 9_999,
                     seed: int = 0) -> PermutationTest:
    """Two-sided permutation p of ``mean(a) - mean(b)`` (``scipy.stats.permutation_test`` of ``|mean(a) - mean(b)|``):
    exact when the splits are at most ``exact_limit``, else seeded Monte-Carlo, ``p = (1 + hits) / (1 + R)``."""
    a, b = _clean(a), _clean(b)
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return PermutationTest(math.nan, math.nan, True, 0)
    observed = float(a.mean() - b.mean())
    splits = math.comb(na + nb, na)
    exact = splits <= exact_limit or resamples >= splits
    if min(na, nb) == 1:  # scipy needs two values per sample; one value against n: n + 1 splits, enumerated here
        pooled = np.concatenate([a, b])
        one = np.eye(len(pooled), dtype=bool) if na == 1 else ~np.eye(len(pooled), dtype=bool)
        stats_ = np.array([_abs_mean_diff(pooled[m], pooled[~m]) for m in one])
        return PermutationTest(observed, float(np.mean(stats_ >= _abs_mean_diff(a, b))), True, splits)
    r = sps.permutation_test((a, b), _abs_mean_diff, vectorized=True, n_resamples=splits if exact else resamples,
                             alternative="greater", random_state=seed)
    return PermutationTest(observed, float(r.pvalue), exact, splits if exact else resamples)


@dataclass(frozen=True)
class EffectSize:
    """Cohen's d and Hedges' g (pooled SD) of ``a`` against ``b``."""

    d: float
    g: float
    pooled_sd: float
    magnitude: str


def hedges_correction(df: float) -> float:
    """Exact small-sample bias correction ``J(df)`` of Cohen's d."""
    if df < 2:
        return math.nan
    return float(math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2))


def magnitude(g: float) -> str:
    """Cohen's words for an effect size: negligible / small / medium / large."""
    if not math.isfinite(g):
        return "large" if math.isinf(g) else "unknown"
    g = abs(g)
    return "negligible" if g < 0.2 else "small" if g < 0.5 else "medium" if g < 0.8 else "large"


def effect_size(a: ArrayLike, b: ArrayLike) -> EffectSize:
    """Cohen's d with the pooled SD, and Hedges' g (d times the exact correction)."""
    a, b = _clean(a), _clean(b)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return EffectSize(math.nan, math.nan, math.nan, "unknown")
    df = na + nb - 2
    sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / df)
    diff = float(a.mean() - b.mean())
    if sp == 0:
        d = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        d = diff / sp
    g = d * hedges_correction(df) if math.isfinite(d) else d
    return EffectSize(d, g, sp, magnitude(g))


@dataclass(frozen=True)
class Comparison:
    """One arm against the baseline on one metric, with the plain-words verdict.

    ``p`` is the test's own p-value, ``p_adjusted`` the one the outcome reads (Holm within the study's
    family of comparisons on this metric; equal to ``p`` for a family of one). ``margin`` is the
    equivalence margin in the metric's units (``None``: none stated, so "equivalent" cannot be reached);
    ``mde`` the smallest true difference this comparison detects with 80% power at its n and pooled SD.
    """

    arm: str
    baseline: str
    metric: str
    n: int
    n_baseline: int
    mean: float
    mean_baseline: float
    welch: TTest
    permutation: PermutationTest
    effect: EffectSize
    test: str
    p: float
    significant: bool
    better: bool | None
    verdict: str
    p_adjusted: float = math.nan
    adjust: str = "none"
    family: int = 1
    family_kind: str = "all"  # claimed: the experiment's pre-stated claims; exploratory: the rest; all: no claim stated
    margin: float | None = None
    equivalence: Equivalence | None = None
    outcome: str = "inconclusive"
    mde: float = math.nan

    def to_dict(self) -> dict:
        return asdict(self)


def _fmt(x: float, digits: int = 1) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}f}" if math.isfinite(x) else "n/a"


def format_p(p: float) -> str:
    """``p=0.003``, ``p<0.001`` or ``p=n/a``."""
    if not math.isfinite(p):
        return "p=n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


def format_p_bare(p: float) -> str:
    """``0.003``, ``<0.001`` or ``n/a``: :func:`format_p` without the ``p=``."""
    return format_p(p).removeprefix("p=").removeprefix("p")


def compare(arm: str, values: ArrayLike, baseline: str, baseline_values: ArrayLike, *, metric: str = "val/acc",
            higher_is_better: bool = True, alpha: float = 0.05, test: str = "exact", scale: float = 1.0,
            unit: str = "", confidence: float = 0.95, seed: int = 0, margin: float | None = None,
            bounds: tuple[float, float] | None = None, power: float = 0.8) -> Comparison:
    """Test one arm against the baseline and say in words what the numbers support.

    ``test`` picks the p-value the verdict uses: ``exact`` (the default: the exact permutation p, every relabelling,
    while neither arm has more than :data:`~nasplay.report.exact.MAX_EXACT` seeds; Welch above), ``welch`` or
    ``permutation``; Welch and the permutation test are always computed and shown. ``scale`` and ``unit`` only format
    the verdict (e.g. ``100, "points"`` for accuracies in [0, 1]). ``margin`` (in the values' units) adds the
    equivalence test (TOST); ``bounds`` (the metric's range) clips the interval of the difference to what the metric
    allows. ``mde`` is the deciding test's (:mod:`~nasplay.report.power`). A family of several comparisons is
    adjusted afterwards with :func:`adjust_family`.
    """
    if test not in ("exact", "welch", "permutation"):
        raise ValueError(f"test: expected 'exact', 'welch' or 'permutation', got {test!r}")
    a, b = _clean(values), _clean(baseline_values)
    w = welch(a, b, confidence)
    if bounds is not None and math.isfinite(w.ci_low):
        span = bounds[1] - bounds[0]
        w = TTest(w.diff, w.t, w.df, w.p, max(w.ci_low, -span), min(w.ci_high, span))
    ex = exact.permutation_p(a, b, seed=seed)
    perm = PermutationTest(ex.statistic, ex.p, ex.exact, ex.count)
    eff = effect_size(a, b)
    asked = test
    if test == "exact":
        test = "permutation" if power_.deciding_test(len(a), len(b)) != "welch" else "welch"
    p = w.p if test == "welch" else perm.p
    used = "welch" if test == "welch" else ("exact permutation" if perm.exact else "permutation")
    if used == "welch" and not math.isfinite(p) and math.isfinite(perm.p) and len(a) >= 2 and len(b) >= 2:
        p, used = perm.p, "exact permutation" if perm.exact else "permutation"  # zero variance in both arms: Welch is undefined
    diff = w.diff
    better = None if not math.isfinite(diff) or diff == 0 else (diff > 0) == higher_is_better
    eq = tost(a, b, margin, alpha)
    eq = replace(eq, p_adjusted=eq.p)
    c = Comparison(arm, baseline, metric, len(a), len(b), float(a.mean()) if len(a) else math.nan,
                   float(b.mean()) if len(b) else math.nan, w, perm, eff, used, float(p), False, better, "",
                   p_adjusted=float(p), margin=margin, equivalence=eq,
                   mde=power_.mde(eff.pooled_sd, len(a), len(b), alpha=alpha, power=power, test=asked)
                   if len(a) >= 2 and len(b) >= 2 else math.nan)
    return _settle(c, eq.p, alpha=alpha, scale=scale, unit=unit, confidence=confidence)


def _settle(c: Comparison, tost_p: float, *, alpha: float, scale: float, unit: str, confidence: float) -> Comparison:
    """Outcome, significance and verdict from the (adjusted) p-values."""
    significant = bool(math.isfinite(c.p_adjusted) and c.p_adjusted < alpha)
    out = outcome(c.p_adjusted, tost_p, c.better, alpha) if c.n >= 2 and c.n_baseline >= 2 else "inconclusive"
    c = replace(c, significant=significant, outcome=out)
    return replace(c, verdict=verdict(c, tost_p, scale=scale, unit=unit, confidence=confidence, alpha=alpha))


def _test_words(c: Comparison) -> str:
    """``p=0.100 (exact permutation over 20 relabellings; Welch p=0.041)``: the deciding p, its test, Welch beside it."""
    if c.test == "welch":
        return f"{format_p(c.p)} (welch)"
    perm = c.permutation
    over = f" over {perm.resamples} relabellings" if perm.exact else f", {perm.resamples} random relabellings"
    return f"{format_p(c.p)} ({c.test}{over}; Welch {format_p(c.welch.p)})"


def verdict(c: Comparison, tost_p: float = math.nan, *, scale: float = 1.0, unit: str = "", confidence: float = 0.95,
            alpha: float = 0.05) -> str:
    """The comparison in plain words, ending on (or naming) its outcome: better, worse, equivalent or inconclusive."""
    arm, baseline, w, eff = c.arm, c.baseline, c.welch, c.effect
    u = f" {unit}" if unit else ""
    k = 1 if scale >= 100 else 3  # points of accuracy to one decimal; losses and counts to three
    diff = w.diff
    sizes = f"n={c.n}" if c.n == c.n_baseline else f"n={c.n} vs {c.n_baseline}"
    fam = {"claimed": " claimed", "exploratory": " exploratory"}.get(c.family_kind, "")
    adjusted = (f", Holm-adjusted {format_p(c.p_adjusted)} over {c.family}{fam} comparisons"
                if c.adjust != "none" and c.family > 1 else "")
    if c.n < 2 or c.n_baseline < 2:
        return f"not tested: {arm} has n={c.n} and {baseline} n={c.n_baseline} (at least 2 seeds each are needed)"
    if c.outcome in ("better", "worse"):
        # The interval of the size of the gap, |Δ|: flip and reorder the bounds when Δ < 0.
        lo, hi = sorted((math.copysign(1, diff) * w.ci_low, math.copysign(1, diff) * w.ci_high))
        ci = f"{int(confidence * 100)}% CI {_fmt(lo * scale, k)}–{_fmt(hi * scale, k)}"
        return (f"{arm} is {c.outcome} than {baseline} by {_fmt(abs(diff) * scale, k)}{u} ({ci}), "
                f"{_test_words(c)}{adjusted}, {eff.magnitude} effect (g={_fmt(eff.g, 2)})")
    ci = f"{int(confidence * 100)}% CI {_fmt(w.ci_low * scale, k)} to {_fmt(w.ci_high * scale, k)}"
    head = f"no significant difference from {baseline} at {sizes} "
    if c.significant and c.better is None:
        head = f"a difference from {baseline} at {sizes} without a direction "
    eq = c.equivalence
    if c.margin is None or eq is None or not math.isfinite(eq.p):
        tail = "; no equivalence margin stated" if c.margin is None else ""
        if c.margin is not None and eq is not None and eq.note:
            tail = f"; {eq.note}"
    else:
        mv = c.margin * scale  # stated by hand: every digit it was given (0.25, not 0.2)
        m = f"±{_fmt(mv, k) if abs(round(mv, k) - mv) < 1e-9 else f'{mv:.6g}'}{u}"
        inner = f"{int(round((1 - 2 * alpha) * 100))}% CI {_fmt(eq.ci_low * scale, k)} to {_fmt(eq.ci_high * scale, k)}"
        adj = f", adjusted {format_p_bare(tost_p)}" if c.adjust != "none" and c.family > 1 else ""
        word = "within" if c.outcome == "equivalent" else "not shown within"
        tail = f"; {word} the margin {m} ({inner}, TOST {format_p(eq.p)}{adj})"
    detect = ""
    if c.outcome == "inconclusive":
        detect = (f" (MDE {_fmt(c.mde * scale, k)}{u} at 80% power)" if math.isfinite(c.mde) else
                  f" (MDE ∞: {sizes} cannot reach p < {alpha:g} with the {c.test} test)" if math.isinf(c.mde) else "")
    return (f"{head}(Δ={'+' if diff >= 0 else ''}{_fmt(diff * scale, k)}{u}, {ci}, {_test_words(c)}{adjusted}){tail} "
            f"— {c.outcome}{detect}")


def adjust_family(comps: Sequence[Comparison], method: str = "holm", *, alpha: float = 0.05, scale: float = 1.0, unit: str = "",
                  confidence: float = 0.95, kind: str = "all") -> list[Comparison]:
    """Adjust a family of comparisons (one metric, one study) together: Holm on the tests' p-values and on the
    equivalence tests' p-values; then each comparison's outcome and verdict follow from the adjusted values."""
    comps = list(comps)
    p_adj = adjust([c.p for c in comps], method)
    eq_adj = adjust([c.equivalence.p if c.equivalence else math.nan for c in comps], method)
    out = []
    for c, pa, ea in zip(comps, p_adj, eq_adj):
        eq = replace(c.equivalence, p_adjusted=float(ea)) if c.equivalence is not None else None
        c = replace(c, p_adjusted=float(pa), adjust=method, family=len(comps), family_kind=kind, equivalence=eq)
        out.append(_settle(c, float(ea), alpha=alpha, scale=scale, unit=unit, confidence=confidence))
    return out


def pareto_front(score: ArrayLike, cost: ArrayLike) -> np.ndarray:
    """Indices of the non-dominated points (max score, min cost), ordered by cost; NaN points never count."""
    s = np.asarray(score, dtype=float)
    c = np.asarray(cost, dtype=float)
    if s.shape != c.shape:
        raise ValueError(f"pareto_front: score and cost must have the same length, got {s.shape} and {c.shape}")
    ok = np.isfinite(s) & np.isfinite(c)
    idx = np.flatnonzero(ok)
    s, c = s[ok], c[ok]
    # j dominates i: no worse in both, strictly better in one.
    dom = (c[:, None] <= c[None, :]) & (s[:, None] >= s[None, :]) & ((c[:, None] < c[None, :]) | (s[:, None] > s[None, :]))
    front = ~dom.any(axis=0)
    order = np.lexsort((-s[front], c[front]))
    return idx[front][order]


# ---------------------------------------------------------------------------------------------------
# What a reviewer asks of a verdict: multiplicity, equivalence, power, censoring, intervals in range.

OUTCOMES = ("better", "worse", "equivalent", "inconclusive")


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order; NaN stays NaN.

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))`` with ``m`` the finite p's.
    """
    p = np.asarray([np.nan if v is None else v for v in pvalues], dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def adjust(pvalues: ArrayLike, method: str = "holm") -> np.ndarray:
    """``holm`` or ``none`` (the p-values as they are)."""
    if method == "holm":
        return holm(pvalues)
    if method == "none":
        return np.asarray([np.nan if v is None else v for v in pvalues], dtype=float)
    raise ValueError(f"report.adjust: expected 'holm' or 'none', got {method!r}")


def tost(a: ArrayLike, b: ArrayLike, margin: float | None, alpha: float = 0.05) -> Equivalence:
    """Welch TOST against ``±margin`` (same units as the values); ``nan`` without a margin or two values per side.

    The two one-sided tests are scipy's ``ttest_ind(..., equal_var=False, alternative=...)`` on the values
    shifted by the margin; the interval is ``ttest_ind(a, b).confidence_interval(1 - 2 alpha)``.
    """
    a, b = _clean(a), _clean(b)
    nan = Equivalence(math.nan if margin is None else float(margin), math.nan, math.nan, math.nan, math.nan, math.nan)
    if margin is None or not margin > 0 or len(a) < 2 or len(b) < 2:
        return nan
    diff = float(a.mean() - b.mean())
    if a.var() == 0 and b.var() == 0:
        # Every seed the same in both arms: the seeds show no spread, which is not the absence of uncertainty (the
        # test set's sampling noise is still there). No equivalence is declared without an estimate of it.
        return Equivalence(float(margin), 1.0, 1.0, 1.0, diff, diff,
                           note="no spread between seeds in either arm: equivalence not testable without uncertainty")
    p_lo = float(sps.ttest_ind(a + margin, b, equal_var=False, alternative="greater").pvalue)  # H0: diff <= -margin
    p_hi = float(sps.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue)  # H0: diff >= +margin
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(1 - 2 * alpha)
    return Equivalence(float(margin), p_lo, p_hi, max(p_lo, p_hi), float(ci.low), float(ci.high))


def outcome(p_adjusted: float, tost_p_adjusted: float, better: bool | None, alpha: float = 0.05) -> str:
    """One of :data:`OUTCOMES`: a difference (adjusted p < alpha), else equivalence within the margin, else inconclusive."""
    if math.isfinite(p_adjusted) and p_adjusted < alpha and better is not None:
        return "better" if better else "worse"
    if math.isfinite(tost_p_adjusted) and tost_p_adjusted < alpha:
        return "equivalent"
    return "inconclusive"


def mde(sd: float, n_a: int, n_b: int | None = None, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect: the true difference the two-sided t-test finds with ``power`` at these n and SD."""
    n_b = n_a if n_b is None else n_b
    if n_a < 2 or n_b < 2 or not (math.isfinite(sd) and sd > 0):
        return math.nan
    from scipy.optimize import brentq

    se = sd * math.sqrt(1 / n_a + 1 / n_b)
    hi = 2 * se
    while power_t(hi, sd, n_a, n_b, alpha) < power:
        hi *= 2
    return float(brentq(lambda d: power_t(d, sd, n_a, n_b, alpha) - power, 0.0, hi, xtol=1e-12 * hi))


def seeds_needed(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8, limit: int = 10_000) -> int | None:
    """Seeds per arm for ``power`` to detect a true difference ``effect`` at this SD (``None`` if over ``limit``)."""
    if not (math.isfinite(effect) and effect != 0 and math.isfinite(sd) and sd > 0):
        return None
    n = 2
    while n <= limit:
        if power_t(abs(effect), sd, n, n, alpha) >= power:
            return n
        n = n + 1 if n < 64 else int(n * 1.25)
    return None


def logit_interval(values: ArrayLike, *, n_test: float | None = None, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of a mean proportion inside (0, 1) on the logit scale: the seeds' spread with t, the test set's
    binomial noise (``n_test`` images, possibly an effective size) with a normal quantile
    (:func:`nasplay.report.intervals.accuracy_interval`). ``nan`` below two seeds."""
    lo, hi, _ = accuracy_interval(values, n_test=n_test, confidence=confidence)
    return lo, hi


def two_level_bootstrap(values: ArrayLike, *, n_test: int | None = None, resamples: int = 4_000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile interval of a mean accuracy, resampling seeds and then each trial's test images.

    Outer level: the seeds with replacement; inner level (when ``n_test`` is known): each drawn trial's
    test accuracy redrawn as ``Binomial(n_test, acc) / n_test``. Stays inside [0, 1] by construction.
    """
    x = _clean(values)
    if len(x) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = x[rng.integers(0, len(x), size=(resamples, len(x)))]
    if n_test:
        draws = rng.binomial(max(1, int(round(n_test))), np.clip(draws, 0, 1)) / max(1, int(round(n_test)))
    lo, hi = np.quantile(draws.mean(axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def chance_threshold(classes: int, n_test: int | None) -> float:
    """The accuracy a seed must beat to count as trained: chance ``1/classes`` plus 3 binomial SEs of a chance
    classifier on ``n_test`` images (5 points when the test size is unknown)."""
    c = 1.0 / classes
    return c + (3 * math.sqrt(c * (1 - c) / n_test) if n_test else 0.05)


# --- censored time-to-target outcomes ---------------------------------------------------------------


@dataclass(frozen=True)
class TimeToTarget:
    """Seeds that reached a target (times) and those that did not (censored at their budget)."""

    n: int
    reached: int
    median: float  # Kaplan-Meier median time; inf when fewer than half reached the target
    times: list[float]
    censored_at: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def time_to_target(times: ArrayLike, censored_at: ArrayLike) -> TimeToTarget:
    """Kaplan-Meier summary: ``times`` of the seeds that reached the target, ``censored_at`` the budgets of those that did not."""
    t, c = _clean(times), _clean(censored_at)
    return TimeToTarget(len(t) + len(c), len(t), km_median(t, c), t.tolist(), c.tolist())


def km_median(times: ArrayLike, censored_at: ArrayLike) -> float:
    """The Kaplan-Meier median (``scipy.stats.ecdf`` of right-censored data): the first time S(t) <= 1/2; inf if never."""
    t, c = _clean(times), _clean(censored_at)
    if len(t) == 0:
        return math.inf if len(c) else math.nan
    sf = sps.ecdf(sps.CensoredData(uncensored=t, right=c)).sf
    below = np.flatnonzero(sf.probabilities <= 0.5 + 1e-12)
    return float(sf.quantiles[below[0]]) if len(below) else math.inf


@dataclass(frozen=True)
class CensoredComparison:
    """Time to target of one arm against a reference: the permutation log-rank test on when (exact up to 10 seeds
    per arm: every relabelling), the asymptotic log-rank beside it, Fisher's exact test on how many reached it."""

    arm: str
    baseline: str
    metric: str
    arm_summary: TimeToTarget
    baseline_summary: TimeToTarget
    fisher_p: float
    logrank_z: float  # > 0: the arm reaches the target sooner than expected under no difference
    logrank_p: float  # asymptotic (chi-square), shown beside the deciding p
    p: float  # the p-value the outcome uses: the permutation log-rank
    p_adjusted: float
    better: bool | None
    outcome: str
    verdict: str
    test: str = "exact permutation log-rank"
    relabellings: int = 0
    family: int = 1
    family_kind: str = "all"

    def to_dict(self) -> dict:
        return asdict(self)


def compare_censored(arm: str, times: ArrayLike, censored: ArrayLike, baseline: str, base_times: ArrayLike,
                     base_censored: ArrayLike, *, metric: str = "epochs_to_target") -> CensoredComparison:
    """Fisher's exact test of reached / not reached, the asymptotic log-rank test and the permutation log-rank that
    decides (:func:`nasplay.report.exact.permutation_logrank`); ``p_adjusted`` / ``outcome`` are filled by the caller."""
    a, b = time_to_target(times, censored), time_to_target(base_times, base_censored)
    fisher = math.nan
    if a.n and b.n:
        fisher = float(sps.fisher_exact([[a.reached, a.n - a.reached], [b.reached, b.n - b.reached]]).pvalue)
    z = p_asym = p = math.nan
    test, count = "exact permutation log-rank", 0
    if a.n and b.n and a.reached + b.reached > 0:
        with np.errstate(invalid="ignore", divide="ignore"):  # every time tied: no variance, p is NaN
            r = sps.logrank(sps.CensoredData(uncensored=a.times, right=a.censored_at),
                            sps.CensoredData(uncensored=b.times, right=b.censored_at))
        z, p_asym = float(r.statistic), float(r.pvalue)
        if not math.isfinite(p_asym):
            # No variance: every event at one time in both arms, so observed = expected; nothing tells them apart.
            z, p_asym = 0.0, 1.0
        perm = permutation_logrank(a.times, a.censored_at, b.times, b.censored_at)
        p, count = perm.p, perm.count
        test = "exact permutation log-rank" if perm.exact else "permutation log-rank"
    better = None if not math.isfinite(z) or z == 0 else bool(z > 0)
    return CensoredComparison(arm, baseline, metric, a, b, fisher, z, p_asym, p, math.nan, better, "inconclusive", "",
                              test=test, relabellings=count)


def censored_verdict(c: CensoredComparison, alpha: float = 0.05) -> str:
    """Plain words for a time-to-target comparison (after ``p_adjusted`` and ``outcome`` are set)."""
    what = c.metric.split("_to_target")[0]

    def med(s: TimeToTarget) -> str:
        return "not reached by half the seeds" if math.isinf(s.median) else f"median {_fmt(s.median, 1)} {what}"

    head = (f"{c.arm}: {c.arm_summary.reached} of {c.arm_summary.n} seeds reached the target ({med(c.arm_summary)}); "
            f"{c.baseline}: {c.baseline_summary.reached} of {c.baseline_summary.n} ({med(c.baseline_summary)})")
    if c.arm_summary.reached + c.baseline_summary.reached == 0:
        return f"{head}; no seed of either arm reached the target: not testable at this budget — inconclusive"
    fam = {"claimed": " claimed", "exploratory": " exploratory"}.get(c.family_kind, "")
    adj = f", Holm-adjusted {format_p_bare(c.p_adjusted)} over {c.family}{fam} comparisons" if c.family > 1 else ""
    tests = (f"{c.test} {format_p(c.p)} over {c.relabellings} relabellings{adj} (asymptotic log-rank {format_p(c.logrank_p)}); "
             f"Fisher's exact test on the counts {format_p(c.fisher_p)}")
    return f"{head}; {tests} — {c.outcome}"
