"""Reports: the statistics against values worked out by hand, and the report files built from synthetic study dirs.

The expected numbers come from closed forms written out here (t quantiles and tail probabilities of
Student's t for df = 2 and 4 have elementary formulas); scipy appears only as a cross-check.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import struct
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from nasplay.report import edfs, power, stats

# ---------------------------------------------------------------------------------------------------
# The fixed results table: three arms of an ablation, three seeds each.
IDENTITY = [0.80, 0.82, 0.84]  # mean 0.82, s = 0.02
NONE = [0.75, 0.77, 0.79]  # mean 0.77, s = 0.02 (equal variances: Welch's df is exactly 4)
PROJECTION = [0.79, 0.80, 0.84]  # mean 0.81, s² = 0.0007

T975_DF2 = 0.95 * math.sqrt(2 / (1 - 0.95**2))  # df=2: F(t) = 1/2 + t / (2 sqrt(2 + t²))  ->  4.3027
T975_DF4 = 2.7764451051977987  # Student's t table, 0.975 quantile at df=4


def t_two_sided_p_df4(t: float) -> float:
    """Closed form for df = 4: with u = t / sqrt(t² + 4), F(t) = 1/2 + (3u - u³)/4."""
    u = abs(t) / math.sqrt(t * t + 4)
    return 1 - (3 * u - u**3) / 2


def test_summary_by_hand():
    s = stats.summarize(IDENTITY)
    assert s.n == 3
    assert s.mean == pytest.approx(0.82)
    assert s.std == pytest.approx(0.02)  # deviations -0.02, 0, 0.02: s² = 0.0008 / 2
    half = T975_DF2 * 0.02 / math.sqrt(3)
    assert T975_DF2 == pytest.approx(4.302652729911275)
    assert (s.ci_low, s.ci_high) == pytest.approx((0.82 - half, 0.82 + half))
    assert (s.ci_low, s.ci_high) == pytest.approx((0.770317, 0.869683), abs=1e-6)
    one = stats.summarize([0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert stats.summarize([0.5, None, float("nan"), 0.7]).n == 2  # missing seeds are dropped, not zeros
    assert stats.summarize([]).n == 0


def test_welch_equal_variances_by_hand():
    w = stats.welch(IDENTITY, NONE)
    se = math.sqrt(0.0004 / 3 + 0.0004 / 3)
    assert w.diff == pytest.approx(0.05)
    assert w.t == pytest.approx(0.05 / se) and w.t == pytest.approx(3.0618622, abs=1e-6)
    assert w.df == pytest.approx(4.0)
    assert w.p == pytest.approx(t_two_sided_p_df4(w.t), abs=1e-9)
    assert w.p == pytest.approx(0.037590, abs=1e-6)
    assert (w.ci_low, w.ci_high) == pytest.approx((0.05 - T975_DF4 * se, 0.05 + T975_DF4 * se))


def test_welch_unequal_variances_df_and_scipy_cross_check():
    from scipy import stats as sps

    w = stats.welch(PROJECTION, NONE)
    qa, qb = 0.0007 / 3, 0.0004 / 3
    assert w.t == pytest.approx(0.04 / math.sqrt(qa + qb))
    assert w.df == pytest.approx((qa + qb) ** 2 / (qa**2 / 2 + qb**2 / 2))  # Welch–Satterthwaite: 3.7231
    assert w.df == pytest.approx(3.7231, abs=1e-4)
    ref = sps.ttest_ind(PROJECTION, NONE, equal_var=False)
    assert (w.t, w.p) == pytest.approx((ref.statistic, ref.pvalue))
    assert math.isnan(stats.welch([0.8], NONE).p)  # one seed: no test


def test_permutation_exact_tiny_case_enumerated_by_hand():
    # Pooled {1,2,3,4}; the 6 ways to pick group a give mean differences -2,-1,0,0,1,2; |obs| = 2 -> 2/6.
    p = stats.permutation_test([1, 2], [3, 4])
    assert p.exact and p.resamples == 6
    assert p.diff == -2 and p.p == pytest.approx(1 / 3)
    # Three seeds each, every identity value above every none value: only the observed split and its
    # mirror reach |Δ| = 0.05 (subset sums 2.46 and 2.31 of 20), so p = 0.1 — the smallest possible at n=3.
    q = stats.permutation_test(IDENTITY, NONE)
    assert q.exact and q.resamples == 20 and q.p == pytest.approx(0.1)


def test_permutation_monte_carlo_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.3, 1, 9), rng.normal(0, 1, 9)
    exact = stats.permutation_test(a, b, exact_limit=10**6)  # C(18, 9) = 48620 splits
    mc = stats.permutation_test(a, b, exact_limit=1000, resamples=20_000, seed=1)
    assert exact.exact and not mc.exact and mc.resamples == 20_000
    assert mc.p == pytest.approx(exact.p, abs=0.01)
    assert stats.permutation_test(a, b, exact_limit=1000, seed=1).p == stats.permutation_test(a, b, exact_limit=1000, seed=1).p


def test_effect_size_by_hand():
    e = stats.effect_size(IDENTITY, NONE)
    assert e.pooled_sd == pytest.approx(0.02)
    assert e.d == pytest.approx(2.5)
    j4 = math.gamma(2) / (math.sqrt(2) * math.gamma(1.5))  # = 2 / sqrt(2π)
    assert stats.hedges_correction(4) == pytest.approx(j4) and j4 == pytest.approx(2 / math.sqrt(2 * math.pi))
    assert e.g == pytest.approx(2.5 * j4) and e.magnitude == "large"
    # Unequal variances: pooled SD sqrt((2·0.0007 + 2·0.0004) / 4).
    f = stats.effect_size(PROJECTION, NONE)
    assert f.pooled_sd == pytest.approx(math.sqrt(0.0011 / 2))
    assert f.d == pytest.approx(0.04 / math.sqrt(0.00055))
    assert [stats.magnitude(x) for x in (0.1, -0.3, 0.6, 0.9)] == ["negligible", "small", "medium", "large"]


def test_verdicts_in_plain_words():
    # Welch's p decides here (test="welch"); the default, the exact permutation p, is floored at 0.1 by 3 seeds.
    c = stats.compare("skip=identity", IDENTITY, "skip=none", NONE, metric="test/acc", scale=100, unit="points", test="welch")
    assert c.significant and c.better and c.test == "welch"
    assert c.verdict == ("skip=identity is better than skip=none by 5.0 points (95% CI 0.5–9.5), p=0.038 (welch), "
                         "large effect (g=1.99)")
    worse = stats.compare("skip=none", NONE, "skip=identity", IDENTITY, scale=100, unit="points", test="welch")
    assert worse.verdict.startswith("skip=none is worse than skip=identity by 5.0 points (95% CI 0.5–9.5)")
    # Fewer epochs to the target is better.
    fast = stats.compare("relu", [3, 4, 3], "tanh", [9, 8, 10], metric="epochs_to_target", higher_is_better=False, test="welch")
    assert fast.significant and fast.better and "relu is better than tanh by" in fast.verdict
    flat = stats.compare("skip=projection", PROJECTION, "skip=none", NONE, scale=100, unit="points", test="welch")
    assert not flat.significant
    assert flat.verdict.startswith("no significant difference from skip=none at n=3 (Δ=+4.0 points")
    assert "— inconclusive (MDE" in flat.verdict
    perm = stats.compare("skip=identity", IDENTITY, "skip=none", NONE, test="permutation")
    assert not perm.significant and "p=0.10 (exact permutation over 20 relabellings" in perm.verdict  # 0.1: the floor at n=3
    assert stats.compare("a", [0.5], "b", NONE).verdict.startswith("not tested: a has n=1")
    with pytest.raises(ValueError, match="test: expected 'exact', 'welch' or 'permutation'"):
        stats.compare("a", IDENTITY, "b", NONE, test="ttest")


def test_pareto_front_of_a_fixed_point_set():
    acc = [0.90, 0.80, 0.95, 0.70, 0.95, 0.85, float("nan"), 0.80]
    flops = [10, 5, 20, 5, 30, 12, 1, 5]
    # (0.70, 5) is dominated by (0.80, 5); (0.95, 30) by (0.95, 20); (0.85, 12) by (0.90, 10); NaN never counts;
    # the two identical points (0.80, 5) dominate nothing of each other and both stay.
    assert stats.pareto_front(acc, flops).tolist() == [1, 7, 0, 2]
    assert stats.pareto_front([], []).tolist() == []
    with pytest.raises(ValueError, match="same length"):
        stats.pareto_front([1, 2], [1])


def test_edf_values():
    xs, F = edfs.edf([3, 1, 2, 2])
    assert xs.tolist() == [1, 2, 3] and F.tolist() == [0.25, 0.75, 1.0]
    assert edfs.edf_at([3, 1, 2, 2], [0, 1, 1.5, 2, 10]).tolist() == [0, 0.25, 0.25, 0.75, 1.0]
    # Weighted: masses 1, 1, 1, 3 of 6 at values 1, 2, 2, 3.
    assert edfs.edf_at([1, 2, 2, 3], [1, 2, 3], weights=[1, 1, 1, 3]).tolist() == pytest.approx([1 / 6, 1 / 2, 1])


def test_complexity_weights_by_hand():
    # Two bins over the shared range [1, 4] (edges 1, 2.5, 4): a has 2 + 2 models, b has 3 + 1.
    wa, wb = edfs.complexity_weights([[1, 2, 3, 4], [1, 1, 1, 4]], bins=2, log=False)
    assert wa.tolist() == pytest.approx([0.25] * 4)
    assert wb.tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])
    # Outside the shared range [2, 3]: weight 0; the rest share one bin.
    wa, wb = edfs.complexity_weights([[1, 2, 10], [2, 3]], bins=1, log=False)
    assert wa.tolist() == [0, 1, 0] and wb.tolist() == [0.5, 0.5]
    # A bin only one population occupies is dropped: edges 1, 2, 3, 4, 5; bin [2, 3) holds only b's model at 2.
    wa, wb = edfs.complexity_weights([[1, 5], [1, 2, 5]], bins=4, log=False)
    assert wa.tolist() == pytest.approx([0.5, 0.5]) and wb.tolist() == pytest.approx([0.5, 0, 0.5])
    # Log bins: log10 range [1, 3] in two bins, [10, 100) and [100, 1000]; a has 2 + 2 models, b 3 + 1.
    wa, wb = edfs.complexity_weights([[10, 20, 500, 1000], [10, 15, 20, 1000]], bins=2)
    assert wa.tolist() == pytest.approx([0.25, 0.25, 0.25, 0.25]) and wb.tolist() == pytest.approx([1 / 6] * 3 + [1 / 2])
    errors_b = [5, 6, 7, 3]  # the big model is the best one; normalisation gives it half the weight
    assert edfs.edf_at(errors_b, [3, 5, 7], wb).tolist() == pytest.approx([0.5, 0.5 + 1 / 6, 1])
    with pytest.raises(ValueError, match="positive"):
        edfs.complexity_weights([[0, 1], [1, 2]])


def test_ks_statistic_and_exact_p_of_a_tiny_case():
    a, b = [1, 2, 3], [2.5, 4, 5]
    # F_a - F_b on the pooled points 1, 2, 2.5, 3, 4, 5: 1/3, 2/3, 1/3, 2/3, 1/3, 0  ->  D = 2/3.
    k = edfs.ks_test(a, b)
    assert k.statistic == pytest.approx(2 / 3)

    def d(x, y):
        grid = sorted(x + y)
        return max(abs(sum(v <= g for v in x) / len(x) - sum(v <= g for v in y) / len(y)) for g in grid)

    pooled = a + b
    null = [d([pooled[i] for i in s], [pooled[i] for i in range(6) if i not in s]) for s in itertools.combinations(range(6), 3)]
    p_exact = sum(v >= 2 / 3 - 1e-12 for v in null) / len(null)
    assert k.p == pytest.approx(p_exact)
    # The weighted version with unit weights gives the same D (its p is the asymptotic approximation).
    kw = edfs.ks_test(a, b, np.ones(3), np.ones(3))
    assert kw.statistic == pytest.approx(2 / 3) and kw.n_a == pytest.approx(3) and 0 < kw.p < 1


def test_bootstrap_is_seeded_and_sane():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 1, 400)
    lo, hi = edfs.bootstrap_ci(x, seed=7)
    assert (lo, hi) == edfs.bootstrap_ci(x, seed=7)
    assert lo < x.mean() < hi
    t = stats.summarize(x)
    assert hi - lo == pytest.approx(t.ci_high - t.ci_low, rel=0.15)  # large n: agrees with the t-interval
    assert edfs.bootstrap_ci([2, 2, 2]) == (2, 2)
    dlo, dhi = edfs.bootstrap_diff_ci(x + 1, x, seed=1)
    assert dlo < 1 < dhi


# ---------------------------------------------------------------------------------------------------
# Synthetic study directories (what the sweep runner writes), built in seconds without training.

COLUMNS = ["number", "state", "arm", "seed", "skip", "val/acc", "val/acc_best", "test/acc", "train/loss", "params", "flops",
           "wall_time", "imgs_per_sec", "epochs_to_target", "steps_to_target", "wandb_id", "fail_reason", "genome_hash", "arch"]


def write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


def write_manifest(d: Path, experiment: str, arms: list[tuple[str, str, dict]], baseline: str | None, knob: str | None = None) -> None:
    """The study.json the runner would have written: (name, arch, knobs) per arm, in the config's order."""
    from nasplay.manifest import ArmEntry, Manifest, kind_of

    Manifest(experiment=experiment, study=d.name, kind=kind_of(experiment, None), arms=[ArmEntry(*a) for a in arms],
             baseline=baseline, objectives=["val/acc"], directions=["maximize"], knob=knob).write(d)


