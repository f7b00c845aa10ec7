"""Power of the test that decides a verdict, by simulation: the minimum detectable effect and the seeds a claim needs.

The deciding test at up to :data:`~nasplay.report.exact.MAX_EXACT` seeds per arm is the exact permutation test
(:mod:`~nasplay.report.exact`), above it Welch's t-test. Both are invariant to the location and scale of the
values, so their power depends only on ``δ / σ`` and the arms' sizes: it is simulated once per design with
normal seeds (``sims`` data sets of a fixed seed, the same draws for every δ, so power rises with δ as it
should) and cached. The split enumeration of each simulated data set is replaced by ``SPLITS`` random splits
wherever there are more than ``5 · SPLITS`` splits — only in the power computation, where it changes the estimate by less than the
simulation's own error.

* :func:`power` — the share of simulated studies with ``p < alpha`` at a true difference ``δ`` (in SDs).
* :func:`mde_sd` — the smallest ``δ / σ`` with power >= ``power`` (``inf`` where the test cannot reach ``alpha``
  at all: 3 + 3 seeds give an exact p of at least 0.1).
* :func:`mde` — that times the SD; :func:`seeds_needed` — the seeds per arm at which ``|effect| / σ`` reaches it.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats as sps

from nasplay.report import exact

SIMS = 2_000
SPLITS = 2_000  # random splits per simulated data set where an arm has more than MAX_EXACT seeds


def deciding_test(n_a: int, n_b: int, test: str = "exact") -> str:
    """The test whose p decides a comparison of arms of these sizes under ``report.test`` (``exact``: the exact
    permutation test up to MAX_EXACT seeds per arm, Welch above; ``welch``; ``permutation``)."""
    if test == "welch":
        return "welch"
    return "exact permutation" if max(n_a, n_b) <= exact.MAX_EXACT else ("welch" if test == "exact" else "permutation")


@lru_cache(maxsize=256)
def _noise(n_a: int, n_b: int, sims: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((sims, n_a + n_b))
    z.setflags(write=False)
    return z


def _rejects(delta: float, n_a: int, n_b: int, alpha: float, sims: int, seed: int, test: str = "exact") -> np.ndarray:
    """Which simulated studies (normal seeds, SD 1, the first arm shifted by ``delta``) the deciding test rejects."""
    x = _noise(n_a, n_b, sims, seed).copy()
    x[:, :n_a] += delta
    if deciding_test(n_a, n_b, test) == "welch":
        from scipy import stats as sps

        return sps.ttest_ind(x[:, :n_a], x[:, n_a:], axis=1, equal_var=False).pvalue < alpha
    m, _ = exact._masks(n_a, n_b, exact.MAX_EXACT if math.comb(n_a + n_b, n_a) <= 5 * SPLITS else 0, SPLITS, seed)
    mf = m.astype(float)
    out = np.empty(sims, dtype=bool)
    step = max(1, 4_000_000 // len(m))  # bound the memory of sims x splits
    for i in range(0, sims, step):
        xs = x[i:i + step]
        sa = xs @ mf.T  # sims x splits: the first group's sum in every split
        stat = np.abs(sa / n_a - (xs.sum(1, keepdims=True) - sa) / n_b)
        obs = stat[:, :1]
        hits = (stat >= obs - 1e-12 * np.maximum(1.0, obs)).mean(1)
        out[i:i + step] = hits < alpha  # the p of each study ((1 + hits) / (1 + R) when drawn: row 0 is the observed split)
    return out


def min_p(n_a: int, n_b: int, test: str = "exact") -> float:
    """The smallest p the deciding test can give at these sizes (0 for Welch: no floor)."""
    return 2 / math.comb(n_a + n_b, n_a) if deciding_test(n_a, n_b, test) != "welch" else 0.0


def power(delta_sd: float, n_a: int, n_b: int | None = None, *, alpha: float = 0.05, sims: int = SIMS, seed: int = 0,
          test: str = "exact") -> float:
    """Power of the deciding test to detect a true difference of ``delta_sd`` SDs (normal seeds, equal SDs)."""
    n_b = n_a if n_b is None else n_b
    if n_a < 2 or n_b < 2:
        return math.nan
    return float(_rejects(float(abs(delta_sd)), n_a, n_b, alpha, sims, seed, test).mean())


@lru_cache(maxsize=512)
def mde_sd(n_a: int, n_b: int, alpha: float = 0.05, target: float = 0.8, sims: int = SIMS, seed: int = 0,
           test: str = "exact") -> float:
    """The smallest true difference, in SDs, the deciding test detects with power ``target``; inf when it cannot."""
    if n_a < 2 or n_b < 2:
        return math.nan
    if min_p(n_a, n_b, test) > alpha:
        return math.inf
    lo, hi = 0.0, 1.0
    while power(hi, n_a, n_b, alpha=alpha, sims=sims, seed=seed, test=test) < target:
        lo, hi = hi, hi * 2
        if hi > 1e3:
            return math.inf
    for _ in range(30):
        mid = (lo + hi) / 2
        if power(mid, n_a, n_b, alpha=alpha, sims=sims, seed=seed, test=test) >= target:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-3 * hi:
            break
    return hi


def mde(sd: float, n_a: int, n_b: int | None = None, *, alpha: float = 0.05, power: float = 0.8, test: str = "exact") -> float:
    """Minimum detectable effect of the deciding test at these sizes and SD (the metric's units); inf if it cannot decide."""
    n_b = n_a if n_b is None else n_b
    if n_a < 2 or n_b < 2 or not (math.isfinite(sd) and sd >= 0):
        return math.nan
    k = mde_sd(int(n_a), int(n_b), float(alpha), float(power), test=test)
    if sd == 0:
        return 0.0 if math.isfinite(k) else math.inf
    return k * sd


def seeds_needed(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8, limit: int = 100_000,
                 test: str = "exact") -> int | None:
    """Seeds per arm at which the deciding test detects a true difference ``effect`` with ``power`` (None above ``limit``).

    Up to :data:`~nasplay.report.exact.MAX_EXACT` seeds the exact permutation test's simulated power; above it
    Welch's (the noncentral t with ``2n - 2`` df, which equal SDs and equal n give Welch's test)."""
    if not (math.isfinite(effect) and effect != 0 and math.isfinite(sd) and sd > 0):
        return None
    k = abs(effect) / sd
    for n in range(2, exact.MAX_EXACT + 1):
        if mde_sd(n, n, float(alpha), float(power), test=test) <= k:
            return n
    lo, hi = exact.MAX_EXACT, limit  # power rises with n: bisect for the first n that reaches it
    if power_t(k, 1.0, hi, hi, alpha) < power:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_t(k, 1.0, mid, mid, alpha) >= power else (mid, hi)
    return hi


def power_t(delta: float, sd: float, n_a: int, n_b: int, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t-test (pooled df) to detect a true difference ``delta`` (noncentral t)."""
    if n_a < 2 or n_b < 2 or not sd > 0:
        return math.nan
    df = n_a + n_b - 2
    nc = delta / (sd * math.sqrt(1 / n_a + 1 / n_b))
    t = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(t, df, nc) + sps.nct.cdf(-t, df, nc))
