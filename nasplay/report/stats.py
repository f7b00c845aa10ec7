"""Statistics of a study: summaries over seeds, arm-vs-baseline tests, Pareto fronts and error EDFs.

Pure functions of numbers (numpy / scipy), no I/O. The definitions, so a reader knows what a number is:

* **Summary** over seeds: mean, sample standard deviation (``ddof=1``), and the 95% confidence interval
  ``mean ± t(0.975, n-1) · s / √n`` (Student's t). ``n < 2`` gives ``nan`` for std and CI.
* **Welch's t-test** (unequal variances) of ``a - b``: ``t = (ā - b̄) / √(s²a/na + s²b/nb)`` with the
  Welch–Satterthwaite degrees of freedom; two-sided p. The CI of the difference in means uses the same
  standard error and df.
* **Permutation test** of the difference in means, two-sided: the share of relabelings of the pooled
  values whose ``|mean(a') - mean(b')|`` reaches the observed one. Exact (every split enumerated) when
  there are at most ``exact_limit`` splits, otherwise seeded Monte-Carlo with ``p = (1 + hits) / (1 + R)``.
  With 3 seeds per arm there are only 20 splits, so the smallest possible p is 0.1: it cannot reach 0.05.
* **Effect size**: Hedges' g — Cohen's d with the *pooled* SD ``√(((na-1)s²a + (nb-1)s²b)/(na+nb-2))``,
  times the exact small-sample correction ``J(ν) = Γ(ν/2) / (√(ν/2) Γ((ν-1)/2))``, ``ν = na+nb-2``. With
  equal n (the usual case: the same seeds in every arm) the pooled SD equals the average-variance SD.
  Magnitude words follow Cohen: |g| < 0.2 negligible, < 0.5 small, < 0.8 medium, else large.
* **Pareto front**: the non-dominated points when maximising the score and minimising the cost.
* **EDF**: ``F(x) = Σ w_i 1[v_i ≤ x] / Σ w_i`` (right-continuous; unit weights give the plain EDF).
* **Complexity normalisation** (Radosavovic et al. 2019, "On Network Design Spaces for Visual
  Recognition", §3.2): bin log-complexity into ``k`` equal-width bins over the range *shared* by all
  populations; a model in bin ``j`` of a population with ``m_j`` models there gets weight ``1 / (k' m_j)``,
  ``k'`` = bins occupied in every population. Each population's weighted complexity distribution is then
  uniform over the same bins; models outside them get weight 0.
* **KS test**: ``D = sup |F_a - F_b|``; plain samples through ``scipy.stats.ks_2samp`` (exact p for small
  samples). For weighted EDFs the p-value is the asymptotic Kolmogorov one with Kish effective sample
  sizes ``(Σw)² / Σw²`` — an approximation, reported as such.
* **Bootstrap**: percentile intervals from seeded resampling with replacement (within each population).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

ArrayLike = Sequence[float] | np.ndarray


def _clean(x: ArrayLike) -> np.ndarray:
    """Values as a float array with NaN / None dropped (failed or missing seeds)."""
    a = np.asarray([np.nan if v is None else v for v in x], dtype=float) if not isinstance(x, np.ndarray) else x.astype(float)
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Summary:
    """Mean, std and t-interval of one arm's values over seeds."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    def to_dict(self) -> dict:
        return asdict(self)


def t_quantile(confidence: float, df: float) -> float:
    """Two-sided Student-t critical value: ``t`` with ``P(|T| <= t) = confidence``."""
    return float(sps.t.ppf(0.5 + confidence / 2, df))


