"""docs/claims.md follows from what is committed: scripts/claims.py reruns the claims suite, copies each study's
report.json (and the extra-baseline reports its claims need) under docs/results/, and regenerates the tally and the
tables from them."""

from __future__ import annotations

import importlib.util
import json
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


def test_tally_counts_each_outcome_against_the_papers():
    tally = load("claims_tables").tally
    words = ["better", "worse", "equivalent", "inconclusive", "better", "equivalent", "not run"]
    expected = ["better", "better", "better", "better", "equivalent", "equivalent", "better"]
    assert tally(words, expected) == (
        "Reproduced 2 of 7; 1 equivalent where the paper reports a difference, 1 inconclusive, "
        "1 contradicted (significant, against the paper), 1 significant where the paper reports no difference, "
        "1 not yet run or not recomputable.")


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
        word, text = tables.cell("clutter", c)
        assert word == row["outcome"] and text.startswith(f"**{word}**") and "p_adj" in text


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
