"""The reviewer's statistics of nasplay.report.stats against closed forms and scipy, on constructed data.

Holm, TOST, power / minimum detectable effect, intervals that stay in range (the logit t-interval and the
two-level bootstrap), censored time-to-target outcomes (Kaplan-Meier, log-rank, Fisher), and the design-space
pieces (DKW bands, permutation KS, weights recomputed per resample, paired sign-flip tests). Seconds in all.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from nasplay.report import edfs, stats


def test_holm_by_hand():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06.
    assert stats.holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adj = stats.holm([0.01, float("nan"), 0.04])  # a missing p is not counted in m
    assert adj[0] == pytest.approx(0.02) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.04)
    assert stats.holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # capped at 1
    assert stats.holm([0.02]).tolist() == [0.02]  # a family of one is unadjusted
    assert stats.adjust([0.01, 0.04], "none").tolist() == [0.01, 0.04]
    with pytest.raises(ValueError, match="report.adjust"):
        stats.adjust([0.1], "bonf")


def test_tost_against_scipy_one_sided_welch_tests():
    a, b = [0.80, 0.81, 0.82, 0.80], [0.79, 0.80, 0.81, 0.81]
    m = 0.02
    eq = stats.tost(a, b, m)
    lower = sps.ttest_ind(np.add(a, m), b, equal_var=False, alternative="greater").pvalue  # H0: Δ <= -m
    upper = sps.ttest_ind(np.subtract(a, m), b, equal_var=False, alternative="less").pvalue  # H0: Δ >= +m
    assert (eq.p_lower, eq.p_upper, eq.p) == pytest.approx((lower, upper, max(lower, upper)))
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
    assert (eq.ci_low, eq.ci_high) == pytest.approx((ci.low, ci.high))
    # TOST at alpha is the 90% interval inside (-m, m).
    assert (eq.p < 0.05) == (-m < eq.ci_low and eq.ci_high < m)
    assert eq.p < 0.05
    assert stats.tost(a, b, 0.002).p > 0.05  # a tighter margin is not shown
    assert math.isnan(stats.tost(a, b, None).p) and math.isnan(stats.tost([0.8], b, m).p)
    # Closed form at df = 4 (equal n = 3, equal variances): F(t) = 1/2 + (3u - u³)/4 with u = t / sqrt(t² + 4).
    x, y = [0.80, 0.82, 0.84], [0.79, 0.81, 0.83]  # Δ = 0.01, s = 0.02 each, se = sqrt(2 · 0.0004 / 3)
    se = math.sqrt(0.0008 / 3)

    def cdf_df4(t):
        u = t / math.sqrt(t * t + 4)
        return 0.5 + (3 * u - u**3) / 4

    eq = stats.tost(x, y, 0.05)
    assert eq.p_lower == pytest.approx(1 - cdf_df4((0.01 + 0.05) / se))
    assert eq.p_upper == pytest.approx(cdf_df4((0.01 - 0.05) / se))


def test_outcomes_from_adjusted_p_and_tost():
    assert stats.outcome(0.01, 0.5, True) == "better" and stats.outcome(0.01, 0.5, False) == "worse"
    assert stats.outcome(0.3, 0.01, True) == "equivalent"
    assert stats.outcome(0.3, 0.2, True) == "inconclusive" and stats.outcome(0.3, math.nan, None) == "inconclusive"
    a, b = [0.80, 0.81, 0.82, 0.80], [0.79, 0.80, 0.81, 0.81]
    c = stats.compare("x", a, "y", b, scale=100, unit="points", margin=0.02)
    assert c.outcome == "equivalent" and c.verdict.endswith("— equivalent") and "within the margin ±2.0 points" in c.verdict
    assert "no equivalence margin stated — inconclusive (MDE 0.028 at 80% power)" in stats.compare("x", a, "y", b).verdict
    quarter = stats.compare("x", a, "y", b, scale=100, unit="points", margin=0.0025)  # not rounded to ±0.2
    assert quarter.outcome == "inconclusive" and "not shown within the margin ±0.25 points" in quarter.verdict


def test_holm_family_changes_the_verdict():
    # Welch's p, so that one arm is significant alone at 3 seeds (the exact test cannot go below 0.1 there).
    strong = stats.compare("a", [0.80, 0.82, 0.84], "base", [0.75, 0.77, 0.79], scale=100, unit="points", test="welch")  # p = 0.0376
    weak = stats.compare("b", [0.79, 0.80, 0.84], "base", [0.75, 0.77, 0.79], scale=100, unit="points", test="welch")
    assert strong.outcome == "better"
    s, w = stats.adjust_family([strong, weak], "holm", scale=100, unit="points")
    assert s.p_adjusted == pytest.approx(2 * strong.p) and s.family == 2  # the smaller p times m = 2
    assert w.p_adjusted == pytest.approx(max(2 * strong.p, weak.p))  # step-down: never below the one before
    assert s.outcome == "inconclusive" and "Holm-adjusted p=" in s.verdict
    (none,) = stats.adjust_family([strong], "none")
    assert none.p_adjusted == strong.p and none.outcome == "better"


def test_power_and_mde():
    # Large df: the noncentral t is the normal, power = Φ(nc - z) + Φ(-nc - z).
    n, sd, delta = 5000, 1.0, 0.05
    nc, z = delta / math.sqrt(2 / n), sps.norm.ppf(0.975)
    assert stats.power_t(delta, sd, n, n) == pytest.approx(sps.norm.cdf(nc - z) + sps.norm.cdf(-nc - z), abs=1e-3)
    assert stats.mde(1.0, n) == pytest.approx((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * math.sqrt(2 / n), rel=2e-3)
    # Cohen's table (two-sided alpha 0.05, power 0.8): d = 0.5 needs 64 per group; d = 0.8 needs 26.
    assert stats.mde(1.0, 64) == pytest.approx(0.5, abs=0.005)
    assert stats.mde(1.0, 26) == pytest.approx(0.8, abs=0.01)
    assert stats.seeds_needed(0.5, 1.0) == 64 and stats.seeds_needed(0.8, 1.0) == 26
    m3 = stats.mde(0.02, 3)  # three seeds, 2 points of spread: only ~6 points are detectable
    assert stats.power_t(m3, 0.02, 3, 3) == pytest.approx(0.8, abs=1e-6) and 0.05 < m3 < 0.07
    assert math.isnan(stats.mde(0.02, 1)) and stats.seeds_needed(0.0, 1.0) is None


def test_intervals_stay_in_range():
    vgg19 = [0.96, 0.95, 0.31]  # one seed far behind: the t-interval would reach past 100%
    t = stats.summarize(vgg19)
    assert t.ci_high > 1
    lo, hi = stats.logit_interval(vgg19, n_test=359)
    assert 0 < lo < np.mean(vgg19) < hi < 1
    # Near p = 0.5 with many seeds the logit interval is the t-interval (delta method).
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 0.01, 200)
    lo, hi = stats.logit_interval(x)
    s = stats.summarize(x)
    assert (lo, hi) == pytest.approx((s.ci_low, s.ci_high), abs=2e-4)
    # The test set's noise: with identical seeds only the binomial part is left, p(1-p)/N, a known variance: the
    # normal quantile, not t with 2 df.
    lo, hi = stats.logit_interval([0.9, 0.9, 0.9], n_test=400)
    se = math.sqrt(0.09 / 400) / 0.09
    assert (lo, hi) == pytest.approx(tuple(1 / (1 + math.exp(-(math.log(9) + k * sps.norm.ppf(0.975) * se))) for k in (-1, 1)))


def test_two_level_bootstrap_against_closed_form_and_scipy():
    # Identical seeds: only the inner (binomial) level varies, Binomial(N, p)/N averaged over 3 draws.
    lo, hi = stats.two_level_bootstrap([0.9, 0.9, 0.9], n_test=400, resamples=20_000, seed=1)
    half = 1.96 * math.sqrt(0.9 * 0.1 / (400 * 3))
    assert (lo, hi) == pytest.approx((0.9 - half, 0.9 + half), abs=0.003)
    assert 0 <= lo and hi <= 1
    # Seeds only: scipy's percentile bootstrap of the mean.
    rng = np.random.default_rng(2)
    x = np.clip(rng.normal(0.8, 0.05, 40), 0, 1)
    ours = stats.two_level_bootstrap(x, resamples=20_000, seed=3)
    ref = sps.bootstrap((x,), np.mean, n_resamples=20_000, method="percentile", random_state=4).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), abs=0.003)
    lo, hi = stats.two_level_bootstrap([0.99, 1.0, 0.31], n_test=50)
    assert 0 <= lo < hi <= 1


def test_trained_threshold():
    assert stats.chance_threshold(10, 359) == pytest.approx(0.1 + 3 * math.sqrt(0.09 / 359))
    assert stats.chance_threshold(10, None) == pytest.approx(0.15)


def logrank_by_hand(x_times, x_cens, y_times, y_cens):
    """(O - E) / sqrt(V) for x over the distinct event times, the textbook log-rank statistic."""
    ev = sorted(set(x_times) | set(y_times))
    allx = [(t, 1) for t in x_times] + [(t, 0) for t in x_cens]
    ally = [(t, 1) for t in y_times] + [(t, 0) for t in y_cens]
    o_e, var = 0.0, 0.0
    for t in ev:
        nx = sum(s >= t for s, _ in allx)
        ny = sum(s >= t for s, _ in ally)
        ox = sum(s == t and e for s, e in allx)
        o = ox + sum(s == t and e for s, e in ally)
        n = nx + ny
        e_x = o * nx / n
        o_e += ox - e_x
        var += e_x * (n - o) / n * (n - nx) / (n - 1) if n > 1 else 0
    return o_e / math.sqrt(var)


def test_censored_time_to_target():
    # Kaplan-Meier by hand: 5 seeds, targets at 1, 2, 3, two never (censored at the 5-epoch budget):
    # S = 4/5, 3/5, 2/5 after each event -> the median is 3.
    assert stats.km_median([1, 2, 3], [5, 5]) == 3
    assert stats.km_median([2], [5, 5]) == math.inf  # fewer than half reached it
    assert stats.km_median([4, 2], []) == 2  # no censoring: the lower median of the times
    c = stats.compare_censored("bn", [2, 2, 3], [], "none", [], [6, 6, 6], metric="steps_to_target")
    # Fisher's exact test on 3/3 vs 0/3: the observed table and its mirror, 2 of C(6, 3) = 20 -> 0.1.
    assert c.fisher_p == pytest.approx(0.1)
    assert c.logrank_z == pytest.approx(logrank_by_hand([2, 2, 3], [], [], [6, 6, 6]))
    assert c.logrank_p == pytest.approx(2 * sps.norm.sf(abs(c.logrank_z)))
    assert c.better is True and c.arm_summary.reached == 3 and math.isinf(c.baseline_summary.median)
    words = stats.censored_verdict(c)
    assert words.startswith("bn: 3 of 3 seeds reached the target (median 2.0 steps); none: 0 of 3 (not reached by half the seeds);")
    d = stats.compare_censored("relu", [1, 2, 2, 4], [8], "tanh", [3, 5], [8, 8, 8])
    assert d.logrank_z == pytest.approx(logrank_by_hand([1, 2, 2, 4], [8], [3, 5], [8, 8, 8]))
    assert stats.compare_censored("a", [], [8, 8], "b", [], [8, 8]).outcome == "inconclusive"
    tied = stats.compare_censored("relu", [2, 2, 2], [], "tanh", [2, 2, 2], [])  # the same epoch for every seed: no variance
    assert (tied.logrank_z, tied.logrank_p, tied.better) == (0.0, 1.0, None)


def test_dkw_band():
    assert edfs.dkw_epsilon(100) == pytest.approx(math.sqrt(math.log(40) / 200))  # 0.1358
    x = np.arange(1, 101, dtype=float)
    lo, hi, n = edfs.dkw_band(x, [0, 50, 100])
    eps = edfs.dkw_epsilon(100)
    assert n == 100 and lo.tolist() == pytest.approx([0, 0.5 - eps, 1 - eps]) and hi.tolist() == pytest.approx([eps, 0.5 + eps, 1])
    # Weighted: Kish's effective n, (Σw)² / Σw² = 4² / (1 + 1 + 4) for weights 1, 1, 2.
    _, _, nw = edfs.dkw_band([1, 2, 3], [2], weights=[1, 1, 2])
    assert nw == pytest.approx(16 / 6)


def test_ks_permutation_matches_exact_enumeration():
    a, b = [1.0, 2.0, 3.0], [2.5, 4.0, 5.0]
    p = edfs.ks_permutation(a, b)
    assert p == pytest.approx(sps.ks_2samp(a, b, method="exact").pvalue)  # every split enumerated (20 of them)
    # Normalised: complexities that put every model in one bin give unit weights -> the same p.
    assert edfs.ks_permutation(a, b, [5, 5, 5], [5, 5, 5], bins=1) == pytest.approx(p)
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 30), rng.normal(1.2, 1, 30)
    assert edfs.ks_permutation(x, y, resamples=500) < 0.01


def test_normalised_difference_recomputes_weights_per_resample():
    # Equal complexities everywhere: normalisation is the identity, the estimate the plain mean difference.
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]
    est, lo, hi = edfs.normalised_mean_diff_ci(a, b, [10] * 4, [10] * 4, resamples=500)
    assert est == pytest.approx(-1.0) and lo <= est <= hi
    # b's cheap models are worse; a is all expensive. Normalised by complexity (2 bins over [10, 1000]) b's
    # weights put half the mass on its expensive half: b's normalised mean is (6 + 2) / 2 = 4 (plain: 5).
    est, lo, hi = edfs.normalised_mean_diff_ci([3.0, 3.0], [8.0, 8.0, 8.0, 2.0], [10, 1000], [10, 10, 10, 1000], bins=2, resamples=200)
    assert est == pytest.approx(3 - (8 + 2) / 2)
    assert lo <= est <= hi


def test_paired_sign_flip_and_wilcoxon():
    on, off = np.array([3.0, 5.0, 7.0]), np.array([2.0, 3.0, 4.0])  # differences 1, 2, 3
    r = edfs.paired_test(on, off)
    # 8 sign patterns; |mean| >= 2 only for +++ and ---: p = 2/8.
    assert r.pairs == 3 and r.mean_diff == pytest.approx(2) and r.sign_flip_p == pytest.approx(0.25)
    assert r.wilcoxon_p == pytest.approx(sps.wilcoxon(on - off).pvalue)
    rng = np.random.default_rng(1)
    base = rng.normal(5, 2, 60)  # the pair's shared architecture effect dominates; the knob adds -0.5
    paired = edfs.paired_test(base - 0.5 + rng.normal(0, 0.2, 60), base)
    assert paired.sign_flip_p < 0.001 and paired.ci_low < -0.5 < paired.ci_high


def test_exact_enumeration_helper_agrees():
    # The permutation KS's exact branch is the same enumeration the existing report test writes by hand.
    def d(x, y):
        grid = sorted(x + y)
        return max(abs(sum(v <= g for v in x) / len(x) - sum(v <= g for v in y) / len(y)) for g in grid)

    a, b = [1.0, 4.0, 6.0], [2.0, 3.0, 5.0, 7.0]
    pooled = a + b
    obs = d(a, b)
    null = [d([pooled[i] for i in s], [pooled[i] for i in range(7) if i not in s]) for s in itertools.combinations(range(7), 3)]
    assert edfs.ks_permutation(a, b) == pytest.approx(sum(v >= obs - 1e-12 for v in null) / len(null))


def test_report_and_outcome_settings_are_checked():
    from nasplay.outcomes import ReportConfig, outcomes_from_dict

    assert ReportConfig.from_dict(None) == ReportConfig()
    assert ReportConfig.from_dict({"adjust": "none", "margin": 0.5, "unknown_key": 1}).margin == 0.5  # newer keys ignored
    for bad, match in (({"adjust": "bonferroni"}, "report.adjust"), ({"alpha": 1.5}, "report.alpha"),
                       ({"margin": -1}, "report.margin"), ({"test": "ttest"}, "report.test")):
        with pytest.raises(ValueError, match=match):
            ReportConfig.from_dict(bad)
    o = outcomes_from_dict({"primary": "train/loss_auc", "secondary": ["test/acc"], "margin": {"test/acc": 1}})
    assert o.primary == "train/loss_auc" and o.margin == {"test/acc": 1}
    with pytest.raises(ValueError, match="experiment.outcomes.margin.test/acc"):
        outcomes_from_dict({"margin": {"test/acc": 0}})
    with pytest.raises(ValueError, match="cannot be secondary too"):
        outcomes_from_dict({"primary": "test/acc", "secondary": ["test/acc"]})
