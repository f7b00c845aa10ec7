"""Exact tests at small n, the deciding test's power, and intervals that count the right noise (issue 19).

Every p is checked against a full enumeration written out by hand here (itertools over the relabellings), on
small constructed data, with the numbers asserted."""

from __future__ import annotations

import math
from itertools import combinations, product

import numpy as np
import pytest
from scipy import stats as sps

from nasplay.report import exact, intervals, power, stats


def brute_two_sample(a, b):
    x = list(a) + list(b)
    obs = abs(np.mean(a) - np.mean(b))
    null = []
    for idx in combinations(range(len(x)), len(a)):
        ia = [x[i] for i in idx]
        ib = [x[i] for i in range(len(x)) if i not in idx]
        null.append(abs(np.mean(ia) - np.mean(ib)))
    return sum(v >= obs - 1e-12 for v in null) / len(null), len(null)


def test_two_sample_exact_p_equals_full_enumeration():
    a, b = [0.91, 0.93, 0.92], [0.88, 0.89, 0.90]  # fully separated: the smallest p 3 + 3 can give, 2/20
    r = exact.permutation_p(a, b)
    assert r.exact and r.count == 20 and r.p == pytest.approx(0.1) and r.min_p == pytest.approx(0.1)
    a, b = [3.0, 5.0, 4.0, 9.0, 6.0], [1.0, 2.0, 4.0, 0.5]
    p, n = brute_two_sample(a, b)
    r = exact.permutation_p(a, b)
    assert r.exact and r.count == n == 126 and r.p == pytest.approx(p)
    assert r.p == pytest.approx(5 / 126)  # the number itself, so the enumeration above is not the only witness
    # 10 + 10: every one of C(20, 10) = 184,756 splits, and it agrees with scipy's exact enumeration.
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.3, 1, 10), rng.normal(0, 1, 10)
    r = exact.permutation_p(a, b)
    ref = sps.permutation_test((a, b), lambda x, y, axis: np.abs(x.mean(axis) - y.mean(axis)), vectorized=True,
                               n_resamples=10**6, alternative="greater")
    assert r.exact and r.count == 184_756 and r.p == pytest.approx(ref.pvalue, abs=1e-9)
    # Above 10 seeds in an arm: drawn relabellings, (1 + hits) / (1 + R).
    r = exact.permutation_p(rng.normal(size=11), rng.normal(size=11), draws=999)
    assert not r.exact and r.count == 999 and r.p * 1000 == pytest.approx(round(r.p * 1000))


def test_sign_flip_equals_full_enumeration():
    d = [0.4, -0.1, 0.7, 0.2, 0.3]
    obs = abs(np.mean(d))
    null = [abs(np.mean(np.array(s) * d)) for s in product([1, -1], repeat=len(d))]
    r = exact.sign_flip_p(d)
    assert r.exact and r.count == 32 and r.p == pytest.approx(sum(v >= obs - 1e-12 for v in null) / 32)
    assert r.p == pytest.approx(4 / 32)


def brute_logrank(ta, ca, tb, cb):
    t = np.array(ta + ca + tb + cb, dtype=float)
    e = np.array([1] * len(ta) + [0] * len(ca) + [1] * len(tb) + [0] * len(cb), dtype=bool)
    n_a = len(ta) + len(ca)

    def z(group):
        o_e = v = 0.0
        for u in np.unique(t[e]):
            risk = t >= u
            n, d = risk.sum(), (risk & e & (t == u)).sum()
            na = (risk & group).sum()
            da = (group & e & (t == u)).sum()
            o_e += da - d * na / n
            v += d * (na / n) * (1 - na / n) * (n - d) / max(n - 1, 1)
        return o_e / math.sqrt(v) if v > 0 else 0.0

    obs = z(np.arange(len(t)) < n_a)
    null = []
    for idx in combinations(range(len(t)), n_a):
        g = np.zeros(len(t), bool)
        g[list(idx)] = True
        null.append(abs(z(g)))
    return obs, sum(v >= abs(obs) - 1e-12 for v in null) / len(null)


