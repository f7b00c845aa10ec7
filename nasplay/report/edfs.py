"""Statistics of design spaces (Radosavovic et al. 2019): error EDFs, complexity normalisation, KS and permutation KS
tests, DKW bands, bootstrap intervals and paired populations. Pure functions of numbers (numpy / scipy), no I/O.

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
* **DKW band**: ``F ± sqrt(ln(2/α) / 2n)``, simultaneous over x; Kish's n for weighted EDFs (approximate).
* **Permutation KS**: labels shuffled over the pooled models, D recomputed (complexity weights recomputed
  per relabelling); exact enumeration when the splits are few.
* **Paired design spaces**: differences within pairs, sign-flip permutation test (``scipy.stats.
  permutation_test``), Wilcoxon signed-rank, percentile bootstrap of the mean difference.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from nasplay.sweep.results import ArrayLike
from nasplay.sweep.results import finite as _clean


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


def dkw_epsilon(n: float, alpha: float = 0.05) -> float:
    """Half-width of the simultaneous Dvoretzky-Kiefer-Wolfowitz band: ``sqrt(ln(2/alpha) / (2n))`` (Massart's constant)."""
    return math.sqrt(math.log(2 / alpha) / (2 * n)) if n > 0 else math.nan


def dkw_band(values: ArrayLike, grid: ArrayLike, weights: ArrayLike | None = None,
             alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, float]:
    """Simultaneous ``1 - alpha`` band of the (weighted) EDF on ``grid``, clipped to [0, 1], and the n it used.

    Weighted EDFs use Kish's effective sample size ``(Σw)² / Σw²``: an approximation, stated as such.
    """
    v, w = _weighted_sample(values, weights)
    grid = np.asarray(grid, dtype=float)
    if len(v) == 0:
        nan = np.full(grid.shape, np.nan)
        return nan, nan, 0.0
    n = float(w.sum() ** 2 / (w**2).sum())
    eps = dkw_epsilon(n, alpha)
    F = edf_at(v, grid, w)
    return np.clip(F - eps, 0, 1), np.clip(F + eps, 0, 1), n


def ks_permutation(a: ArrayLike, b: ArrayLike, complexity_a: ArrayLike | None = None, complexity_b: ArrayLike | None = None,
                   *, bins: int = 10, resamples: int = 2_000, seed: int = 0) -> float:
    """Permutation p-value of the KS statistic: labels shuffled over the pooled models, D recomputed.

    With complexities the EDFs are complexity-normalised and the weights are recomputed for every
    relabelling (a model's weight depends on its population). Exact for few splits, else ``(1 + hits)/(1 + R)``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    norm = complexity_a is not None and complexity_b is not None
    ca = np.asarray(complexity_a, dtype=float) if norm else np.ones(len(a))
    cb = np.asarray(complexity_b, dtype=float) if norm else np.ones(len(b))
    ka, kb = np.isfinite(a) & np.isfinite(ca), np.isfinite(b) & np.isfinite(cb)
    a, ca, b, cb = a[ka], ca[ka], b[kb], cb[kb]
    if len(a) == 0 or len(b) == 0:
        return math.nan
    pooled, cpool = np.concatenate([a, b]), np.concatenate([ca, cb])
    grid = np.unique(pooled)

    def d(ia: np.ndarray) -> float:
        mask = np.zeros(len(pooled), bool)
        mask[ia] = True
        xa, xb = pooled[mask], pooled[~mask]
        wa = wb = None
        if norm:
            wa, wb = complexity_weights([cpool[mask], cpool[~mask]], bins=bins)
            if wa.sum() == 0 or wb.sum() == 0:
                return 0.0
        return float(np.max(np.abs(edf_at(xa, grid, wa) - edf_at(xb, grid, wb))))

    observed = d(np.arange(len(a)))
    n, na = len(pooled), len(a)
    tol = 1e-12
    if math.comb(n, na) <= resamples:
        stats_ = [d(np.array(s)) for s in itertools.combinations(range(n), na)]
        return sum(s >= observed - tol for s in stats_) / len(stats_)
    rng = np.random.default_rng(seed)
    hits = sum(d(rng.permutation(n)[:na]) >= observed - tol for _ in range(resamples))
    return (1 + hits) / (1 + resamples)


def normalised_mean_diff_ci(a: ArrayLike, b: ArrayLike, complexity_a: ArrayLike, complexity_b: ArrayLike, *, bins: int = 10,
                            resamples: int = 1_000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Complexity-normalised mean difference and its percentile bootstrap interval, the weights recomputed per resample.

    Returns ``(estimate, low, high)``; a resample whose populations share no complexity bin is skipped.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ca, cb = np.asarray(complexity_a, dtype=float), np.asarray(complexity_b, dtype=float)
    ka, kb = np.isfinite(a) & np.isfinite(ca), np.isfinite(b) & np.isfinite(cb)
    a, ca, b, cb = a[ka], ca[ka], b[kb], cb[kb]
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan

    def est(xa, wa_c, xb, wb_c) -> float:
        wa, wb = complexity_weights([wa_c, wb_c], bins=bins)
        if wa.sum() == 0 or wb.sum() == 0:
            return math.nan
        return float(np.sum(wa * xa) / wa.sum() - np.sum(wb * xb) / wb.sum())

    point = est(a, ca, b, cb)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(resamples):
        ia, ib = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
        boots.append(est(a[ia], ca[ia], b[ib], cb[ib]))
    boots_ = np.array(boots)
    boots_ = boots_[np.isfinite(boots_)]
    if len(boots_) == 0:
        return point, math.nan, math.nan
    lo, hi = np.quantile(boots_, [(1 - confidence) / 2, (1 + confidence) / 2])
    return point, float(lo), float(hi)


@dataclass(frozen=True)
class PairedTest:
    """Paired design-space models (the same sampled network with the knob on and off): tests on the differences."""

    pairs: int
    mean_diff: float
    ci_low: float
    ci_high: float
    sign_flip_p: float
    wilcoxon_p: float

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(a: ArrayLike, b: ArrayLike, *, resamples: int = 9_999, confidence: float = 0.95, seed: int = 0) -> PairedTest:
    """``a[i] - b[i]`` over complete pairs: sign-flip permutation test (scipy, exact when it can be), Wilcoxon
    signed-rank test, and a percentile bootstrap interval of the mean difference."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = len(d)
    if n < 2:
        return PairedTest(n, float(d.mean()) if n else math.nan, math.nan, math.nan, math.nan, math.nan)
    perm = sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=resamples,
                                alternative="two-sided", random_state=seed)
    wil = math.nan if np.all(d == 0) else float(sps.wilcoxon(d).pvalue)
    boot = sps.bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=confidence, method="percentile", random_state=seed)
    return PairedTest(n, float(d.mean()), float(boot.confidence_interval.low), float(boot.confidence_interval.high),
                      float(perm.pvalue), wil)