def summarize(values: ArrayLike, confidence: float = 0.95) -> Summary:
    """Mean, sample std (ddof=1) and ``mean ± t·s/√n`` interval; ``nan`` where n is too small."""
    x = _clean(values)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan, confidence)
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan, math.nan, confidence)
    std = float(x.std(ddof=1))
    sem = std / math.sqrt(n)
    h = t_quantile(confidence, n - 1) * sem
    return Summary(n, mean, std, sem, mean - h, mean + h, confidence)


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
    """Welch's unequal-variance t-test, two-sided; ``nan`` where either side has fewer than 2 values."""
    a, b = _clean(a), _clean(b)
    na, nb = len(a), len(b)
    diff = float(a.mean() - b.mean()) if na and nb else math.nan
    if na < 2 or nb < 2:
        return TTest(diff, math.nan, math.nan, math.nan, math.nan, math.nan)
    qa, qb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    se = math.sqrt(qa + qb)
    if se == 0:
        # Every seed gave the same value in both arms: the test is undefined (the permutation test still works).
        return TTest(diff, math.nan, math.nan, math.nan, diff, diff)
    t = diff / se
    df = (qa + qb) ** 2 / (qa**2 / (na - 1) + qb**2 / (nb - 1))
    p = float(2 * sps.t.sf(abs(t), df))
    h = t_quantile(confidence, df) * se
    return TTest(diff, float(t), float(df), p, diff - h, diff + h)


@dataclass(frozen=True)
class PermutationTest:
    """Two-sided permutation test of the difference in means."""

    diff: float
    p: float
    exact: bool
    resamples: int


def permutation_test(a: ArrayLike, b: ArrayLike, *, exact_limit: int = 20_000, resamples: int = 9_999,
                     seed: int = 0) -> PermutationTest:
    """Two-sided permutation p of ``mean(a) - mean(b)``: exact when the splits are few, else seeded Monte-Carlo."""
    a, b = _clean(a), _clean(b)
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return PermutationTest(math.nan, math.nan, True, 0)
    pooled = np.concatenate([a, b])
    n, total = na + nb, pooled.sum()
    observed = a.mean() - b.mean()
    # Ties in the statistic must count as "as extreme": compare with a relative tolerance.
    tol = 1e-12 * max(1.0, float(np.abs(pooled).max()))
    splits = math.comb(n, na)
    if splits <= exact_limit:
        idx = np.array(list(itertools.combinations(range(n), na)), dtype=np.intp)
        sa = pooled[idx].sum(axis=1)
        stat = sa / na - (total - sa) / nb
        hits = int(np.count_nonzero(np.abs(stat) >= abs(observed) - tol))
        return PermutationTest(float(observed), hits / splits, True, splits)
    rng = np.random.default_rng(seed)
    perm = rng.permuted(np.broadcast_to(pooled, (resamples, n)), axis=1)
    sa = perm[:, :na].sum(axis=1)
    stat = sa / na - (total - sa) / nb
    hits = int(np.count_nonzero(np.abs(stat) >= abs(observed) - tol))
    return PermutationTest(float(observed), (1 + hits) / (1 + resamples), False, resamples)


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
    """One arm against the baseline on one metric, with the plain-words verdict."""

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