def test_exact_permutation_logrank_equals_enumeration_and_scipy_z():
    # The digits BatchNorm case: 3 seeds reach the target early, the reference's three late: the asymptotic
    # log-rank p is 0.025, over the 20 relabellings the exact p is 0.1.
    ta, ca, tb, cb = [2.0, 3.0, 4.0], [], [5.0], [6.0, 6.0]
    r = exact.permutation_logrank(ta, ca, tb, cb)
    z, p = brute_logrank(ta, ca, tb, cb)
    asym = sps.logrank(sps.CensoredData(uncensored=ta), sps.CensoredData(uncensored=tb, right=cb))
    assert r.z == pytest.approx(z) == pytest.approx(asym.statistic)  # the same z scipy computes, same sign (sooner: > 0)
    assert asym.pvalue == pytest.approx(0.0246, abs=1e-4)
    assert r.exact and r.count == 20 and r.p == pytest.approx(p) == pytest.approx(0.1)
    ta, ca, tb, cb = [1.0, 2.0, 2.0, 5.0], [8.0], [3.0, 6.0], [8.0, 8.0, 8.0]
    r = exact.permutation_logrank(ta, ca, tb, cb)
    z, p = brute_logrank(ta, ca, tb, cb)
    assert r.count == 252 and r.z == pytest.approx(z) and r.p == pytest.approx(p)
    assert math.isnan(exact.permutation_logrank([], [4.0, 4.0], [], [4.0, 4.0]).p)  # no seed reached it


def test_compare_decides_with_the_exact_p_and_shows_welch():
    a, b = [0.91, 0.93, 0.92], [0.88, 0.89, 0.90]
    c = stats.compare("x", a, "y", b, scale=100, unit="points")
    assert c.test == "exact permutation" and c.p == pytest.approx(0.1) and c.outcome == "inconclusive"
    assert c.welch.p == pytest.approx(0.0213, abs=1e-4)  # Welch alone would have called it
    assert "exact permutation over 20 relabellings; Welch p=0.021" in c.verdict and "MDE ∞" in c.verdict
    assert math.isinf(c.mde)
    c5 = stats.compare("x", [0.91, 0.93, 0.92, 0.94, 0.95], "y", [0.88, 0.89, 0.90, 0.87, 0.86])
    assert c5.test == "exact permutation" and c5.p == pytest.approx(2 / 252) and c5.outcome == "better"
    cw = stats.compare("x", a, "y", b, test="welch")
    assert cw.test == "welch" and cw.p == pytest.approx(cw.welch.p)
    c11 = stats.compare("x", np.arange(11.0), "y", np.arange(11.0) + 0.5)
    assert c11.test == "welch"  # above 10 seeds per arm


def test_censored_comparison_decides_with_the_exact_logrank():
    c = stats.compare_censored("bn", [2.0, 3.0, 4.0], [], "plain", [5.0], [6.0, 6.0])
    assert c.test == "exact permutation log-rank" and c.p == pytest.approx(0.1) and c.relabellings == 20
    assert c.logrank_p == pytest.approx(0.0246, abs=1e-4) and c.better


