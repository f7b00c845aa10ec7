"""Families of comparisons: with several ``experiment.bases`` and a knob, each base's arms are compared with that base's
own baseline arm (``study.json``'s ``baselines``), and Holm adjusts within each base's family, not across bases
(``analyse._family_keys``: a family is a base and, within it, the claimed or the exploratory comparisons)."""

from __future__ import annotations

from nasplay.report.load import Study


def family_baseline(study: Study, arm: str) -> str | None:
    """The baseline ``arm`` is compared with: its base's own baseline arm when the study has several bases (a family per
    base, ``study.json``'s ``baselines``), else the study's baseline."""
    return study.baselines.get(arm, study.baseline)

