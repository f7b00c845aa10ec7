"""docs/claims.md follows from what is committed: scripts/claims.py reruns the claims suite, copies each study's
report.json (and the extra-baseline reports its claims need) under docs/results/, and regenerates the tally and the
tables from them."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_claims_md_is_what_the_committed_results_give():
    tables = load("claims_tables")
    assert tables.write_tables(check=True) == 0, "run: python scripts/claims.py tables"


def test_every_claim_names_an_experiment_of_both_suites_and_a_stated_outcome(compose):
    claims, runner = load("claims_tables").load_claims(), load("claims")
    for suite in ("digits", "clutter"):
        names = runner.load_suite(suite)["experiments"]
        assert {c["experiment"] for c in claims} <= set(names), suite
    for c in claims:
        cfg = compose(f"experiment={c['experiment']}")
        o = cfg.experiment.outcomes
        stated = [o.primary or "test/acc", *(o.secondary or [])]
        assert c["metric"] in stated or c["metric"].endswith("_to_target"), c


def test_tally_counts_each_category_once():
    tally = load("claims_tally").tally_text
    cats = ["reproduced", "direction only", "untestable at this budget", "untestable at this budget", "contradicted",
            "inconclusive", "not run"]
    assert tally(cats) == ("7 measured comparisons, one count each: 1 reproduced, 1 direction only, 2 untestable at this "
                           "budget, 1 contradicted, 1 inconclusive, 1 not yet run or not recomputable.")


def _row(**kw):
    row = {"arm": "a", "baseline": "b", "metric": "test/acc", "kind": "means", "n": 5, "n_baseline": 5, "mean": 0.90,
           "mean_baseline": 0.80, "better": True, "welch": {"diff": 0.10, "ci_low": 0.08, "ci_high": 0.12, "p": 1e-5},
           "permutation": {"p": 2 / 252, "exact": True}, "effect": {"pooled_sd": 0.01}, "equivalence": {}}
    return {**row, **kw}


def test_categories_follow_the_stated_rules():
    t = load("claims_tally")
    rules = {"alpha": 0.05, "ratio_factor": 2, "untestable_mde_ratio": 3}
    report = {"alpha": 0.05, "arms": [{"arm": "a", "trained": {"k": 5}}, {"arm": "b", "trained": {"k": 5}}]}
    claim = {"expected": "better", "paper_errors": [15.0, 20.0]}  # the paper: 25% less error
    # +10 points on a 20% error: a 50% error reduction, CI 40-60%, does not hold the paper's 25%: direction only.
    r = t.classify(claim, report, _row(), 2 / 252, rules)
    assert r["category"] == "direction only" and "40% to 60%" in r["why"]
    r = t.classify({"expected": "better", "paper_errors": [10.0, 20.0]}, report, _row(), 2 / 252, rules)
    assert r["category"] == "reproduced"  # the paper's 50% is inside
    # 3 + 3 seeds: the exact p cannot go below 0.1; the MDE is infinite: untestable, with the seeds it would need.
    r = t.classify(claim, report, _row(n=3, n_baseline=3), 0.1, rules)
    assert r["category"] == "untestable at this budget" and "MDE ∞" in r["why"] and r["seeds_needed"] >= 2
    # An arm at chance: untestable whatever the p.
    dead = {"alpha": 0.05, "arms": [{"arm": "a", "trained": {"k": 5}}, {"arm": "b", "trained": {"k": 0}}]}
    assert t.classify(claim, dead, _row(), 2 / 252, rules)["category"] == "untestable at this budget"
    # Significant against the paper, powered, both trained: contradicted.
    r = t.classify(claim, report, _row(better=False, mean=0.70), 2 / 252, rules)
    assert r["category"] == "contradicted"
    # The old reports: the exact permutation p they hold decides (3 + 3: 0.1), not Welch's.
    assert t.deciding_p(_row(n=3, n_baseline=3, permutation={"p": 0.1, "exact": True})) == (0.1, "exact permutation")


def test_a_claim_reads_its_primary_or_secondary_outcome_from_the_committed_report():
    tables = load("claims_tables")
    claims = [c for c in tables.load_claims() if c["experiment"] == "ablate_skip"]
    path = tables.report_file("clutter", claims[0])
    if not path.exists():
        pytest.skip("no clutter report of ablate_skip committed")
    report = json.loads(path.read_text())
    for c in claims:
        row = tables.find(report, c)
        assert row is not None and row["metric"] == c["metric"] and row["outcome"] in tables.OUTCOMES
        category, text = tables.cell("clutter", c)
        assert category in tables.CATEGORIES and text.startswith(f"**{category}**") and "p_adj" in text


@pytest.mark.slow
def test_run_copies_the_report_and_the_extra_baseline_reports(tmp_path, monkeypatch):
    """A real (smoke-sized) study through scripts/claims.py run: report.json lands under RESULTS/<suite>/<experiment>/
    with the command and wall time, and a claim against another arm gets report.baseline=ARM.json with that
    baseline; --missing then skips it."""
    runner = load("claims")
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "claims.yaml").write_text(
        "claims:\n  - {innovation: x, paper: y, experiment: ablate_skip, arm: skip=identity, baseline: skip=none, "
        "metric: test/acc, expected: better}\n")
    monkeypatch.setattr(runner, "SUITES", suites)
    monkeypatch.setattr(runner, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(runner, "ROOT", ROOT)
    suite = {"name": "t", "study": "t", "experiments": {"ablate_skip": None},
             "overrides": ["debug=smoke", "logger=none", "experiment.seeds=[0,1]", "data.limit=64", "data.batch_size=32",
                           "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "sweep.workers=1"]}
    assert runner.run(suite, ["ablate_skip"], [], tmp_path / "runs", missing=False) == 0
    dest = tmp_path / "results" / "t" / "ablate_skip"
    main = json.loads((dest / "report.json").read_text())
    other = json.loads((dest / "report.baseline=skip=none.json").read_text())
    assert main["baseline"] == "skip=identity" and other["baseline"] == "skip=none"
    assert [c["arm"] for c in other["comparisons"]] == ["skip=identity"]
    assert main["command"].startswith("python -m nasplay experiment=ablate_skip debug=smoke") and main["wall_minutes"] > 0
    assert not Path(main["path"]).is_absolute() and (dest / "study.json").exists()
    assert runner.run(suite, ["ablate_skip"], [], tmp_path / "runs", missing=True) == 0  # skipped, nothing rerun
    assert main["protocol"] == runner.protocol("ablate_skip", main["command"]) and other["protocol"] == main["protocol"]
    assert runner.current(dest / "report.json", main["protocol"])
    # the experiment's file or the suite's command changed since: --missing reruns it; a report without a
    # fingerprint (made before them) is judged by the rules alone
    assert runner.protocol("ablate_skip", main["command"] + " x=1") != main["protocol"]
    assert not runner.current(dest / "report.json", "0" * 16)
    (dest / "report.json").write_text(json.dumps({k: v for k, v in main.items() if k != "protocol"}))
    assert runner.current(dest / "report.json", "0" * 16)


def test_claims_md_states_the_environment_of_the_runs_from_their_reports(tmp_path, monkeypatch):
    from nasplay import environment

    tables = load("claims_tables")
    text = (ROOT / "docs" / "claims.md").read_text()
    for suite in ("clutter", "digits"):  # what the committed reports say (they may predate the record)
        assert tables.environment_text(suite) in text
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    env = environment.collect(threads=1, deterministic=True)
    block = {"recorded": True, "environments": {env["fingerprint"]: env}, "trials": {env["fingerprint"]: 6}}
    for name, report in (("ablate_gap", {"experiment": "ablate_gap", "environment": block}),
                         ("ablate_skip", {"experiment": "ablate_skip"})):
        (tmp_path / "s" / name).mkdir(parents=True)
        (tmp_path / "s" / name / "report.json").write_text(json.dumps(report))
    mixed = tables.environment_text("s")
    assert f"- `{env['fingerprint']}` (`ablate_gap`): {environment.describe(env)}" in mixed
    assert f"- not recorded (runs predate {tables.ENVIRONMENT_SINCE}): `ablate_skip`" in mixed
    (tmp_path / "s" / "ablate_skip" / "report.json").unlink()
    one = tables.environment_text("s")
    assert one.startswith(f"Environment of these runs (from their reports, fingerprint `{env['fingerprint']}`): nasplay ")
    assert f"torch {env['torch']}" in one
    # the fingerprint leaves out uncommitted changes: a dirty run of the same fingerprint gets its own line
    dirty = {**env, "dirty": True, "commit": "0" * 40}
    clean = {**env, "dirty": False, "commit": "0" * 40}
    for name, e in (("ablate_gap", clean), ("edf_skip", dirty)):
        (tmp_path / "s" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "s" / name / "report.json").write_text(json.dumps(
            {"experiment": name, "environment": {"recorded": True, "environments": {env["fingerprint"]: e}}}))
    split = tables.environment_text("s").splitlines()
    assert f"- `{env['fingerprint']}` (`ablate_gap`): nasplay {env['nasplay']} (commit 0000000000), Python" in split[1]
    assert f"- `{env['fingerprint']}` (`edf_skip`): nasplay {env['nasplay']} (commit 0000000000, with uncommitted changes)" in split[2]


def _block(text: str, name: str) -> str:
    m = re.search(rf"<!-- generated:{re.escape(name)} -->\n(.*?)<!-- /generated:{re.escape(name)} -->", text, re.S)
    assert m, f"docs/claims.md has no <!-- generated:{name} --> block"
    return m.group(1)


def test_every_digits_experiment_has_its_measured_block_with_the_reports_arm_means():
    """Each experiment of the digits suite has a generated block in its section, and the digits part of that block
    gives each arm's test accuracy as its committed report does (read here from the JSON, not through the generator)."""
    runner = load("claims")
    text = (ROOT / "docs" / "claims.md").read_text()
    checked = 0
    for name in runner.load_suite("digits")["experiments"]:
        block = _block(text, f"measured-{name}")
        digits, _, clutter = block.partition("**clutter**")
        assert digits.startswith("**digits**") and clutter, name
        path = ROOT / "docs" / "results" / "digits" / name / "report.json"
        if not path.exists():
            assert "no report of" in digits, name
            continue
        report = json.loads(path.read_text())
        for arm in report["arms"]:
            acc = arm if report["metric"] == "test/acc" else arm["secondary"]["test/acc"]
            row = next(line for line in digits.splitlines() if line.startswith(f"| {arm['arm']} "))
            assert f"| {100 * acc['mean']:.1f} ({100 * acc['ci_low']:.1f}–{100 * acc['ci_high']:.1f}) |" in row, (name, row)
            checked += 1
    assert checked >= 40  # the digits suite's reports hold well over 40 arms