def test_power_of_the_deciding_test():
    assert math.isinf(power.mde_sd(3, 3))  # 3 + 3 cannot reach p < 0.05 at all
    assert power.min_p(3, 3) == pytest.approx(0.1) and power.min_p(4, 4) == pytest.approx(2 / 70)
    k5 = power.mde_sd(5, 5)
    assert power.power(k5, 5, 5) >= 0.8 > power.power(k5 * 0.97, 5, 5)
    # The exact test needs more than the pooled t's noncentral-t MDE (an optimistic bound), but not far more.
    t5 = stats.mde(1.0, 5)
    assert t5 < k5 < 1.2 * t5
    assert power.mde(0.02, 5) == pytest.approx(0.02 * k5)
    n = power.seeds_needed(k5 * 0.3, 0.3)
    assert n == 5
    big = power.seeds_needed(0.1, 1.0)  # above 10 seeds Welch decides: the first n whose power reaches 80%
    assert big == 1571 and stats.power_t(0.1, 1.0, big, big) >= 0.8 > stats.power_t(0.1, 1.0, big - 1, big - 1)
    assert power.deciding_test(10, 10) == "exact permutation" and power.deciding_test(11, 10) == "welch"


def test_accuracy_interval_uses_normal_for_the_known_test_noise():
    # ResNet-18 on the digits: 97.3% with a 0.3-point spread over 3 seeds, 359 test images. The known binomial
    # variance dominates; a t quantile with 2 df on it gave 89.6-99.4%.
    x = [0.9715, 0.9730, 0.9745]
    lo, hi, df = intervals.accuracy_interval(x, n_test=359)
    p = np.mean(x)
    v = np.var(x, ddof=1) / 3 + p * (1 - p) / 359
    want = df / 1  # Satterthwaite: (v_s + v_b)^2 / (v_s^2 / 2)
    assert want == pytest.approx(v**2 / ((np.var(x, ddof=1) / 3) ** 2 / 2))
    h = sps.t.ppf(0.975, df) * math.sqrt(v) / (p * (1 - p))
    z = math.log(p / (1 - p))
    assert (lo, hi) == pytest.approx((1 / (1 + math.exp(-(z - h))), 1 / (1 + math.exp(-(z + h)))))
    assert 0.948 < lo < 0.952 and 0.985 < hi < 0.987
    assert stats.logit_interval(x, n_test=359) == pytest.approx((lo, hi))
    lo0, hi0, df0 = intervals.accuracy_interval(x)  # no test size: the seeds' t-interval on the logit scale
    assert df0 == pytest.approx(2)


def test_sources_shrink_the_effective_test_size():
    assert intervals.effective_test_size(5000, 359) == pytest.approx(359)
    assert intervals.effective_test_size(5000, 359, icc=0.0) == pytest.approx(5000)
    assert intervals.effective_test_size(5000, 359, icc=0.1) == pytest.approx(5000 / (1 + (5000 / 359 - 1) * 0.1))
    assert intervals.effective_test_size(400, None) == 400
    # Per-image correctness that depends only on the source: the design effect is m = images per source.
    src = np.repeat(np.arange(50), 10)
    correct = np.repeat(np.arange(50) % 4 != 0, 10).astype(float)
    assert intervals.design_effect(correct, src) == pytest.approx(10 * 50 / 49)
    acc, lo, hi = intervals.cluster_bootstrap(correct, src, resamples=2000)
    se = math.sqrt(acc * (1 - acc) / 50)
    assert acc == pytest.approx(0.74) and hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_margins_zero_spread_and_paired_equivalence():
    m, note = intervals.margin_floor(0.002, 359)  # 0.2 points on 359 images: below one image (0.28 points)
    assert m == pytest.approx(1 / 359) and "one of the 359 test images" in note
    assert intervals.margin_floor(0.01, 359) == (0.01, "")
    eq = stats.tost([0.9, 0.9, 0.9], [0.9, 0.9, 0.9], 0.01)
    assert eq.p == 1.0 and "not testable" in eq.note  # no spread: no equivalence without uncertainty
    d = np.array([0.1, -0.2, 0.05, 0.0, 0.15, -0.1])
    eq = intervals.tost_paired(d, 0.5)
    p_lo = sps.ttest_1samp(d, -0.5, alternative="greater").pvalue
    p_hi = sps.ttest_1samp(d, 0.5, alternative="less").pvalue
    assert eq.paired and eq.p == pytest.approx(max(p_lo, p_hi)) and eq.p < 0.01