def make_ablation(d: Path, *, manifest: bool = True, arms: dict | None = None, experiment: str = "ablate_skip") -> Path:
    arms = arms or {"skip=identity": IDENTITY, "skip=none": NONE, "skip=projection": PROJECTION}
    flops = {"skip=identity": 2.0e6, "skip=none": 1.9e6, "skip=projection": 2.2e6}
    to_target = {"skip=identity": [2, 2, 3], "skip=none": [4, 5, 4], "skip=projection": [3, 3, 3]}
    d.mkdir(parents=True)
    rows, curves = [], []
    for arm, values in arms.items():
        for seed, acc in enumerate(values):
            n = len(rows)
            rows.append({"number": n, "state": "COMPLETE", "arm": arm, "seed": seed, "skip": arm.split("=")[-1], "val/acc": acc - 0.01,
                         "val/acc_best": acc, "test/acc": acc, "train/loss": 1 - acc, "params": 11_000 + 1000 * len(arm),
                         "flops": flops.get(arm, 1e6), "wall_time": 12.5, "imgs_per_sec": 900, "steps_to_target": "",
                         "epochs_to_target": to_target.get(arm, [1, 1, 1])[seed], "wandb_id": f"run{n}", "fail_reason": "",
                         "genome_hash": "0123456789ab", "arch": "resnet18"})
            for e in range(3):
                curves += [{"trial": n, "epoch": e, "step": 10 * (e + 1), "metric": "val/acc", "value": acc * (e + 1) / 3 + 0.01 * seed},
                           {"trial": n, "epoch": e, "step": 10 * (e + 1), "metric": "train/loss", "value": 2.0 / (e + 1) + 0.1 * seed}]
    first = next(iter(arms))
    curves.append({"trial": len(rows), "epoch": 0, "step": 10, "metric": "val/acc", "value": 0.1})
    rows.append({"number": len(rows), "state": "PRUNED", "arm": first, "seed": 9, "val/acc": 0.1, "test/acc": 0.1, "wandb_id": "runp"})
    rows.append({"number": len(rows), "state": "FAIL", "arm": list(arms)[1], "seed": 8, "fail_reason": "FloatingPointError: loss is nan"})
    write_csv(d / "results.csv", COLUMNS, rows)
    write_csv(d / "curves.csv", ["trial", "epoch", "step", "metric", "value"], curves)
    if manifest:
        write_manifest(d, experiment, [(f"skip={v}", "resnet18", {"skip": v}) for v in ("none", "identity", "projection")],
                       "skip=none", knob="skip")
    return d


