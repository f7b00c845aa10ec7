"""A report a newcomer reads right: each outcome defined where the report uses it; a smoke run says it is one and gives
no verdict; an arm that did not train (no seed above chance) gets no verdict. On copies of the committed studies."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

from nasplay.report.write import write_report

STUDIES = Path(__file__).resolve().parent / "data" / "studies"
BOLD_VERDICT = re.compile(r"\| \*\*(better|worse|equivalent|inconclusive)\*\* \|")  # an outcome cell of a table


def copy(name: str, tmp: Path) -> Path:
    return Path(shutil.copytree(STUDIES / name, tmp / name, ignore=shutil.ignore_patterns("golden")))


def report(study: Path) -> tuple[dict, str]:
    out = study.parent / "out"
    write_report(study, out, figures=False)
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_each_outcome_is_defined_where_the_report_uses_it(tmp_path) -> None:
    _, md = report(copy("ablate_skip", tmp_path))
    outcomes = md.split("## Outcomes", 1)[1].split("## Arms", 1)[0]
    assert "- primary: `train/loss_auc`: the area under the per-epoch training-loss curve divided by the epochs" in outcomes
    assert "- secondary: `test/acc`: top-1 accuracy on the held-out test split" in outcomes
    primary = md.split("## Primary outcome", 1)[1].split("###", 1)[0]
    assert "`train/loss_auc`: the area under the per-epoch training-loss curve" in primary
    assert "`test/acc`: top-1 accuracy on the held-out test split" in md.split("### test/acc", 1)[1]


def test_a_smoke_run_says_so_and_gives_no_verdict(tmp_path) -> None:
    study = copy("ablate_skip", tmp_path)
    config = study / "config.yaml"
    config.write_text(config.read_text().replace("limit_train_batches: null", "limit_train_batches: 4"))
    r, md = report(study)
    assert r["notes"][0].startswith("A smoke run (4 training batches an epoch, 2 epoch(s)): it checks that the study runs")
    assert r["comparisons"] and all(c["withheld"] == "smoke run" for c in r["comparisons"])
    assert all(c["withheld"] == "smoke run" for comps in r["secondary"].values() for c in comps)
    assert "> A smoke run" in md and "no verdict (smoke run)" in md and not BOLD_VERDICT.search(md)
    _, md = report(copy("ablate_skip", tmp_path / "full"))  # the same study, not a smoke run: verdicts in bold
    assert BOLD_VERDICT.search(md) and "A smoke run" not in md and "no verdict" not in md


def test_an_arm_that_did_not_train_gets_no_verdict(tmp_path) -> None:
    study = copy("ablate_skip", tmp_path)
    path = study / "results.csv"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["arm"] == "skip=none":
            row["test/acc"] = "0.1"  # chance on 10 classes: no seed trained
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r, md = report(study)
    untrained = [c for comps in [r["comparisons"], *r["secondary"].values()] for c in comps]
    assert untrained and all(c["withheld"] == "skip=none did not train: no seed above chance" for c in untrained)
    assert "no verdict (skip=none did not train: no seed above chance)" in md and not BOLD_VERDICT.search(md)
