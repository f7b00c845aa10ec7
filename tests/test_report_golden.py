"""The report a committed study gets does not drift: report.json and report.md of three small real studies
(tests/data/studies/, run with debug=smoke) equal, character for character, what the report code wrote for them
when they were committed (tests/data/studies/<name>/golden/). A refactoring of the report must change no number;
a deliberate change of the report regenerates the golden files (``python tests/test_report_golden.py``) and says so.

The studies: ``ablate_skip`` (two arms, two budgets, a derived primary outcome, a margin and a claimed effect, diagrams),
``ablate_activation`` (three arms tuned per arm, a censored time-to-target primary outcome) and ``edf_skip`` (a paired
design space: EDFs, KS and permutation tests, complexity normalisation)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent / "data" / "studies"
STUDIES = ("ablate_skip", "ablate_activation", "edf_skip")
FILES = ("report.json", "report.md")


def render(name: str, out: Path) -> dict[str, str]:
    """The report files the current code writes for a committed study, its paths replaced by placeholders."""
    from nasplay.report.write import write_report

    study = ROOT / name
    write_report(study, out, figures=True, diagrams=name == "ablate_skip")
    return {f: (out / f).read_text().replace(str(out), "<out>").replace(str(study), "<study>") for f in FILES}


@pytest.mark.parametrize("name", STUDIES)
def test_the_report_of_a_committed_study_is_unchanged(name, tmp_path):
    got = render(name, tmp_path)
    for f in FILES:
        assert got[f] == (ROOT / name / "golden" / f).read_text(), f"{name}/{f} differs from the golden file"


if __name__ == "__main__":  # regenerate the golden files (only for a deliberate change of the report)
    import tempfile

    for n in sys.argv[1:] or STUDIES:
        with tempfile.TemporaryDirectory() as tmp:
            files = render(n, Path(tmp))
        (ROOT / n / "golden").mkdir(exist_ok=True)
        for f, text in files.items():
            (ROOT / n / "golden" / f).write_text(text)
        print(f"wrote {ROOT / n / 'golden'}")