def make_design_space(d: Path, n: int = 24) -> Path:
    d.mkdir(parents=True)
    rng = np.random.default_rng(5)
    rows = []
    for arm, base in (("skip=identity", 0.90), ("skip=none", 0.84)):
        for i in range(n):
            flops = float(np.exp(rng.uniform(np.log(1e6), np.log(1e8))))
            acc = base - 0.02 * (np.log10(1e8) - np.log10(flops)) + rng.normal(0, 0.01)
            rows.append({"number": len(rows), "state": "COMPLETE", "arm": arm, "seed": i, "test/acc": acc, "flops": flops,
                         "params": flops / 10})
    write_csv(d / "results.csv", ["number", "state", "arm", "seed", "test/acc", "flops", "params"], rows)
    write_manifest(d, "edf_skip", [(f"skip={v}", "resnet18", {"skip": v}) for v in ("identity", "none")], "skip=none", knob="skip")
    return d


def assert_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    img = matplotlib.image.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100 and float(img[..., :3].std()) > 0.01, f"{path} looks blank"


def assert_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    drawn = [e for e in root.iter() if e.tag.endswith(("path", "use", "text"))]
    assert len(drawn) > 20, f"{path} has almost nothing drawn"


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    from nasplay.report.write import write_report

    d = make_ablation(tmp_path_factory.mktemp("runs") / "ablate_skip" / "s0")
    # Welch's p decides in these hand-computed tables (report.test=welch); the exact default is tests/test_exact.py's and
    # the golden studies'. Diagrams import torch: test_architecture_diagrams covers them.
    md, _ = write_report(d, diagrams=False, test="welch")
    return d, md


def test_report_tables_verdicts_and_figures(ablation):
    d, md = ablation
    assert md == d / "report.md"
    text = md.read_text()
    assert "metric: `test/acc`" in text and "baseline: `skip=none` (experiment.baseline (study.json))" in text
    # Per arm: n, mean, std, 95% interval on the logit scale (t(0.975, 2) = 4.303, inside 0-100%), the minimum detectable
    # effect of the deciding test (Welch, simulated: 6.89 points, above the pooled t's optimistic 6.14), params, FLOPs;
    # pruned and failed trials counted apart.
    assert "| skip=identity | 3 | 82.00 | 2.00 | 76.49 – 86.45 | 6.89 | 24k | 2M | 12.5 | 900 | 1 | 0 |" in text
    assert "| **skip=none** (baseline) | 3 | 77.00 | 2.00 | 71.66 – 81.59 | 6.89 | 20k | 1.9M | 12.5 | 900 | 0 | 1 |" in text
    # Two comparisons, one family: Holm doubles the smaller p (0.038 -> 0.075), so identity is no longer shown better.
    assert ("- skip=identity: no significant difference from skip=none at n=3 (Δ=+5.0 points, 95% CI 0.5 to 9.5, p=0.038 (welch), "
            "Holm-adjusted p=0.075 over 2 comparisons); no equivalence margin stated — inconclusive (MDE 6.9 points at 80% power)") in text
    assert "- skip=projection: no significant difference from skip=none at n=3 (Δ=+4.0 points" in text
    # relative error reduction: 5 points of the baseline's 23% error = 21.7%
    assert ("| skip=identity | skip=none | 5.00 | 0.47 to 9.53 | 21.7% | 1.99 (large) | welch | 0.038 | 0.038 | 0.075 (all) | 6.89 "
            "| – | – | **inconclusive** |" in text)
    assert "### epochs_to_target (lower is better; secondary)" in text and "| skip=none | 3 of 3 | 4.0 | 4, 5, 4 | – |" in text
    assert "FloatingPointError: loss is nan" in text
    figs = {p.name for p in d.iterdir() if p.suffix in (".png", ".svg")}
    assert {"learning_curves.png", "learning_curves.svg", "pareto.png", "pareto.svg", "effects.png", "effects.svg"} <= figs
    for name in ("learning_curves", "pareto", "effects"):
        assert f"]({name}.png)" in text
        assert_png(d / f"{name}.png")
        assert_svg(d / f"{name}.svg")