def compare(arm: str, values: ArrayLike, baseline: str, baseline_values: ArrayLike, *, metric: str = "val/acc",
            higher_is_better: bool = True, alpha: float = 0.05, test: str = "welch", scale: float = 1.0,
            unit: str = "", confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Test one arm against the baseline and say in words what the numbers support.

    ``test`` picks the p-value the verdict uses (``welch`` or ``permutation``); both are always computed.
    ``scale`` and ``unit`` only format the verdict (e.g. ``100, "points"`` for accuracies in [0, 1]).
    """
    if test not in ("welch", "permutation"):
        raise ValueError(f"test: expected 'welch' or 'permutation', got {test!r}")
    a, b = _clean(values), _clean(baseline_values)
    w = welch(a, b, confidence)
    perm = permutation_test(a, b, seed=seed)
    eff = effect_size(a, b)
    p = w.p if test == "welch" else perm.p
    used = test
    if test == "welch" and not math.isfinite(p) and math.isfinite(perm.p) and len(a) >= 2 and len(b) >= 2:
        p, used = perm.p, "permutation"  # zero variance in both arms: Welch is undefined
    significant = bool(math.isfinite(p) and p < alpha)
    diff = w.diff
    better = None if not math.isfinite(diff) or diff == 0 else (diff > 0) == higher_is_better
    u = f" {unit}" if unit else ""
    sizes = f"n={len(a)}" if len(a) == len(b) else f"n={len(a)} vs {len(b)}"
    if len(a) < 2 or len(b) < 2:
        verdict = f"not tested: {arm} has n={len(a)} and {baseline} n={len(b)} (at least 2 seeds each are needed)"
    elif significant:
        word = "better" if better else "worse"
        # The interval of the size of the gap, |Δ|: flip and reorder the bounds when Δ < 0.
        lo, hi = sorted((math.copysign(1, diff) * w.ci_low, math.copysign(1, diff) * w.ci_high))
        ci = f"{int(confidence * 100)}% CI {_fmt(lo * scale)}–{_fmt(hi * scale)}"
        verdict = (f"{arm} is {word} than {baseline} by {_fmt(abs(diff) * scale)}{u} ({ci}), "
                   f"{format_p(p)} ({used}), {eff.magnitude} effect (g={_fmt(eff.g, 2)})")
    else:
        ci = f"{int(confidence * 100)}% CI {_fmt(w.ci_low * scale)} to {_fmt(w.ci_high * scale)}"
        verdict = (f"no significant difference from {baseline} at {sizes} "
                   f"(Δ={'+' if diff >= 0 else ''}{_fmt(diff * scale)}{u}, {ci}, {format_p(p)}, {used}) — inconclusive")
    return Comparison(arm, baseline, metric, len(a), len(b), float(a.mean()) if len(a) else math.nan,
                      float(b.mean()) if len(b) else math.nan, w, perm, eff, used, float(p), significant,
                      better, verdict)


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


def edf(values: ArrayLike, weights: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The (weighted) empirical distribution function as steps: sorted distinct values and ``F`` at each."""
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    if len(v) == 0:
        return np.array([]), np.array([])
    xs, inv = np.unique(v, return_inverse=True)
    mass = np.bincount(inv, weights=w)
    return xs, np.cumsum(mass) / w.sum()


def edf_at(values: ArrayLike, x: ArrayLike, weights: ArrayLike | None = None) -> np.ndarray:
    """``F(x) = Σ w_i 1[v_i ≤ x] / Σ w_i`` evaluated at each ``x``."""
    xs, F = edf(values, weights)
    x = np.asarray(x, dtype=float)
    if len(xs) == 0:
        return np.full(x.shape, np.nan)
    pos = np.searchsorted(xs, x, side="right")
    return np.where(pos > 0, F[np.maximum(pos - 1, 0)], 0.0)


def complexity_weights(complexities: Sequence[ArrayLike], bins: int = 10, log: bool = True) -> list[np.ndarray]:
    """Per-model weights that give every population the same (uniform) complexity distribution.

    Radosavovic et al. 2019, §3.2: ``bins`` equal-width bins (in log space by default) over the complexity
    range all populations share; weight ``1 / (k' m_j)`` for a model in bin ``j`` holding ``m_j`` of its
    population's models, ``k'`` the bins occupied in every population. Each weight vector sums to 1.
    """
    if bins < 1:
        raise ValueError(f"bins: expected a positive integer, got {bins}")
    cs = [np.asarray(c, dtype=float) for c in complexities]
    if any(log and np.any(c[np.isfinite(c)] <= 0) for c in cs):
        raise ValueError("complexity_weights: complexities must be positive for log binning (use log=False)")
    ts = [np.log(c) if log else c for c in cs]
    finite = [t[np.isfinite(t)] for t in ts]
    if any(len(f) == 0 for f in finite):
        return [np.zeros(len(t)) for t in ts]
    lo, hi = max(f.min() for f in finite), min(f.max() for f in finite)
    if lo > hi:  # the populations do not overlap in complexity: nothing can be compared
        return [np.zeros(len(t)) for t in ts]
    edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo, hi])
    nb = len(edges) - 1
    binned = []
    for t in ts:
        inside = np.isfinite(t) & (t >= lo) & (t <= hi)
        j = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, nb - 1)
        binned.append(np.where(inside, j, -1))
    counts = np.array([np.bincount(j[j >= 0], minlength=nb) for j in binned])
    shared = (counts > 0).all(axis=0)
    k = int(shared.sum())
    out = []
    for j, cnt in zip(binned, counts):
        w = np.zeros(len(j))
        ok = (j >= 0) & shared[np.maximum(j, 0)]
        w[ok] = 1.0 / (k * cnt[j[ok]])
        out.append(w)
    return out