def _study(arms: dict, baseline: str, claimed: dict, experiment_baseline: str | None = None):
    from pathlib import Path

    from nasplay.outcomes import OutcomesConfig
    from nasplay.report.load import Study

    trials = [{"number": i, "state": "COMPLETE", "arm": a, "seed": s, "test/acc": v}
              for i, (a, s, v) in enumerate((a, s, v) for a, vs in arms.items() for s, v in enumerate(vs))]
    st = Study(path=Path("s"), name="s", experiment="ablate_depth", config={}, trials=trials, curves=[], arms=list(arms),
               baseline=baseline, baseline_source="test", metric="test/acc", kind="ablation",
               outcomes=OutcomesConfig(primary="test/acc", claimed={"test/acc": claimed}))
    if experiment_baseline is not None:
        from nasplay.manifest import ArmEntry, Manifest

        st.manifest = Manifest(experiment="ablate_depth", study="s", kind="ablation", arms=[ArmEntry(a, "vgg11", {}) for a in arms],
                               baseline=experiment_baseline, objectives=["val/acc"], directions=["maximize"])
    return st


def test_holm_family_is_the_claimed_comparisons():
    from nasplay.report.analyse import comparison_rows

    base = [0.80, 0.81, 0.79, 0.80, 0.82]
    arms = {"vgg11": base, "vgg13": [0.85, 0.86, 0.84, 0.87, 0.86], "vgg16": [0.83, 0.82, 0.84, 0.81, 0.85],
            "plain-18": [0.70, 0.71, 0.69, 0.72, 0.70], "plain-34": [0.66, 0.65, 0.67, 0.64, 0.66]}
    rows = {r["arm"]: r for r in comparison_rows(_study(arms, "vgg11", {"vgg13": 0.9, "vgg16": 2.6}))}
    claimed = [rows["vgg13"], rows["vgg16"]]
    assert all(r["family_kind"] == "claimed" and r["family"] == 2 for r in claimed)
    assert [r["p_adjusted"] for r in claimed] == pytest.approx(stats.holm([r["p"] for r in claimed]).tolist())
    assert rows["vgg13"]["p"] == pytest.approx(2 / 252) and rows["vgg13"]["p_adjusted"] == pytest.approx(4 / 252)
    explore = [rows["plain-18"], rows["plain-34"]]
    assert all(r["family_kind"] == "exploratory" and r["family"] == 2 for r in explore)
    assert rows["vgg13"]["outcome"] == "better" and "over 2 claimed comparisons" in rows["vgg13"]["verdict"]
    # A second report against another arm: only the claims stated against that arm are in its claimed family.
    rows = {r["arm"]: r for r in comparison_rows(_study(arms, "plain-18", {"vgg13": 0.9, "plain-34 vs plain-18": -0.6},
                                                        experiment_baseline="vgg11"))}
    assert rows["plain-34"]["family_kind"] == "claimed" and rows["plain-34"]["family"] == 1
    assert rows["plain-34"]["p_adjusted"] == rows["plain-34"]["p"] == pytest.approx(2 / 252)
    assert rows["vgg13"]["family_kind"] == "exploratory" and "claimed" not in rows["vgg13"]
    # No claim stated on the metric: every comparison is one family, as before.
    rows = comparison_rows(_study(arms, "vgg11", {}))
    assert {r["family_kind"] for r in rows} == {"all"} and {r["family"] for r in rows} == {4}


