"""Families of comparisons: with several ``experiment.bases`` and a knob, each base's arms are compared with that base's
own baseline arm (``study.json``'s ``baselines``), and Holm adjusts within each base's family, not across bases."""

from __future__ import annotations

from typing import Any

from nasplay.report.load import Study


def family_baseline(study: Study, arm: str) -> str | None:
    """The baseline ``arm`` is compared with: its base's own baseline arm when the study has several bases (a family per
    base, ``study.json``'s ``baselines``), else the study's baseline."""
    return study.baselines.get(arm, study.baseline)


def by_family(study: Study, comps: list[Any], adjust: Any) -> list[Any]:
    """``adjust(family)`` applied to each family of comparisons apart (a family per base's baseline, in order), or to all
    of them as one family when the study has one baseline; the results in the order of ``comps``."""
    if not study.baselines:
        return list(adjust(comps))
    out: dict[int, Any] = {}
    for ref in dict.fromkeys(c.baseline for c in comps):
        family = [i for i, c in enumerate(comps) if c.baseline == ref]
        out.update(zip(family, adjust([comps[i] for i in family])))
    return [out[i] for i in range(len(comps))]