@dataclass(frozen=True)
class KSTest:
    """Two-sample Kolmogorov–Smirnov statistic and p-value."""

    statistic: float
    p: float
    n_a: float
    n_b: float
    method: str


def ks_test(a: ArrayLike, b: ArrayLike, weights_a: ArrayLike | None = None, weights_b: ArrayLike | None = None) -> KSTest:
    """``D = sup |F_a - F_b|``: scipy's ks_2samp for plain samples; weighted: asymptotic p with Kish sizes."""
    if weights_a is None and weights_b is None:
        a, b = _clean(a), _clean(b)
        if len(a) == 0 or len(b) == 0:
            return KSTest(math.nan, math.nan, len(a), len(b), "none")
        r = sps.ks_2samp(a, b)
        return KSTest(float(r.statistic), float(r.pvalue), len(a), len(b), "ks_2samp")
    a, wa = _weighted_sample(a, weights_a)
    b, wb = _weighted_sample(b, weights_b)
    if len(a) == 0 or len(b) == 0:
        return KSTest(math.nan, math.nan, 0, 0, "none")
    grid = np.union1d(a, b)
    d = float(np.max(np.abs(edf_at(a, grid, wa) - edf_at(b, grid, wb))))
    na, nb = wa.sum() ** 2 / (wa**2).sum(), wb.sum() ** 2 / (wb**2).sum()
    p = float(sps.kstwobign.sf(d * math.sqrt(na * nb / (na + nb))))
    return KSTest(d, min(1.0, p), float(na), float(nb), "weighted, asymptotic (Kish effective n)")


def _weighted_sample(x: ArrayLike, w: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights (default 1) with non-finite values and non-positive weights dropped."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    keep = np.isfinite(x) & (w > 0)
    return x[keep], w[keep]


def _weighted_mean(x: np.ndarray, w: np.ndarray | None = None) -> float:
    return float(np.average(x, weights=w)) if w is not None else float(np.mean(x))


def bootstrap_ci(values: ArrayLike, statistic: Callable[..., float] = _weighted_mean, *, weights: ArrayLike | None = None,
                 resamples: int = 2_000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(values[, weights])``, seeded."""
    v = np.asarray(values, dtype=float)
    w = None if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(v) if w is None else np.isfinite(v) & (w > 0)
    v = v[keep]
    w = None if w is None else w[keep]
    if len(v) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(resamples, len(v)))
    stats = np.array([statistic(v[i], w[i]) if w is not None else statistic(v[i]) for i in idx])
    lo, hi = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def bootstrap_diff_ci(a: ArrayLike, b: ArrayLike, *, weights_a: ArrayLike | None = None, weights_b: ArrayLike | None = None,
                      resamples: int = 2_000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a) - mean(b)`` (weighted means when weights are given)."""
    a, wa = _weighted_sample(a, weights_a)
    b, wb = _weighted_sample(b, weights_b)
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), size=(resamples, len(a)))
    ib = rng.integers(0, len(b), size=(resamples, len(b)))
    ma = (a[ia] * wa[ia]).sum(axis=1) / wa[ia].sum(axis=1)
    mb = (b[ib] * wb[ib]).sum(axis=1) / wb[ib].sum(axis=1)
    lo, hi = np.quantile(ma - mb, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def bootstrap_edf_band(values: ArrayLike, grid: ArrayLike, *, weights: ArrayLike | None = None, resamples: int = 500,
                       confidence: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile bootstrap band of the (weighted) EDF on ``grid``."""
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    grid = np.asarray(grid, dtype=float)
    if len(v) == 0:
        nan = np.full(grid.shape, np.nan)
        return nan, nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(resamples, len(v)))
    curves = np.array([edf_at(v[i], grid, w[i]) for i in idx])
    lo, hi = np.quantile(curves, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return lo, hi
