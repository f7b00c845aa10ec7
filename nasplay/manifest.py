"""The study manifest: what the runner knows about a study, written once as ``study.json`` in its folder.

The runner (:mod:`nasplay.sweep`) writes it when a study is created or resumed; the report
(:mod:`nasplay.report`) reads the arms, their order, the baseline, the kind of experiment and the
objectives' directions from it instead of re-deriving them from the config. Torch-free and
numpy-free: both sides import it cheaply.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE = "study.json"
VERSION = 1
# What a study is, as the report treats it: arms against a baseline, a ladder of rungs (each against the one
# before), two design spaces (EDFs) or a search (fronts).
KINDS = ("ablation", "ladder", "design_space", "search")
# Metrics a study may optimise and their natural direction.
OBJECTIVES = {
    "val/acc": "maximize", "val/acc_best": "maximize", "test/acc": "maximize", "val/loss": "minimize",
    "train/loss": "minimize", "flops": "minimize", "params": "minimize", "wall_time": "minimize",
    "imgs_per_sec": "maximize", "epochs_to_target": "minimize",
}
# Words in a metric's name that make smaller values better (losses, errors, times, compute, "to target" counts).
_SMALLER = ("loss", "err", "time", "to_target", "flops", "params", "auc_train_loss")


def direction(metric: str) -> str:
    """``maximize`` or ``minimize``: an objective's declared direction, else what the metric's name says."""
    if metric in OBJECTIVES:
        return OBJECTIVES[metric]
    return "minimize" if any(k in metric.lower() for k in _SMALLER) else "maximize"


def kind_of(experiment: str, kind: str | None) -> str:
    """The experiment's kind: the one it declares, else from its name (``edf_*``, ``search_*``, ``ladder*``)."""
    if kind is not None:
        return kind
    for prefix, k in (("edf", "design_space"), ("search", "search"), ("ladder", "ladder"), ("roadmap", "ladder")):
        if experiment.startswith(prefix):
            return k
    return "ablation"


@dataclass
class ArmEntry:
    """One arm as the runner built it: its name (the ``arm`` column of results.csv), network and knobs."""

    name: str
    arch: str
    knobs: dict[str, Any] = field(default_factory=dict)
    classic: bool = False  # a network trained beside a search (experiment.classics)
    params: int | None = None  # as trained (the data's input and classes)
    flops: int | None = None
    grouping: str | None = None  # "CxDd": groups x channels per group of the first bottleneck's grouped conv (ResNeXt)


@dataclass
class Manifest:
    """What the report needs to know about a study that only the runner knew."""

    experiment: str
    study: str
    kind: str
    arms: list[ArmEntry]
    baseline: str | None
    objectives: list[str]
    directions: list[str]
    knob: str | None = None
    keep: str | None = None
    metric: str | None = None  # the report's primary metric when the experiment names one
    overrides: list[str] = field(default_factory=list)  # the command-line overrides that made the study
    classes: int | None = None  # the data's classes (chance accuracy is 1/classes)
    test_size: int | None = None  # images in the test split, as the data module holds it
    val_size: int | None = None  # images in the validation split, as the data module holds it
    source_images: dict[str, int] | None = None  # clutter: the source digits each split (train / val / test) is composed from
    outcomes: dict[str, Any] | None = None  # experiment.outcomes: primary / secondary metrics, margins, claimed effects
    environment: dict[str, Any] | None = None  # where the study was created (nasplay.environment)
    environments: dict[str, Any] = field(default_factory=dict)  # every environment that opened it or ran its trials, by fingerprint
    # With several experiment.bases and a knob: arm -> its base's own baseline arm (a family per base); else empty.
    baselines: dict[str, str] = field(default_factory=dict)
    version: int = VERSION

    def direction(self, metric: str) -> str:
        if metric in self.objectives:
            return self.directions[self.objectives.index(metric)]
        return direction(metric)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def write(self, study_dir: str | os.PathLike) -> Path:
        path = Path(study_dir) / FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        data = dict(data)
        data["arms"] = [ArmEntry(**a) for a in data.get("arms", [])]
        return cls(**data)

    @classmethod
    def read(cls, study_dir: str | os.PathLike) -> Manifest | None:
        """The manifest of a study folder, or ``None`` when it has none (a folder written by hand)."""
        path = Path(study_dir) / FILE
        if not path.exists():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"{path}: not a study manifest ({e}); delete it and rerun the command to write it again") from None
