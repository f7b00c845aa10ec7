"""Exact permutation tests for the small n of a study's seeds: every relabelling, every sign flip.

With a handful of seeds per arm a p-value that rests on the normality of three numbers is not evidence; a
permutation test needs no such assumption and is exact when it enumerates every relabelling. The definitions:

* **Two-sample** (:func:`permutation_p`): the statistic is ``|mean(a') - mean(b')|`` over every split of the
  pooled values into groups of the arms' sizes (``C(na + nb, na)`` splits: 20 for 3 + 3, 252 for 5 + 5, 184,756
  for 10 + 10); ``p`` is the share of splits at least as extreme as the observed one (ties count, to 1e-12).
  The smallest p it can give is ``2 / C(na + nb, na)`` (0.1 at 3 + 3): three seeds per arm cannot reach 0.05.
  Above ``max_exact`` seeds in an arm the splits are drawn at random, ``p = (1 + hits) / (1 + R)``.
* **Paired** (:func:`sign_flip_p`): the statistic is ``|mean(s · d)|`` over every sign vector ``s`` of the
  paired differences ``d`` (``2^n`` of them); the same tie rule.
* **Censored time to target** (:func:`permutation_logrank`): the log-rank ``z = (O - E) / √V`` of the first
  group (events observed minus expected under no difference, over the distinct event times; hypergeometric
  variance), recomputed for every split of the pooled (time, reached) pairs; ``p`` is the share with
  ``|z| >= |z_obs|``. A split without variance (no event time where both groups are at risk) has ``z = 0``.
  ``z > 0``: the first group reaches the target sooner than expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from nasplay.sweep.results import finite as _clean  # values as floats, NaN and None dropped

#: Seeds per arm up to which the deciding p enumerates every relabelling (C(20, 10) = 184,756 splits).
MAX_EXACT = 10
_TOL = 1e-12


@dataclass(frozen=True)
class ExactTest:
    """A permutation p: ``exact`` when every relabelling was enumerated (``count`` of them), else ``count`` draws."""

    statistic: float
    p: float
    exact: bool
    count: int

    @property
    def min_p(self) -> float:
        """The smallest p the test could have given (one relabelling of ``count`` at least as extreme: 2 by symmetry)."""
        return 2 / self.count if self.exact and self.count else math.nan


@lru_cache(maxsize=64)
def splits(n_a: int, n_b: int) -> np.ndarray:
    """Every split of ``n_a + n_b`` pooled values as a boolean matrix (one row a split, True: the first group);
    row 0 is the observed split (the first ``n_a`` values)."""
    n = n_a + n_b
    idx = np.array(list(combinations(range(n), n_a)), dtype=np.int64).reshape(-1, n_a)
    m = np.zeros((len(idx), n), dtype=bool)
    m[np.arange(len(idx))[:, None], idx] = True
    m.setflags(write=False)
    return m


def _random_splits(n_a: int, n_b: int, draws: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = n_a + n_b
    order = np.argsort(rng.random((draws, n)), axis=1)
    m = np.zeros((draws + 1, n), dtype=bool)
    m[0, :n_a] = True
    m[np.arange(1, draws + 1)[:, None], order[:, :n_a]] = True
    return m


def _masks(n_a: int, n_b: int, max_exact: int, draws: int, seed: int) -> tuple[np.ndarray, bool]:
    if max(n_a, n_b) <= max_exact or math.comb(n_a + n_b, n_a) <= draws:
        return splits(n_a, n_b), True
    return _random_splits(n_a, n_b, draws, seed), False


def _p(stats_: np.ndarray, exact: bool) -> float:
    """Share of relabellings at least as extreme as row 0 (exact), or (1 + hits) / (1 + R) over random draws."""
    obs = stats_[0]
    hits = stats_ >= obs - _TOL * max(1.0, abs(obs))
    return float(hits.mean()) if exact else float(hits.sum() / len(hits))  # row 0 is the "+1" of both counts


def permutation_p(a, b, *, max_exact: int = MAX_EXACT, draws: int = 20_000, seed: int = 0) -> ExactTest:
    """Two-sided permutation test of ``mean(a) - mean(b)``: every split when neither arm has more than ``max_exact``
    values, else ``draws`` random splits. ``statistic`` is the observed ``mean(a) - mean(b)``."""
    a, b = _clean(a), _clean(b)
    if len(a) == 0 or len(b) == 0:
        return ExactTest(math.nan, math.nan, True, 0)
    m, exact = _masks(len(a), len(b), max_exact, draws, seed)
    x = np.concatenate([a, b])
    sa = m.astype(float) @ x
    stat = np.abs(sa / len(a) - (x.sum() - sa) / len(b))
    return ExactTest(float(a.mean() - b.mean()), _p(stat, exact), exact, len(m) if exact else len(m) - 1)


@lru_cache(maxsize=32)
def _signs(n: int) -> np.ndarray:
    s = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1)
    s.setflags(write=False)
    return s  # row 0: no flip (the observed signs)


def sign_flip_p(d, *, max_exact: int = 16, draws: int = 20_000, seed: int = 0) -> ExactTest:
    """Two-sided sign-flip test of ``mean(d) = 0`` for paired differences: all ``2^n`` flips up to ``max_exact`` pairs."""
    d = _clean(d)
    n = len(d)
    if n == 0:
        return ExactTest(math.nan, math.nan, True, 0)
    if n <= max_exact:
        s, exact = _signs(n), True
    else:
        rng = np.random.default_rng(seed)
        s = np.vstack([np.ones(n), rng.choice([-1.0, 1.0], size=(draws, n))])
        exact = False
    stat = np.abs(s @ d) / n
    return ExactTest(float(d.mean()), _p(stat, exact), exact, len(s) if exact else len(s) - 1)


def logrank_z(times: np.ndarray, events: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Log-rank ``z`` of the first group (True in each row of ``masks``) for every row: ``(O - E) / √V``, 0 without variance."""
    t = np.asarray(times, dtype=float)
    e = np.asarray(events, dtype=bool)
    u = np.unique(t[e])
    if len(u) == 0:
        return np.zeros(len(masks))
    at_risk = (t[:, None] >= u[None, :]).astype(float)  # N x J
    dead = ((t[:, None] == u[None, :]) & e[:, None]).astype(float)
    n_j, d_j = at_risk.sum(0), dead.sum(0)
    m = masks.astype(float)
    na_j, da_j = m @ at_risk, m @ dead  # rows x J
    frac = na_j / n_j
    o_e = (da_j - d_j * frac).sum(1)
    v = (d_j * frac * (1 - frac) * (n_j - d_j) / np.maximum(n_j - 1, 1)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(v > _TOL, o_e / np.sqrt(np.where(v > _TOL, v, 1.0)), 0.0)
    return z


@dataclass(frozen=True)
class LogrankTest:
    """The permutation log-rank test of one arm's times to a target against a reference's (censored at their budgets)."""

    z: float  # the observed log-rank z of the arm: > 0, it reaches the target sooner
    p: float
    exact: bool
    count: int


def permutation_logrank(times_a, censored_a, times_b, censored_b, *, max_exact: int = MAX_EXACT, draws: int = 20_000,
                        seed: int = 0) -> LogrankTest:
    """Exact permutation log-rank (two-sided): the log-rank z recomputed for every split of the pooled seeds, each
    keeping its own (time, reached) pair. ``p`` is NaN where no seed of either arm reached the target."""
    ta, ca, tb, cb = _clean(times_a), _clean(censored_a), _clean(times_b), _clean(censored_b)
    n_a, n_b = len(ta) + len(ca), len(tb) + len(cb)
    if n_a == 0 or n_b == 0:
        return LogrankTest(math.nan, math.nan, True, 0)
    t = np.concatenate([ta, ca, tb, cb])
    e = np.concatenate([np.ones(len(ta), bool), np.zeros(len(ca), bool), np.ones(len(tb), bool), np.zeros(len(cb), bool)])
    m, exact = _masks(n_a, n_b, max_exact, draws, seed)
    if not e.any():
        return LogrankTest(math.nan, math.nan, exact, len(m) if exact else len(m) - 1)
    z = logrank_z(t, e, m)
    return LogrankTest(float(z[0]), _p(np.abs(z), exact), exact, len(m) if exact else len(m) - 1)
