"""Intervals that count the right noise, and the equivalence tests that read them.

* **Accuracy interval** (:func:`accuracy_interval`): the mean accuracy over seeds on the logit scale (delta
  method) with two variances: the seeds' spread ``s² / n``, an estimate with ``n - 1`` df (Student's t), and the
  test set's binomial variance ``p̄ (1 - p̄) / N_eff``, known once ``p̄`` is (a normal quantile). Their sum takes
  the t quantile of the Satterthwaite df ``(v_s + v_b)² / (v_s² / (n - 1))`` — infinite for the known part —
  so that with a tiny seed spread the interval is the normal one of the test set, and with no test-set size the
  t-interval of the seeds. Never a t quantile with 2 df on a known variance.
* **Images that share a source** (:func:`effective_test_size`): clutter composes its test images from a pool
  of source digits, so images are not independent draws. With ``N`` images from ``G`` sources (``m = N / G``
  per source) the design effect is ``1 + (m - 1) ρ`` with ``ρ`` the correlation of correctness within a
  source; ``N_eff = N / deff``. Without per-image predictions ``ρ`` is unknown and taken as 1 (each source
  counts once: ``N_eff = G``), the bound that cannot understate the noise. :func:`cluster_bootstrap` is the
  interval when per-image correctness and source ids are at hand.
* **Equivalence margins** (:func:`margin_floor`): a margin below the test set's resolution (one image:
  ``1 / N_test``) cannot be shown; it is raised to that and the report says so.
* **Paired equivalence** (:func:`tost_paired`): two one-sided one-sample t-tests of the paired differences
  against ``±margin``, as paired designs test the difference itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

from nasplay.sweep.results import finite as _clean  # values as floats, NaN and None dropped


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided Welch tests (TOST) of ``|mean(a) - mean(b)| < margin``; ``p`` is the larger one-sided p."""

    margin: float
    p_lower: float  # H0: diff <= -margin
    p_upper: float  # H0: diff >= +margin
    p: float
    ci_low: float  # the (1 - 2 alpha) interval TOST is equivalent to
    ci_high: float
    p_adjusted: float = math.nan  # within the family (Holm), set by adjust_family
    paired: bool = False  # one-sample TOST of paired differences (nasplay.report.intervals.tost_paired)
    note: str = ""


def effective_test_size(n_test: int | None, sources: int | None = None, icc: float = 1.0) -> float | None:
    """``N / (1 + (N / G - 1) ρ)``: the test set's size counted at the level of its ``sources`` (``None``: independent images)."""
    if not n_test:
        return None
    if not sources or sources >= n_test:
        return float(n_test)
    if not 0 <= icc <= 1:
        raise ValueError(f"icc must be in [0, 1], got {icc!r}")
    return n_test / (1 + (n_test / sources - 1) * icc)


def satterthwaite_df(v_estimated: float, df_estimated: float, v_known: float) -> float:
    """Degrees of freedom of ``v_estimated + v_known`` where only the first is estimated (with ``df_estimated``)."""
    if v_estimated <= 0:
        return math.inf
    return (v_estimated + v_known) ** 2 / (v_estimated**2 / df_estimated)


def accuracy_interval(values, *, n_test: float | None = None, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(low, high, df)``: the interval of a mean accuracy inside (0, 1), seeds with t and the test set with z (see the
    module's notes); ``n_test`` may be an effective size. ``nan`` below two seeds."""
    x = _clean(values)
    n = len(x)
    if n < 2:
        return math.nan, math.nan, math.nan
    floor = 0.5 / max(n_test or 1000, 1)
    p = float(np.clip(x.mean(), floor, 1 - floor))
    v_seeds = float(x.var(ddof=1)) / n
    v_test = p * (1 - p) / n_test if n_test else 0.0
    if v_seeds + v_test == 0:
        return p, p, math.inf
    df = satterthwaite_df(v_seeds, n - 1, v_test)
    q = sps.norm.ppf((1 + confidence) / 2) if math.isinf(df) else sps.t.ppf((1 + confidence) / 2, df)
    h = q * math.sqrt(v_seeds + v_test) / (p * (1 - p))
    z = math.log(p / (1 - p))
    return float(special.expit(z - h)), float(special.expit(z + h)), float(df)


def cluster_bootstrap(correct, source, *, resamples: int = 4000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(accuracy, low, high)`` of one model's per-image ``correct`` (0/1), resampling whole ``source`` clusters."""
    c = np.asarray(correct, dtype=float)
    s = np.asarray(source)
    ids, inv = np.unique(s, return_inverse=True)
    hits = np.bincount(inv, weights=c, minlength=len(ids))
    sizes = np.bincount(inv, minlength=len(ids)).astype(float)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(ids), size=(resamples, len(ids)))
    acc = hits[draw].sum(1) / sizes[draw].sum(1)
    lo, hi = np.quantile(acc, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(c.mean()), float(lo), float(hi)


def design_effect(correct, source) -> float:
    """The design effect of a clustered proportion (the variance of the cluster-robust ratio estimator over the
    binomial one), from one model's per-image ``correct`` and ``source``: what :func:`effective_test_size` divides by."""
    c = np.asarray(correct, dtype=float)
    _, inv = np.unique(np.asarray(source), return_inverse=True)
    g = inv.max() + 1
    p = c.mean()
    if p in (0.0, 1.0):
        return 1.0
    resid = np.bincount(inv, weights=c - p, minlength=g)
    v_cluster = g / (g - 1) * float((resid**2).sum()) / len(c) ** 2
    return v_cluster / (p * (1 - p) / len(c))


def margin_floor(margin: float | None, n_test: int | None) -> tuple[float | None, str]:
    """The margin raised to the test set's resolution (one image, ``1 / n_test``) where it is below it, and why."""
    if margin is None or not n_test:
        return margin, ""
    res = 1.0 / n_test
    if margin >= res:
        return margin, ""
    return res, (f"equivalence margin raised from {100 * margin:.3g} to {100 * res:.3g} points: one of the {n_test} "
                 f"test images, the finest difference the test set can show")


def tost_paired(d, margin: float | None, alpha: float = 0.05):
    """Paired TOST: one-sample t-tests of the differences ``d`` against ``-margin`` (greater) and ``+margin`` (less)."""
    d = _clean(d)
    if margin is None or not margin > 0 or len(d) < 2:
        return Equivalence(math.nan if margin is None else float(margin), math.nan, math.nan, math.nan, math.nan, math.nan,
                           paired=True)
    mean = float(d.mean())
    if d.var() == 0:
        return Equivalence(float(margin), 1.0, 1.0, 1.0, mean, mean, paired=True,
                           note="every paired difference the same: equivalence not testable without uncertainty")
    p_lo = float(sps.ttest_1samp(d, -margin, alternative="greater").pvalue)
    p_hi = float(sps.ttest_1samp(d, margin, alternative="less").pvalue)
    ci = sps.ttest_1samp(d, 0.0).confidence_interval(1 - 2 * alpha)
    return Equivalence(float(margin), p_lo, p_hi, max(p_lo, p_hi), float(ci.low), float(ci.high), paired=True)
