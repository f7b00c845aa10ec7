"""What a report is asked for (``report.*``) and what an experiment states before it runs (``experiment.outcomes``).

Torch-free and numpy-free: :mod:`nasplay.sweep.config` imports both dataclasses into its schema, and the
report reads the same keys back from a study's ``config.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ADJUSTMENTS = ("holm", "none")
TESTS = ("exact", "welch", "permutation")


@dataclass
class OutcomesConfig:
    """The outcomes an experiment names before it runs.

    ``primary`` is the metric the verdict of the study rests on (a results column, or one the report
    derives, e.g. ``train/loss_auc`` from curves.csv); ``secondary`` the paper's other claims, each its
    own family for Holm. ``margin`` maps a metric to its equivalence margin in the metric's points (the
    units the report shows: percentage points for accuracies); a metric without one cannot be called
    "equivalent". ``claimed`` maps a metric to the paper's claimed effect of an arm against the baseline
    in the same points (``{metric: value}``, ``{metric: {arm: value}}``, or ``{metric: {"arm vs reference": value}}``
    for a claim against another arm), so the report can say how many seeds would detect it. The comparisons with a
    claimed effect are Holm's family; the others are exploratory and adjusted apart. ``source`` quotes where the paper states the claim.
    """

    primary: str | None = None
    secondary: list[str] = field(default_factory=list)
    margin: dict[str, float] = field(default_factory=dict)
    claimed: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def check(self) -> OutcomesConfig:
        for m, v in self.margin.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"experiment.outcomes.margin.{m} must be a positive number (in the metric's points), got {v!r}")
        if self.primary is not None and self.primary in self.secondary:
            raise ValueError(f"experiment.outcomes: {self.primary!r} is the primary outcome and cannot be secondary too")
        return self


@dataclass
class ReportConfig:
    """How the report tests: ``adjust`` (Holm within each family, or none), ``alpha``, ``test`` (the p-value
    behind the verdicts: ``exact``, the exact permutation p up to 10 seeds per arm and Welch above; ``welch``;
    ``permutation``), ``margin`` (overrides the primary outcome's equivalence margin, in its points),
    ``power`` (for the minimum detectable effect) and ``resamples`` (bootstraps and permutations)."""

    adjust: str = "holm"
    alpha: float = 0.05
    test: str = "exact"
    margin: float | None = None
    power: float = 0.8
    resamples: int = 2000

    def check(self) -> ReportConfig:
        if self.adjust not in ADJUSTMENTS:
            raise ValueError(f"report.adjust must be one of {list(ADJUSTMENTS)}, got {self.adjust!r}")
        if self.test not in TESTS:
            raise ValueError(f"report.test must be one of {list(TESTS)}, got {self.test!r}")
        for name in ("alpha", "power"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ValueError(f"report.{name} must be in (0, 1), got {v!r}")
        if self.margin is not None and (isinstance(self.margin, bool) or not isinstance(self.margin, (int, float))
                                        or not (self.margin > 0 and math.isfinite(self.margin))):
            raise ValueError(f"report.margin must be a positive number (the metric's points) or null, got {self.margin!r}")
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < 100:
            raise ValueError(f"report.resamples must be an int >= 100, got {self.resamples!r}")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ReportConfig:
        """From a config.yaml's ``report`` section; unknown keys are ignored (an older or newer runner wrote it)."""
        known = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known).check()


def outcomes_from_dict(data: dict[str, Any] | None) -> OutcomesConfig:
    """``experiment.outcomes`` as read back from config.yaml or study.json (unknown keys ignored)."""
    known = {k: v for k, v in (data or {}).items() if k in OutcomesConfig.__dataclass_fields__}
    out = OutcomesConfig(**known)
    out.secondary = list(out.secondary or [])
    out.margin = dict(out.margin or {})
    out.claimed = dict(out.claimed or {})
    return out.check()