def test_report_json_matches_the_hand_values(ablation):
    d, _ = ablation
    r = json.loads((d / "report.json").read_text())
    arms = {a["arm"]: a for a in r["arms"]}
    assert [a["arm"] for a in r["arms"]] == ["skip=none", "skip=identity", "skip=projection"]  # experiment.values' order
    assert arms["skip=identity"]["mean"] == pytest.approx(0.82) and arms["skip=identity"]["n"] == 3  # the pruned 0.1 is out
    assert arms["skip=identity"]["pruned"] == 1 and arms["skip=none"]["failed"] == 1
    assert r["trials"] == {"total": 11, "COMPLETE": 9, "PRUNED": 1, "FAIL": 1}
    c = {x["arm"]: x for x in r["comparisons"]}
    assert set(c) == {"skip=identity", "skip=projection"}
    assert c["skip=identity"]["welch"]["p"] == pytest.approx(t_two_sided_p_df4(0.05 / math.sqrt(0.0008 / 3)), abs=1e-9)
    assert c["skip=identity"]["permutation"]["p"] == pytest.approx(0.1)
    # Holm over the family of two: the smaller p doubled, the larger kept (never below the one before it).
    p_id, p_proj = c["skip=identity"]["p"], c["skip=projection"]["p"]
    assert c["skip=identity"]["p_adjusted"] == pytest.approx(2 * p_id)
    assert c["skip=projection"]["p_adjusted"] == pytest.approx(max(2 * p_id, p_proj))
    assert {x["outcome"] for x in r["comparisons"]} == {"inconclusive"} and c["skip=identity"]["margin"] is None
    # Intervals inside [0, 1]: the logit t-interval, by hand; the plain t-interval is kept beside it.
    se = 0.02 / math.sqrt(3) / (0.82 * 0.18)
    logit = math.log(0.82 / 0.18)
    expit = [1 / (1 + math.exp(-(logit + k * T975_DF2 * se))) for k in (-1, 1)]
    assert [arms["skip=identity"]["ci_low"], arms["skip=identity"]["ci_high"]] == pytest.approx(expit)
    assert arms["skip=identity"]["t_interval"] == pytest.approx([0.770317, 0.869683], abs=1e-6)
    # The minimum detectable effect of the deciding test (Welch, simulated) at n = 3 per arm and s = 0.02: power 0.8 there.
    assert power.power(arms["skip=identity"]["mde"] / 0.02, 3, 3, test="welch") == pytest.approx(0.8, abs=0.01)
    assert r["test_size"] is None and any("test-set size unknown" in n for n in r["notes"])
    # Pareto front of test/acc against FLOPs: the best none seed (0.79 at 1.9M) and the best identity seed (0.84 at 2.0M);
    # projection's 0.84 costs 2.2M and is dominated.
    front = r["pareto"]["flops"]["front"]
    assert [(q["arm"], q["test/acc"], q["flops"]) for q in front] == [("skip=none", 0.79, 1.9e6), ("skip=identity", 0.84, 2.0e6)]
    assert r["secondary"]["epochs_to_target"][0]["arm"] == "skip=identity"
    assert r["secondary"]["epochs_to_target"][0]["kind"] == "censored" and r["arms"][0]["epochs_to_target"]["reached"] == 3


def test_learning_curve_bands_are_mean_and_std_over_seeds(ablation):
    from nasplay.report.analyse import curve_bands
    from nasplay.report.load import load_study

    d, _ = ablation
    xkey, bands = curve_bands(load_study(d), "val/acc")
    x, mean, std, n = bands["skip=none"]
    assert xkey == "epoch" and x.tolist() == [0, 1, 2] and n.tolist() == [3, 3, 3]
    # Epoch 2: values 0.75, 0.78, 0.81 (acc + 0.01·seed): mean 0.78, std 0.03.
    assert mean[2] == pytest.approx(0.78) and std[2] == pytest.approx(0.03)
    assert bands["skip=identity"][3].tolist() == [4, 3, 3]  # the pruned trial's curve counts where it ran


def test_design_space_report_edfs(tmp_path):
    from nasplay.report.write import write_report

    d = make_design_space(tmp_path / "edf_skip" / "s0")
    md, _ = write_report(d)
    text = md.read_text()
    r = json.loads((d / "report.json").read_text())
    assert r["kind"] == "design_space"
    ds = r["design_space"]
    assert [p["n"] for p in ds["populations"]] == [24, 24]
    t = ds["tests"][0]
    assert t["arm"] == "skip=identity" and t["baseline"] == "skip=none"
    assert t["ks"]["statistic"] > 0.5 and t["ks"]["p"] < 0.01
    assert 0 < t["ks_normalised_flops"]["statistic"] <= 1
    lo, hi = t["mean_diff_ci"]
    assert lo < t["mean_diff"] < hi < 0  # identity's errors are lower
    assert "skip=identity's errors are lower than skip=none's — better (KS permutation p<0.001, Holm-adjusted <0.001)" in text
    assert t["outcome"] == "better" and t["ks_permutation_p"] < 0.01 and t["ks_normalised_flops"]["permutation_p"] < 0.01
    assert t["mean_diff_normalised_flops_ci"][0] < t["mean_diff_normalised_flops"] < t["mean_diff_normalised_flops_ci"][1] < 0
    assert ds["populations"][0]["dkw_epsilon"] == pytest.approx(edfs.dkw_epsilon(24))
    assert "## Design spaces: error EDFs" in text
    assert_png(d / "edf.png")
    assert_svg(d / "edf.svg")


def test_architecture_diagrams_from_the_runner_genomes(tmp_path):
    from nasplay.report.write import write_report
    from nasplay.space.zoo import get_genome

    d = make_ablation(tmp_path / "ablate_pool" / "s", arms={"pool=max": IDENTITY, "pool=avg": NONE})
    (d / "genomes").mkdir()
    lenet = get_genome("lenet5")
    (d / "genomes" / "0123456789ab.yaml").write_text(lenet.to_yaml())  # every row of the fixture has this hash
    rows = list(csv.DictReader(open(d / "results.csv")))
    for r in rows:
        if r["arm"] == "pool=avg":
            r["genome_hash"], r["arch"] = "badbadbadbad", "no_such_net"  # no genome file, and an arch the zoo lacks
    write_csv(d / "results.csv", COLUMNS, rows)
    write_manifest(d, "ablate_pool", [("pool=max", "lenet5", {"pool": "max"}), ("pool=avg", "no_such_net", {"pool": "avg"})],
                   "pool=max", knob="pool")
    text = write_report(d, figures=False)[0].read_text()  # the report says why a diagram is missing and carries on
    r = json.loads((d / "report.json").read_text())
    assert r["diagrams"]["pool=max"]["genome_hash"] == lenet.hash and r["diagrams"]["pool=max"]["source"] == "genomes/0123456789ab.yaml"
    assert "no_such_net" in r["diagrams"]["pool=avg"]["error"] and "_no diagram: " in text
    assert "## Architectures" in text and "![pool=max](diagram_pool_max.png)" in text
    assert_png(d / "diagram_pool_max.png")
    assert_svg(d / "diagram_pool_max.svg")