def test_an_experiment_without_a_report_says_so_plainly(tmp_path, monkeypatch):
    """The generator reads whatever results root it is given: with only the digits report of ablate_skip, the clutter
    half of its block, and both halves of every other experiment's, say that no report is committed."""
    tables = load("claims_tables")
    src = ROOT / "docs" / "results" / "digits" / "ablate_skip" / "report.json"
    (tmp_path / "digits" / "ablate_skip").mkdir(parents=True)
    (tmp_path / "digits" / "ablate_skip" / "report.json").write_text(src.read_text())
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    made = tables.blocks()
    skip = made["measured-ablate_skip"]
    assert "**clutter**: no report of `ablate_skip` is committed under `docs/results/clutter/` yet." in skip
    assert skip.startswith("**digits**: 2 arms, ") and "| skip=none vs skip=identity (train/loss_auc) | **" in skip
    assert made["measured-ablate_gap"] == ("**digits**: no report of `ablate_gap` is committed under `docs/results/digits/` yet."
                                           "\n\n**clutter**: no report of `ablate_gap` is committed under "
                                           "`docs/results/clutter/` yet.")
    n = len(tables.experiments())
    assert made["summary-clutter"].startswith(f"0 of {n} experiments have a report.")
    assert made["summary-digits"].startswith(f"1 of {n} experiments have a report. 5 seeds per arm: 1 report (`ablate_skip`).")
    counted = [c for c in tables.load_claims() if c.get("counted", True) and not c.get("counted_with")]
    assert f"- **not run** ({len(counted)}): " in made["summary-clutter"]
    assert "- **reproduced** (" not in made["summary-clutter"]