def test_a_tuned_setting_at_the_grids_edge_is_noted():
    from nasplay.report.analyse import tuning_notes, tuning_table

    st = _study({"relu": [0.9, 0.91], "tanh": [0.8, 0.82]}, "tanh", {})
    st.tuning = [{"arm": a, "state": "COMPLETE", "value": v, "param.optim.lr": lr}
                 for a, best in (("relu", 0.0167), ("tanh", 0.05)) for lr in (0.0167, 0.05, 0.15)
                 for v in ((0.9,) if lr == best else (0.5,))]
    for t in st.trials:
        t["tuned.optim.lr"] = 0.0167 if t["arm"] == "relu" else 0.05
    table = tuning_table(st)
    assert table["arms"]["relu"]["at_edge"] == {"optim.lr": "lowest"} and "at_edge" not in table["arms"]["tanh"]
    assert tuning_notes(table) == ["tuning: relu chose the lowest optim.lr tried (0.0167): the grid does not bracket its "
                                   "optimum; extend it past that edge"]
    assert table["criterion"] == "objective" and table["arms"]["tanh"]["curve"][1]["mean"] == pytest.approx(0.9)
    # experiment.tune_on: the table shows what the tuning judged (epochs to target; a seed without it does not count)
    st.config = {"experiment": {"tune_on": "epochs_to_target"}}
    for t in st.tuning:
        t["epochs_to_target"] = 2.0 if t["param.optim.lr"] == 0.15 else float("nan")
    table = tuning_table(st)
    assert table["criterion"] == "epochs_to_target"
    assert [(r["setting"]["optim.lr"], r["finished"]) for r in table["arms"]["relu"]["curve"]] == [(0.0167, 0), (0.05, 0), (0.15, 1)]
    from nasplay.report.markdown import tuning_section

    assert "mean epochs_to_target, seeds that have it/run" in tuning_section(table)


def test_steps_to_the_baselines_own_final_accuracy(tmp_path):
    """ablate_batchnorm's outcome as Ioffe & Szegedy measured it: steps until validation accuracy first reaches the
    baseline's own final accuracy (here the mean of 0.60, 0.62, 0.64 = 0.62), censored where a seed never does."""
    import csv

    from nasplay.manifest import ArmEntry, Manifest
    from nasplay.report.analyse import build_report
    from nasplay.report.load import load_study

    curves = {"norm=none": [[0.3, 0.5, 0.60], [0.3, 0.55, 0.62], [0.4, 0.5, 0.64]],
              "norm=batch": [[0.5, 0.7, 0.8], [0.62, 0.7, 0.8], [0.5, 0.6, 0.61]]}
    rows, points = [], []
    for arm, seeds in curves.items():
        for s, c in enumerate(seeds):
            n = len(rows)
            rows.append({"number": n, "state": "COMPLETE", "arm": arm, "seed": s, "test/acc": c[-1], "steps": 30})
            points += [{"trial": n, "epoch": e, "step": 10 * (e + 1), "metric": "val/acc", "value": v} for e, v in enumerate(c)]
    for name, data in (("results.csv", rows), ("curves.csv", points)):
        with open(tmp_path / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(data[0]))
            w.writeheader()
            w.writerows(data)
    Manifest(experiment="ablate_batchnorm", study=tmp_path.name, kind="ablation",
             arms=[ArmEntry(a, "vgg11", {"norm": a.split("=")[1]}) for a in curves], baseline="norm=none",
             objectives=["val/acc"], directions=["maximize"], knob="norm", classes=10,
             outcomes={"primary": "steps_to_target_baseline", "secondary": ["test/acc"]}).write(tmp_path)
    st = load_study(tmp_path)
    assert st.metric == "steps_to_target_baseline" and st.targets == {"steps_to_target_baseline": pytest.approx(0.62)}
    r = build_report(st).to_dict()
    (c,) = r["comparisons"]
    assert c["kind"] == "censored" and c["arm_summary"]["times"] == [20, 10] and c["arm_summary"]["censored_at"] == [30]
    assert c["baseline_summary"]["times"] == [30, 30] and c["baseline_summary"]["censored_at"] == [30]
    assert c["better"] and c["test"] == "exact permutation log-rank" and c["relabellings"] == 20
    assert any("reaches norm=none's own final accuracy, 62.0%" in n for n in r["notes"])