def test_search_study_reports_the_front_not_tests(tmp_path):
    from nasplay.report.write import write_report

    d = tmp_path / "search_pareto" / "s"
    d.mkdir(parents=True)
    points = [("", "resnet18", 0.70, 1e5), ("", "resnet18", 0.80, 3e5), ("", "resnet18", 0.75, 4e5), ("", "resnet18", 0.90, 2e6),
              ("lenet5", "lenet5", 0.72, 4e5), ("alexnet", "alexnet", 0.92, 5e6), ("alexnet", "alexnet", 0.60, 5e6)]
    write_csv(d / "results.csv", ["number", "state", "arm", "arch", "seed", "test/acc", "flops"],
              [{"number": i, "state": "COMPLETE", "arm": a, "arch": arch, "seed": 0, "test/acc": acc, "flops": f}
               for i, (a, arch, acc, f) in enumerate(points)])
    text = write_report(d, diagrams=False)[0].read_text()
    r = json.loads((d / "report.json").read_text())
    assert r["kind"] == "search" and r["comparisons"] == [] and r["arms"][0]["arm"] == "resnet18"  # no arm label: the arch
    assert [q["number"] for q in r["pareto"]["flops"]["front"]] == [0, 1, 3, 5]
    assert "### Pareto front: test/acc (%) against flops" in text and "| 5 | alexnet | 0 | 92.00 | 5M |" in text
    assert_png(d / "pareto.png")


def test_baseline_fallback_and_ladder(tmp_path):
    from nasplay.report.analyse import build_report
    from nasplay.report.load import load_study

    d = make_ablation(tmp_path / "x" / "s", manifest=False)
    s = load_study(d)
    assert s.baseline == "skip=identity" and "first arm in sorted order" in s.baseline_source
    assert any("sorted order" in n for n in s.notes)
    assert load_study(d, baseline="projection").baseline == "skip=projection"
    with pytest.raises(ValueError, match="baseline: 'bogus' is not an arm of this study; arms: skip=identity, skip=none"):
        load_study(d, baseline="bogus")
    with pytest.raises(ValueError, match="metric: 'val/accuracy' is not a column"):
        load_study(d, metric="val/accuracy")
    # A ladder compares each rung with the one before it.
    rungs = {"lenet5": NONE, "relu": PROJECTION, "batchnorm": IDENTITY}
    lad = make_ablation(tmp_path / "ladder" / "s", arms=rungs, manifest=False)
    write_manifest(lad, "ladder", [(r, "lenet5", {}) for r in rungs], "lenet5")
    r = build_report(load_study(lad)).to_dict()
    assert r["kind"] == "ladder" and [(c["arm"], c["baseline"]) for c in r["comparisons"]] == [("relu", "lenet5"), ("batchnorm", "relu")]