# Bullets that describe the papers and the designs (stated before a run) may quote the papers' numbers.
_PAPER_BULLETS = ("Claim", "What the paper held fixed", "What it tests", "Outcome stated", "Outcomes stated",
                  "How nasplay matches", "What nasplay does now")
_MEASURED = [re.compile(p) for p in (r"\d+(\.\d+)?\s?%", r"\bp(_adj)?\s*[=<≤]\s*0?\.\d", r"\bp_adj\b",
                                     r"[+−-]\d+\.\d+ points", r"recorded 2026-11-25", r"from the recorded numbers")]


def hand_written_measurements(text: str) -> list[str]:
    """Lines of hand-written text after "## Every claim" (outside generated blocks and outside the bullets that quote
    the papers or state a design) that hold a measured number: a percentage, a p-value, a difference in points."""
    text = text[text.index("## Every claim"):]
    text = re.sub(r"<!-- generated:([\w-]+) -->\n.*?<!-- /generated:\1 -->", "", text, flags=re.S)
    hits, exempt = [], False
    for line in text.splitlines():
        if line.startswith("- **"):
            exempt = line[4:].startswith(_PAPER_BULLETS)
        elif not line.startswith("  "):
            exempt = False
        if not exempt and any(p.search(line) for p in _MEASURED):
            hits.append(line)
    return hits