def test_bad_study_dir_is_a_clear_error(tmp_path, capsys):
    from nasplay.cli import main
    from nasplay.report.load import load_study

    with pytest.raises(ValueError, match="has no results.csv"):
        load_study(tmp_path)
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_cli_json(ablation, tmp_path, capsys):
    from nasplay.cli import main

    d, _ = ablation
    assert main(["report", str(d), "--json", "--no-figures", "--out", str(tmp_path), "--adjust", "none", "--test", "welch"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["study"] == "s0" and r["experiment"] == "ablate_skip" and r["baseline"] == "skip=none"
    assert {a["arm"]: a["n"] for a in r["arms"]} == {"skip=identity": 3, "skip=none": 3, "skip=projection": 3}
    # Unadjusted (--adjust none) the smaller p stands alone: identity is better (p = 0.038).
    assert r["adjust"] == "none" and r["comparisons"][0]["outcome"] == "better"
    assert r["comparisons"][0]["verdict"] == ("skip=identity is better than skip=none by 5.0 points (95% CI 0.5–9.5), p=0.038 (welch), "
                                              "large effect (g=1.99)")
    assert (tmp_path / "report.md").exists() and r["report_path"] == str(tmp_path / "report.md")


def test_several_studies_side_by_side(ablation, tmp_path, capsys):
    from nasplay.cli import main

    d, _ = ablation
    other = make_ablation(tmp_path / "ablate_skip_c10" / "s1", arms={"skip=identity": [0.60, 0.64, 0.62], "skip=none": [0.50, 0.55, 0.52]},
                          experiment="ablate_skip_c10")
    out = tmp_path / "out"
    assert main(["report", str(d), str(other), "--out", str(out), "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "comparison:" in printed
    text = (out / "comparison.md").read_text()
    assert "| arm | ablate_skip/s0 | ablate_skip_c10/s1 |" in text
    # The logit intervals (inside 0-100%), not the t-intervals 77.03-86.97 and 57.03-66.97 of before.
    assert "| skip=identity | 82.00 [76.49, 86.45] (n=3) | 62.00 [56.92, 66.83] (n=3) |" in text
    assert "| skip=projection | 81.00 [73.55, 86.73] (n=3) |  |" in text  # not in the second study: blank
    assert "### ablate_skip_c10/s1" in text
    assert len(list(out.glob("*/report.md"))) == 2  # each study's own report, under --out
    assert json.loads((out / "comparison.json").read_text())["studies"][1]["experiment"] == "ablate_skip_c10"


def _wandb_records(path: Path):
    """Records of a W&B transaction log (.wandb: LevelDB-style log of 32 KiB blocks, protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _crc, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):  # FULL, LAST
            rec = pb.Record()
            rec.ParseFromString(buf + chunk)
            buf = b""
            yield rec
        elif kind in (2, 3):  # FIRST, MIDDLE
            buf += chunk


def test_report_logged_to_wandb_offline_and_read_back(ablation, monkeypatch):
    from nasplay.report.write import log_report_to_wandb, write_report

    monkeypatch.setenv("WANDB_MODE", "offline")
    d, _ = ablation
    _, report = write_report(d, None, diagrams=False)
    run_id = log_report_to_wandb(d, report.to_dict())
    (run_dir,) = d.glob(f"wandb/offline-run-*-{run_id}")
    # wandb-core may still be writing the log after run.finish() returns (seen under pytest-xdist): wait for
    # the exit record rather than read half a log.
    deadline = time.monotonic() + 60
    while True:
        records = list(_wandb_records(run_dir / f"run-{run_id}.wandb"))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.job_type == "report" and run.run_group == "s0"
    summary = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
               for r in records if r.WhichOneof("record_type") == "summary" for i in r.summary.update}
    assert summary["test/acc/skip=identity/mean"] == pytest.approx(0.82)
    assert summary["verdict/skip=identity"].startswith("no significant difference from skip=none")  # after Holm
    history = {(i.key or "/".join(i.nested_key)) for r in records if r.WhichOneof("record_type") == "history" for i in r.history.item}
    assert {"figures/pareto/path", "report/arms/path", "report/comparisons/path"} <= history
    images = list((run_dir / "files" / "media" / "images").rglob("*.png"))
    assert len(images) == 3 and all(p.read_bytes()[:4] == b"\x89PNG" for p in images)
    table = json.loads(next((run_dir / "files" / "media" / "table").rglob("arms_*.table.json")).read_text())
    assert table["columns"][:2] == ["arm", "n"] and [row[0] for row in table["data"]] == ["skip=none", "skip=identity", "skip=projection"]
    assert (run_dir / "files" / "report.md").read_text() == (d / "report.md").read_text()


# ---------------------------------------------------------------------------------------------------
# Pre-stated outcomes, censored times, seeds that never trained, equivalence, Holm over a ladder, paired design spaces.


def write_outcome_manifest(d: Path, experiment: str, arms: list[str], baseline: str, outcomes: dict, knob: str = "norm") -> None:
    from nasplay.manifest import ArmEntry, Manifest

    Manifest(experiment=experiment, study=d.name, kind="ablation", arms=[ArmEntry(a, "vgg11", {knob: a.split("=")[-1]}) for a in arms],
             baseline=baseline, objectives=["val/acc"], directions=["maximize"], knob=knob, classes=10, outcomes=outcomes).write(d)


def make_batchnorm(d: Path) -> Path:
    """BN trains (3 of 3 reach 90% validation accuracy, at steps 80, 80, 100); without BN every seed stays at chance."""
    d.mkdir(parents=True)
    arms = {"norm=none": ([0.100, 0.102, 0.098], [None, None, None]), "norm=batch": ([0.970, 0.976, 0.973], [80, 80, 100])}
    rows, curves = [], []
    for arm, (accs, steps) in arms.items():
        for seed, (acc, st) in enumerate(zip(accs, steps)):
            n = len(rows)
            rows.append({"number": n, "state": "COMPLETE", "arm": arm, "seed": seed, "test/acc": acc, "val/acc": acc,
                         "steps_to_target": "" if st is None else st, "epochs_to_target": "" if st is None else st // 20,
                         "steps": 120, "epochs": 6})
            for e in range(6):  # loss 2.3 flat without BN; 1/(e+1) with it (+0.01 * seed)
                loss = 2.3 if st is None else 1.0 / (e + 1) + 0.01 * seed
                curves.append({"trial": n, "epoch": e, "step": 20 * (e + 1), "metric": "train/loss", "value": loss})
    write_csv(d / "results.csv", ["number", "state", "arm", "seed", "test/acc", "val/acc", "steps_to_target", "epochs_to_target",
                                  "steps", "epochs"], rows)
    write_csv(d / "curves.csv", ["trial", "epoch", "step", "metric", "value"], curves)
    (d / "config.yaml").write_text("data: {name: digits, test_fraction: 0.2}\ntrainer: {max_epochs: 6, target_val_acc: 0.9}\n")
    write_outcome_manifest(d, "ablate_batchnorm", list(arms), "norm=none",
                           {"primary": "steps_to_target", "secondary": ["test/acc", "train/loss_auc"],
                            "margin": {"test/acc": 1.0}, "claimed": {"test/acc": 0.5}, "source": "Ioffe & Szegedy 2015, Sec. 4.2.2"})
    return d


def test_prestated_censored_primary_and_chance_level_arm(tmp_path):
    from scipy import stats as sps

    from nasplay.report.write import write_report

    d = make_batchnorm(tmp_path / "ablate_batchnorm" / "s")
    text = write_report(d, diagrams=False)[0].read_text()
    r = json.loads((d / "report.json").read_text())
    assert r["metric"] == "steps_to_target" and r["outcomes"]["primary_stated"] == "steps_to_target"
    assert r["outcomes"]["secondary"] == ["test/acc", "train/loss_auc"]
    # The digits test split: round(0.2 * count) of each class, 359 images (validation: round(0.1 * count), 179); chance 1/10.
    assert r["val_size"] == 179 and r["test_size"] == 359 and r["classes"] == 10 and "above 14.8%" in r["trained_rule"]
    (c,) = r["comparisons"]
    assert c["kind"] == "censored" and c["arm_summary"]["reached"] == 3 and c["baseline_summary"]["reached"] == 0
    assert c["baseline_summary"]["censored_at"] == [120, 120, 120]  # the never-reached seeds kept, censored at their budget
    assert c["fisher_p"] == pytest.approx(0.1)  # 3/3 vs 0/3: 2 of C(6, 3) tables
    ref = sps.logrank(sps.CensoredData(uncensored=[80, 80, 100]), sps.CensoredData(right=[120, 120, 120]))
    # The deciding p: the exact permutation log-rank, 2 of the 20 relabellings as extreme; the asymptotic one beside it.
    assert c["test"] == "exact permutation log-rank" and c["relabellings"] == 20
    assert c["logrank_p"] == pytest.approx(ref.pvalue) and ref.pvalue < 0.05
    assert c["p"] == pytest.approx(0.1) and c["p_adjusted"] == pytest.approx(0.1)  # a family of one
    assert c["outcome"] == "inconclusive" and c["arm_summary"]["median"] == 80
    assert "| norm=none | 0 of 3 | not reached by half | – | 120, 120, 120 |" in text
    # The accuracy, secondary: in range, trained counts, margin and the claimed effect's seeds.
    arms = {a["arm"]: a for a in r["arms"]}
    assert arms["norm=none"]["trained"]["k"] == 0 and arms["norm=batch"]["trained"]["k"] == 3
    assert "| seeds trained |" in text and "| 0 | 0 | 0 of 3 |" in text  # the primary is the time: the count is a column
    for a in arms.values():
        x = a["secondary"]["test/acc"]
        assert 0 <= x["ci_low"] <= x["mean"] <= x["ci_high"] <= 1 and 0 <= x["bootstrap_ci"][0] <= x["bootstrap_ci"][1] <= 1
        assert x["ci_method"] == "logit, seeds with t + normal on the binomial noise of 359 test images"
    (acc,) = r["secondary"]["test/acc"]
    assert acc["outcome"] == "inconclusive" and acc["p"] == pytest.approx(0.1) and acc["welch"]["p"] < 0.001
    assert acc["margin"] == 1.0 and acc["margin_raw"] == pytest.approx(0.01)
    assert acc["trained"] == {"arm": [3, 3], "baseline": [0, 3], "fisher_p": pytest.approx(0.1)}
    assert acc["untestable"] == "norm=none: no seed above chance"
    assert acc["verdict"].endswith("— untestable at this budget (norm=none: no seed above chance)")
    assert acc["claimed"]["effect"] == 0.5 and acc["claimed"]["seeds_needed"] == power.seeds_needed(0.005, acc["effect"]["pooled_sd"])
    # train/loss_auc from curves.csv: the mean of the per-epoch losses; BN's seed 0: (1 + 1/2 + ... + 1/6) / 6.
    (auc,) = r["secondary"]["train/loss_auc"]
    assert auc["mean"] == pytest.approx(sum(1 / (e + 1) + 0.01 * s for s in range(3) for e in range(6)) / 18)
    assert auc["mean_baseline"] == pytest.approx(2.3)
    assert auc["outcome"] == "inconclusive" and auc["p"] == pytest.approx(0.1)  # 3 + 3 seeds: the exact floor
    assert "## Outcomes" in text and "primary: `steps_to_target`" in text and "seeds per arm would detect it" in text
    assert "effects" in r["figures"]  # drawn from the first secondary with differences in means (the primary is censored)
    assert "| **norm=none** (baseline) | 0 | 0 of 3 reached; Kaplan-Meier median not reached by half | – | – | – |" in text
    assert "| norm=batch | 3 | 3 of 3 reached; Kaplan-Meier median 80.0 |" in text
    (ep,) = r["secondary"]["epochs_to_target"]  # measured, not named: analysed all the same, censored
    assert ep["kind"] == "censored" and ep["arm_summary"]["times"] == [4, 4, 5]


def test_a_target_no_seed_reached_is_still_the_primary_outcome(tmp_path):
    """On cluttered digits neither arm reached the 90% target: results.csv has no steps_to_target column at all (a trial
    records only finite metrics), yet the target was set, so the pre-stated primary stays the censored comparison
    (0 of 3 against 0 of 3) instead of falling back to another metric; the clutter split sizes come from the config."""
    from nasplay.report.write import write_report

    d = tmp_path / "ablate_batchnorm" / "clutter"
    d.mkdir(parents=True)
    arms = {"norm=none": [0.100, 0.100, 0.100], "norm=batch": [0.750, 0.760, 0.752]}
    rows = [{"number": 3 * i + s, "state": "COMPLETE", "arm": arm, "seed": s, "test/acc": acc, "val/acc": acc, "steps": 942,
             "epochs": 6} for i, (arm, accs) in enumerate(arms.items()) for s, acc in enumerate(accs)]
    write_csv(d / "results.csv", ["number", "state", "arm", "seed", "test/acc", "val/acc", "steps", "epochs"], rows)
    (d / "config.yaml").write_text("data: {name: clutter, clutter_val: 1000, clutter_test: 5000}\n"
                                   "trainer: {max_epochs: 6, target_val_acc: 0.9}\n")
    write_outcome_manifest(d, "ablate_batchnorm", list(arms), "norm=none",
                           {"primary": "steps_to_target", "secondary": ["test/acc"], "margin": {"test/acc": 1.0}})
    write_report(d, diagrams=False, figures=False)
    r = json.loads((d / "report.json").read_text())
    assert r["metric"] == "steps_to_target" and not any("has no values" in n for n in r["notes"])
    (c,) = r["comparisons"]
    assert c["kind"] == "censored" and c["outcome"] == "inconclusive"
    assert c["arm_summary"]["reached"] == 0 and c["baseline_summary"]["censored_at"] == [942, 942, 942]
    assert c["fisher_p"] == pytest.approx(1.0)
    assert (r["test_size"], r["val_size"]) == (5000, 1000) and "clutter" in r["test_size_source"]
    (acc,) = r["secondary"]["test/acc"]
    assert acc["outcome"] == "inconclusive" and acc["p"] == pytest.approx(0.1) and acc["welch"]["p"] < 0.001
    # without the target set, a column no trial has is not an outcome: the report says so and falls back
    (d / "config.yaml").write_text("data: {name: clutter}\ntrainer: {max_epochs: 6}\n")
    write_report(d, diagrams=False, figures=False)
    r = json.loads((d / "report.json").read_text())
    assert r["metric"] != "steps_to_target" and any("has no values" in n for n in r["notes"])


def test_equivalence_margin_from_the_experiment_and_overridden(tmp_path, capsys):
    from nasplay.cli import main
    from nasplay.report.write import write_report

    d = tmp_path / "ablate_pool" / "s"
    d.mkdir(parents=True)
    vals = {"pool=max": [0.950, 0.952, 0.951, 0.949, 0.950], "pool=avg": [0.951, 0.950, 0.952, 0.950, 0.949]}
    write_csv(d / "results.csv", ["number", "state", "arm", "seed", "test/acc"],
              [{"number": i * 5 + s, "state": "COMPLETE", "arm": a, "seed": s, "test/acc": v}
               for i, (a, vs) in enumerate(vals.items()) for s, v in enumerate(vs)])
    write_outcome_manifest(d, "ablate_pool", list(vals), "pool=max", {"primary": "test/acc", "margin": {"test/acc": 1.0}}, knob="pool")
    text = write_report(d, figures=False, diagrams=False)[0].read_text()
    (c,) = json.loads((d / "report.json").read_text())["comparisons"]
    assert c["outcome"] == "equivalent" and c["margin"] == 1.0 and c["equivalence"]["p"] < 0.05
    assert "within the margin ±1.0 points" in text and "**equivalent**" in text
    # report.margin (config.yaml or --margin) overrides the experiment's: 0.01 points cannot be shown.
    assert main(["report", str(d), "--json", "--no-figures", "--margin", "0.01", "--out", str(tmp_path / "o")]) == 0
    (c,) = json.loads(capsys.readouterr().out)["comparisons"]
    assert c["outcome"] == "inconclusive" and c["margin"] == pytest.approx(0.01)
    (d / "config.yaml").write_text("report: {adjust: none, margin: 0.01}\n")
    from nasplay.report.analyse import build_report
    from nasplay.report.load import load_study

    r = build_report(load_study(d)).to_dict()
    assert r["adjust"] == "none" and r["comparisons"][0]["outcome"] == "inconclusive"


def test_ladder_is_one_family_of_nine(tmp_path):
    from nasplay.report.analyse import build_report
    from nasplay.report.load import load_study

    rungs = {f"rung{i}": [0.5 + 0.04 * i + 0.01 * s for s in range(3)] for i in range(10)}
    lad = make_ablation(tmp_path / "ladder" / "s", arms=rungs, manifest=False)
    write_manifest(lad, "ladder", [(r, "lenet5", {}) for r in rungs], "rung0")
    r = build_report(load_study(lad)).to_dict()
    comps = r["comparisons"]
    assert len(comps) == 9 and {c["family"] for c in comps} == {9}
    assert [c["p_adjusted"] for c in comps] == pytest.approx(stats.holm([c["p"] for c in comps]).tolist())
    # 3 seeds per arm: the exact test cannot reach 0.05, so no effect is detectable with 80% power.
    assert all(0 <= a["ci_low"] <= a["ci_high"] <= 1 for a in r["arms"]) and all(math.isinf(a["mde"]) for a in r["arms"])


def test_paired_design_space(tmp_path):
    from scipy import stats as sps

    from nasplay.report.write import write_report

    d = tmp_path / "edf_skip" / "p"
    d.mkdir(parents=True)
    rng = np.random.default_rng(7)
    rows = []
    for pair in range(40):  # the same sampled network with skips on and off: its own quality plus the knob's -1 point
        flops = float(np.exp(rng.uniform(np.log(1e6), np.log(1e8))))
        own = rng.normal(0.85, 0.03)
        for arm, shift in (("skip=identity", 0.01), ("skip=none", 0.0)):
            rows.append({"number": len(rows), "state": "COMPLETE", "arm": arm, "seed": 0, "pair": pair, "flops": flops,
                         "test/acc": own + shift + rng.normal(0, 0.002)})
    write_csv(d / "results.csv", ["number", "state", "arm", "seed", "pair", "flops", "test/acc"], rows)
    write_manifest(d, "edf_skip", [(f"skip={v}", "resnet18", {"skip": v}) for v in ("identity", "none")], "skip=none", knob="skip")
    text = write_report(d, diagrams=False)[0].read_text()
    (t,) = json.loads((d / "report.json").read_text())["design_space"]["tests"]
    pr = t["paired"]
    assert pr["pairs"] == 40 and pr["mean_diff"] == pytest.approx(-1.0, abs=0.2)  # error in points: one lower with skips
    err = {a: {r["pair"]: 100 * (1 - r["test/acc"]) for r in rows if r["arm"] == a} for a in ("skip=identity", "skip=none")}
    diffs = [err["skip=identity"][k] - err["skip=none"][k] for k in range(40)]
    assert pr["wilcoxon_p"] == pytest.approx(sps.wilcoxon(diffs).pvalue)
    assert t["p_test"] == "paired sign-flip permutation" and t["outcome"] == "better" and pr["sign_flip_p"] < 0.001
    # Unpaired, the architectures' spread (3 points) hides the 1-point effect from KS.
    assert t["ks_permutation_p"] > pr["sign_flip_p"]
    assert "40 pairs: mean paired difference" in text
    assert_png(d / "edf.png")


def test_a_seed_left_at_chance_is_counted_not_averaged(tmp_path):
    from nasplay.report.write import write_report

    arms = {"vgg11": [0.96, 0.97, 0.95], "vgg19": [0.96, 0.95, 0.11]}  # one VGG-19 seed never left chance
    d = make_ablation(tmp_path / "ablate_depth" / "s", arms=arms, manifest=False)
    write_manifest(d, "ablate_depth", [(a, a, {}) for a in arms], "vgg11")
    (d / "config.yaml").write_text("data: {name: digits}\n")
    text = write_report(d, figures=False, diagrams=False)[0].read_text()
    r = json.loads((d / "report.json").read_text())
    a = {x["arm"]: x for x in r["arms"]}["vgg19"]
    assert a["t_interval"][1] > 1 and 0 < a["ci_low"] < a["ci_high"] < 1  # the t-interval left 0-100%; the reported one does not
    assert a["trained"] == {"k": 2, "n": 3, "metric": "test/acc", "mean_of_trained": pytest.approx(0.955)}
    assert "| vgg19 | 3 | 2 of 3 seeds trained (those: 95.50) | " in text
    (c,) = r["comparisons"]
    assert c["trained"]["fisher_p"] == pytest.approx(1.0) and "vgg19: 2 of 3 seeds trained, vgg11: 3 of 3" in c["verdict"]
    assert -1 <= c["welch"]["ci_low"] <= c["welch"]["ci_high"] <= 1  # the difference of two accuracies stays in [-100, 100] points


def test_split_sizes_match_the_data_module():
    """The report's digits split sizes (no data read) are those nasplay.train.data holds out."""
    from sklearn.datasets import load_digits

    from nasplay.report.load import DIGITS_PER_CLASS, _test_size, _val_size
    from nasplay.train.data import stratified_split

    y = load_digits().target
    assert tuple(np.bincount(y).tolist()) == DIGITS_PER_CLASS
    for test_fraction, val_fraction in ((0.2, 0.1), (0.25, 0.15)):
        test, val, _ = stratified_split(y, (test_fraction, val_fraction), 0)
        config = {"data": {"name": "digits", "test_fraction": test_fraction, "val_fraction": val_fraction}}
        assert _test_size(None, [], config)[0] == len(test) and _val_size(None, config)[0] == len(val)


def test_the_data_module_records_its_split_sizes():
    """study.json's sizes come from the data module: digits' equal the old tables, clutter's from its settings and the
    source digits each split is composed from (without composing an image)."""
    from nasplay.report.load import _test_size, _val_size
    from nasplay.train.clutter import ClutterSettings, generate
    from nasplay.train.data import make_datamodule

    digits = make_datamodule({"name": "digits", "test_fraction": 0.25, "val_fraction": 0.15}).eval_sizes()
    config = {"data": {"name": "digits", "test_fraction": 0.25, "val_fraction": 0.15}}
    assert digits == {"test_size": _test_size(None, [], config)[0], "val_size": _val_size(None, config)[0]}
    cfg = {"name": "clutter", "size": 16, "clutter_train": 20, "clutter_val": 30, "clutter_test": 40}
    clutter = make_datamodule(cfg).eval_sizes()
    dm = make_datamodule(cfg)
    splits = generate(ClutterSettings.from_config(dm.cfg, dm.size))
    assert clutter["test_size"] == len(splits["test"].y) == 40 and clutter["val_size"] == len(splits["val"].y) == 30
    assert clutter["source_images"] == {k: len(v.pool) for k, v in splits.items()}
    assert sum(clutter["source_images"].values()) == 1797


def test_the_report_reads_the_split_sizes_from_the_manifest(tmp_path):
    """Sizes recorded in study.json win over the dataset tables (which only studies without them fall back to)."""
    from nasplay.manifest import Manifest
    from nasplay.report.analyse import build_report
    from nasplay.report.load import load_study

    d = make_batchnorm(tmp_path / "ablate_batchnorm" / "s")
    m = Manifest.read(d)
    r = build_report(load_study(d, metric="test/acc")).to_dict()
    assert (r["test_size"], r["val_size"], r["test_size_source"]) == (359, 179, "digits, 0.2 of each class held out "
                                                                                  "(config.yaml data.test_fraction)")
    Manifest(**{**m.__dict__, "test_size": 500, "val_size": 250, "source_images": {"train": 1257, "val": 180, "test": 360}}
             ).write(d)
    r = build_report(load_study(d, metric="test/acc")).to_dict()
    assert (r["test_size"], r["val_size"], r["test_size_source"]) == (500, 250, "study.json")
    assert "test-set size: 500 images (study.json; composed from 360 source images)" in " ".join(r["notes"])
    assert r["trained_rule"].endswith(f"above {100 * stats.chance_threshold(10, 500):.1f}%")


def test_a_study_that_holds_compute_shows_how_equal_the_arms_were(tmp_path):
    """keep=flops: each arm's params and FLOPs as trained (study.json) and their ratios to the baseline's."""
    from nasplay.manifest import ArmEntry, Manifest
    from nasplay.report.analyse import build_report
    from nasplay.report.load import load_study
    from nasplay.report.markdown import render

    d = make_ablation(tmp_path / "ablate_skip" / "s", manifest=False)
    Manifest(experiment="ablate_skip", study="s", kind="ablation", baseline="skip=none", objectives=["val/acc"],
             directions=["maximize"], knob="skip", keep="flops",
             arms=[ArmEntry("skip=none", "resnet18", {"skip": "none"}, params=1000, flops=2_000_000),
                   ArmEntry("skip=identity", "resnet18", {"skip": "identity"}, params=1100, flops=2_030_000),
                   ArmEntry("skip=projection", "resnet18", {"skip": "projection"}, params=1200, flops=1_980_000)]).write(d)
    r = build_report(load_study(d)).to_dict()
    held = {a["arm"]: a["compute"] for a in r["arms"]}
    assert held["skip=none"]["held_ratio"] == 1.0
    assert held["skip=identity"] == {"keep": "flops", "params": 1100, "flops": 2_030_000, "params_ratio": 1.1,
                                     "flops_ratio": 1.015, "held_ratio": 1.015, "grouping": None}
    assert held["skip=projection"]["held_ratio"] == pytest.approx(0.99)
    text = render(r)
    assert "### Compute as trained" in text and "| skip=identity | 1.1k | 1.100 | 2.03M | 1.015 |" in text