def test_hand_written_sections_hold_no_measured_numbers():
    assert hand_written_measurements((ROOT / "docs" / "claims.md").read_text()) == []
    # the check is not empty: the hand-written "Measured" bullets the document had before the blocks fail it
    old = ("## Every claim\n\n- **Measured** (3 seeds): skip=identity 97.86% (95% CI 97.07–98.66); Δ = -0.28 points, p = 0.52.\n"
           "- **Outcome.** **inconclusive** (*from the recorded numbers*), p_adj 0.066.\n"
           "- **Claim.** plain-18 27.94% vs ResNet-18 27.88% top-1 error.\n"
           "<!-- generated:x -->\n| a | 97.9 (95.8–99.0) | p 0.008 | p_adj 0.008 |\n<!-- /generated:x -->\n")
    assert len(hand_written_measurements(old)) == 2


def test_estimate_times_the_sampled_architectures_of_a_paired_design(compose):
    """edf_skip trains 100 architectures drawn from search_spaces/resnet_small.yaml, not its arms' full ResNet-18:
    the estimate times the genomes of the first pairs, the arm's knobs with each pair's sampled depth and width."""
    from nasplay.complexity import complexity
    from nasplay.sweep.plan import make_plan

    runner = load("claims")
    plan = make_plan(compose("experiment=edf_skip"))
    points = plan.sampled_pairs()[:4]
    for arm in ("skip=identity", "skip=none"):
        full, a = plan.genomes[arm], plan.arm(arm)
        shape = (full.input.channels, full.input.size, full.classes)
        genomes = runner.pair_genomes(plan, arm, limit=4)
        assert len(genomes) == 4
        for i, (g, point) in enumerate(zip(genomes, points)):
            assert set(point) == {"knobs.depth", "knobs.width"}, point
            knobs = {**a.knobs, "depth": point["knobs.depth"], "width": point["knobs.width"]}
            assert g == plan.trial_genome(arm, a.arch, knobs, shape), (arm, i)
        params = [complexity(g).params for g in genomes]
        assert len(set(params)) == 4 and max(params) < complexity(full).params / 4, params
