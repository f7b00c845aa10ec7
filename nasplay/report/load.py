"""Load a study directory: its trials, curves, config and manifest, and the choices the report makes about them.

The first of the report's three parts (load, :mod:`~nasplay.report.analyse`, :mod:`~nasplay.report.write`).
A study directory (``runs/<experiment>/<study>/``, written by the sweep runner) holds ``results.csv``
(one row per trial), ``curves.csv`` (``trial, epoch, step, metric, value``), ``study.json`` (the manifest) and ``config.yaml`` (the
resolved config). Only ``results.csv`` is required; every optional column or file that is missing just
leaves its part of the report out, with a note saying so.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nasplay.manifest import FILE as MANIFEST_FILE
from nasplay.manifest import Manifest, direction, kind_of
from nasplay.outcomes import OutcomesConfig, ReportConfig, outcomes_from_dict

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
# Columns read as text even when they look like numbers.
TEXT_COLUMNS = {"state", "arm", "wandb_id", "fail_reason", "genome_hash", "arch", "genome", "datetime_start", "datetime_complete",
                "environment"}
# The primary metric when the config names none: the first present in the finished trials.
METRIC_PREFERENCE = ("test/acc", "val/acc_best", "val/acc")
# Time-to-target metrics (e.g. epochs to a target error, as the AlexNet paper measured ReLU): empty where a seed never
# got there, so they are analysed as censored (Kaplan-Meier, log-rank, Fisher), never as a mean of those that arrived.
SECONDARY = ("epochs_to_target", "steps_to_target", "steps_to_target_baseline")
# Time-to-target outcomes whose target the report derives: steps until a seed's validation accuracy first reaches the
# baseline arm's own final accuracy (the mean over its seeds of each one's last value), as Ioffe & Szegedy counted steps
# to Inception's final 72.2% (Sec. 4.2.2). Computed only where the experiment names it (experiment.outcomes).
BASELINE_TARGETS = {"steps_to_target_baseline": "val/acc"}
# Metrics the report derives from curves.csv: the area under a per-epoch curve divided by the epochs (its mean over the run).
DERIVED = {"train/loss_auc": "train/loss", "val/loss_auc": "val/loss"}
# Test-set sizes of the datasets nasplay reads (their own test splits), and their classes: for studies whose study.json
# predates the sizes the data module records (Manifest.test_size / val_size).
NATIVE_TEST_SIZE = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 10_000, "cifar100": 10_000}
NATIVE_CLASSES = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
# scikit-learn's digits per class (0-9); nasplay holds out round(test_fraction * count) of each (train.data.stratified_split).
DIGITS_PER_CLASS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)


def lower_is_better(metric: str) -> bool:
    """Loss, error, time and "to target" metrics shrink when things improve; accuracies grow."""
    return direction(metric) == "minimize"


def _parse(value: str, column: str) -> Any:
    if column in TEXT_COLUMNS:
        return value
    if value == "" or value.lower() == "nan":  # "none" stays text: it is a knob value (skip=none)
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV file with numbers parsed and empty cells as ``None``."""
    with open(path, newline="") as f:
        return [{k: _parse(v or "", k) for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def _load_config(path: Path) -> dict:
    p = path / "config.yaml"
    if not p.exists():
        return {}
    data = yaml.safe_load(p.read_text()) or {}
    return data if isinstance(data, dict) else {}


def num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


@dataclass
class Study:
    """A loaded study directory: its trials, curves, config and the choices the report makes about them."""

    path: Path
    name: str
    experiment: str
    config: dict
    trials: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    arms: list[str]
    baseline: str | None
    baseline_source: str
    metric: str
    kind: str
    notes: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    outcomes: OutcomesConfig = field(default_factory=OutcomesConfig)  # what the experiment stated before it ran
    settings: ReportConfig = field(default_factory=ReportConfig)  # config.yaml's report section (adjust, alpha, margin, ...)
    classes: int | None = None
    test_size: int | None = None
    test_size_source: str = ""
    val_size: int | None = None  # the validation split's images, where the data and config.yaml say it
    tuning: list[dict[str, Any]] = field(default_factory=list)  # experiment.tune's trials (stage=tune), apart
    budgets: list[float] = field(default_factory=list)  # experiment.budgets; trials holds the largest one's
    by_budget: dict[float, list[dict[str, Any]]] = field(default_factory=dict)  # every budget's comparison trials
    val_size_source: str = ""
    source_images: dict[str, int] | None = None  # clutter: the source digits each split is composed from (study.json)
    baselines: dict[str, str] = field(default_factory=dict)  # several bases: arm -> its base's baseline (study.json)
    targets: dict[str, float] = field(default_factory=dict)  # BASELINE_TARGETS computed: metric -> the target it used

    def eval_size(self, metric: str) -> int | None:
        """Images behind an accuracy: the test split for ``test/*``, the validation split for ``val/*``, else unknown."""
        return self.test_size if metric.startswith("test/") else self.val_size if metric.startswith("val/") else None

    @property
    def complete(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t.get("state", "COMPLETE") == "COMPLETE"]

    def values(self, arm: str, metric: str | None = None) -> np.ndarray:
        """The finished trials' values of ``metric`` (default: the study's) in one arm, NaN where missing."""
        m = metric or self.metric
        return np.array([num(t.get(m)) for t in self.complete if t["arm"] == arm], dtype=float)

    def column(self, name: str, arm: str | None = None) -> np.ndarray:
        return np.array([num(t.get(name)) for t in self.complete if arm is None or t["arm"] == arm], dtype=float)

    def has(self, column: str) -> bool:
        return any(math.isfinite(num(t.get(column))) for t in self.complete)

    def available(self, metric: str) -> bool:
        """A metric the report can analyse: a value somewhere, or a time-to-target column (all censored is a result)."""
        if metric in BASELINE_TARGETS:
            return metric in self.targets
        if metric in SECONDARY:  # a trial that never reached the target records no value: censored, still a result
            return bool(self.complete) and (self.has(metric) or _target_set(self.config, metric))
        return self.has(metric)


# The trainer setting behind each time-to-target metric.
TARGETS = {"epochs_to_target": "target_train_error", "steps_to_target": "target_val_acc"}


def _target_set(config: dict, metric: str) -> bool:
    if metric in BASELINE_TARGETS:
        return True  # derived from the curves (add_baseline_targets)
    return (config.get("trainer") or {}).get(TARGETS[metric]) is not None


def add_baseline_targets(trials: list[dict[str, Any]], curves: list[dict[str, Any]], baseline: str, metric: str) -> float | None:
    """:data:`BASELINE_TARGETS`: the baseline's final accuracy (mean over its finished seeds of each one's last logged
    value), and on every finished trial the first step its curve reaches it (none: censored); ``None`` without curves."""
    source = BASELINE_TARGETS[metric]
    per: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for r in curves:
        v, s = num(r.get("value")), num(r.get("step"))
        if r.get("metric") == source and math.isfinite(v) and math.isfinite(s):
            per[r.get("trial")].append((s, v))
    done = [t for t in trials if t.get("state", "COMPLETE") == "COMPLETE"]
    finals = [max(per[t.get("number")])[1] for t in done if t["arm"] == baseline and per.get(t.get("number"))]
    if not finals:
        return None
    target = float(np.mean(finals))
    for t in done:
        hit = [s for s, v in sorted(per.get(t.get("number"), [])) if v >= target - 1e-12]
        if hit:
            t[metric] = hit[0]
        elif not math.isfinite(num(t.get("steps"))) and per.get(t.get("number")):
            t["steps"] = max(per[t.get("number")])[0]  # censored at the last step it logged
    return target


def add_derived(trials: list[dict[str, Any]], curves: list[dict[str, Any]]) -> list[str]:
    """Add :data:`DERIVED` metrics to each trial from its curve: the mean of the per-epoch values (area / epochs)."""
    made = []
    for name, source in DERIVED.items():
        per: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in curves:
            v = num(r.get("value"))
            if r.get("metric") == source and math.isfinite(v):
                per[r.get("trial")][r.get("epoch") if r.get("epoch") is not None else r.get("step")].append(v)
        if not per:
            continue
        for t in trials:
            epochs = per.get(t.get("number"))
            if epochs and name not in t:
                t[name] = float(np.mean([np.mean(v) for v in epochs.values()]))
        made.append(name)
    return made


# Training images per class of the datasets with uniform classes (the validation split is taken from them).
TRAIN_PER_CLASS = {"cifar10": (5000,) * 10, "cifar100": (500,) * 100, "fashion_mnist": (6000,) * 10}
VAL_SOURCE = "config.yaml data.val_fraction of each class"


def _val_size(manifest: Manifest | None, config: dict) -> tuple[int | None, str]:
    """The validation split's size and where it came from: study.json (as the data module held it), else
    round(val_fraction * count) of each class of the dataset config.yaml names (train.data.stratified_split)."""
    if manifest is not None and manifest.val_size:
        return int(manifest.val_size), MANIFEST_FILE
    data = config.get("data") or {}
    if data.get("name") == "clutter":  # generated to size (nasplay.train.clutter)
        return int(data.get("clutter_val", 1000)), VAL_SOURCE
    per_class = DIGITS_PER_CLASS if data.get("name") == "digits" else TRAIN_PER_CLASS.get(data.get("name"))
    if per_class is None:
        return None, ""
    f = float(data.get("val_fraction", 0.1))
    return sum(int(round(f * c)) for c in per_class), VAL_SOURCE


def _test_size(manifest: Manifest | None, trials: list[dict[str, Any]], config: dict) -> tuple[int | None, str]:
    """The test split's size and where it came from: study.json, a results column, or the dataset and config.yaml."""
    if manifest is not None and manifest.test_size:
        return int(manifest.test_size), MANIFEST_FILE
    for col in ("test_size", "test/n"):
        v = [x for x in (num(t.get(col)) for t in trials) if math.isfinite(x)]
        if v:
            return int(v[0]), f"results.csv column {col}"
    data = config.get("data") or {}
    name = data.get("name")
    if name in NATIVE_TEST_SIZE:
        return NATIVE_TEST_SIZE[name], f"{name}'s own test split (config.yaml data.name)"
    if name == "clutter":
        return int(data.get("clutter_test", 5000)), "clutter, composed to size (config.yaml data.clutter_test)"
    if name == "digits":
        f = float(data.get("test_fraction", 0.2))
        return (sum(int(round(f * c)) for c in DIGITS_PER_CLASS),
                f"digits, {f:g} of each class held out (config.yaml data.test_fraction)")
    return None, ""


def _match_arm(value: str, arms: list[str], knob: str | None) -> str | None:
    """A baseline given on the command line as an arm: its name, ``knob=value``, or the one arm ending in ``=value``."""
    if value in arms:
        return value
    if knob and f"{knob}={value}" in arms:
        return f"{knob}={value}"
    ends = [a for a in arms if a.split("=", 1)[-1] == value]
    return ends[0] if len(ends) == 1 else None


def load_study(path: str | os.PathLike, *, metric: str | None = None, baseline: str | None = None) -> Study:
    """Read a study directory; ``metric`` / ``baseline`` override what its manifest says.

    The arms, their order, the baseline and the kind of study come from ``study.json``, which the runner
    writes (:mod:`nasplay.manifest`); a folder without one (results.csv written by other means) is read
    as the kind its folder name says (``runs/<experiment>/<study>``), its arms in the order they first
    ran, against the first of them in sorted order.
    """
    path = Path(path)
    results = path / "results.csv"
    if not path.is_dir():
        raise ValueError(f"study_dir: {str(path)!r} is not a directory (expected runs/<experiment>/<study>/)")
    if not results.exists():
        raise ValueError(f"study_dir: {str(path)!r} has no results.csv (is it a study directory written by "
                         "'python -m nasplay experiment=...'?)")
    trials = read_csv(results)
    curves = read_csv(path / "curves.csv") if (path / "curves.csv").exists() else []
    config = _load_config(path)
    manifest = Manifest.read(path)
    notes: list[str] = []
    add_derived(trials, curves)
    raw_outcomes = manifest.outcomes if manifest is not None and manifest.outcomes else (config.get("experiment") or {}).get("outcomes")
    outcomes = outcomes_from_dict(raw_outcomes)
    settings = ReportConfig.from_dict(config.get("report"))
    if manifest is None:
        notes.append(f"no {MANIFEST_FILE} in the study directory: arms, baseline and kind are inferred from results.csv")
    experiment = manifest.experiment if manifest else (path.parent.name or path.name)

    for t in trials:
        t.setdefault("state", "COMPLETE")
        t["state"] = str(t["state"] or "COMPLETE").upper().removeprefix("TRIALSTATE.")
        arm = t.get("arm")
        t["arm"] = str(arm) if arm not in (None, "") else str(t.get("arch") or "all")
    # Tuning trials (experiment.tune) chose each arm's settings on their own seeds: they are not the comparison.
    tuning = [t for t in trials if str(t.get("stage") or "") == "tune"]
    trials = [t for t in trials if str(t.get("stage") or "") != "tune"]
    budgets = sorted({num(t.get("budget")) for t in trials if math.isfinite(num(t.get("budget")))})
    by_budget = {b: [t for t in trials if num(t.get("budget")) == b] for b in budgets}
    if len(budgets) > 1:  # the verdicts are read at the longest training; every budget is in report.json's by_budget
        trials = by_budget[budgets[-1]]
        notes.append(f"several budgets (x trainer.max_epochs): {', '.join(f'{b:g}' for b in budgets)}; the verdicts below are at "
                     f"the largest, x{budgets[-1]:g}; 'Effect against the budget' gives every budget's")
    seen = list(dict.fromkeys(t["arm"] for t in sorted([*trials, *tuning], key=lambda t: num(t.get("number")))))
    configured = [a.name for a in manifest.arms if a.name in seen] if manifest else []
    arms = configured + [a for a in seen if a not in configured]

    columns = {k for t in trials for k in t}
    if metric is None and outcomes.primary:
        probe = Study(path, path.name, "", config, trials, [], [], None, "", outcomes.primary, "")
        if outcomes.primary in BASELINE_TARGETS:  # derived once the baseline is known: its source curve must be there
            ok = any(r.get("metric") == BASELINE_TARGETS[outcomes.primary] for r in curves)
            probe.targets = {outcomes.primary: math.nan} if ok else {}
        if probe.available(outcomes.primary):
            metric = outcomes.primary
        else:
            notes.append(f"the primary outcome {outcomes.primary!r} has no values in this study (e.g. a run without a test pass "
                         "or without curves); the report falls back to another metric, so its verdicts are not the pre-stated ones")
    if metric is None and manifest is not None:
        metric = manifest.metric
    if metric is None:
        done = [t for t in trials if t["state"] == "COMPLETE"]
        metric = next((m for m in METRIC_PREFERENCE if any(math.isfinite(num(t.get(m))) for t in done)), None)
        metric = metric or next((m for m in METRIC_PREFERENCE if m in columns), "val/acc")
    elif metric not in columns and not (metric in SECONDARY and _target_set(config, metric)):
        raise ValueError(f"metric: {metric!r} is not a column of {results}; columns: {', '.join(sorted(columns))}")

    kind = manifest.kind if manifest else kind_of(experiment, None)
    base, source = None, ""
    if baseline is not None:
        base = _match_arm(str(baseline), arms, manifest.knob if manifest else None)
        if base is None:
            raise ValueError(f"baseline: {baseline!r} is not an arm of this study; arms: {', '.join(arms)}")
        source = "given on the command line"
    elif manifest is not None and manifest.baseline in arms:
        base, source = manifest.baseline, f"experiment.baseline ({MANIFEST_FILE})"
    elif arms:
        base = sorted(arms)[0]
        source = "no baseline recorded: the first arm in sorted order"
        notes.append(f"baseline not recorded; using {base!r}, the first arm in sorted order")
    classes = (manifest.classes if manifest is not None else None) or NATIVE_CLASSES.get((config.get("data") or {}).get("name"))
    test_size, test_source = _test_size(manifest, trials, config)
    val_size, val_source = _val_size(manifest, config)
    # A family per base (several experiment.bases), unless a single baseline is given on the command line.
    families = {a: b for a, b in (manifest.baselines if manifest is not None else {}).items() if a in arms and b in arms}
    if baseline is None and families:
        source = f"each base's own arm at experiment.baseline ({MANIFEST_FILE})"
    targets = {}
    for m in BASELINE_TARGETS:
        if base is not None and m in (metric, *outcomes.secondary):
            for group in ([trials] + [v for b, v in by_budget.items() if v is not trials]):
                target = add_baseline_targets(group, curves, base, m)
                if group is trials and target is not None:
                    targets[m] = target
                    notes.append(f"{m}: steps until validation accuracy first reaches {base}'s own final accuracy, "
                                 f"{100 * target:.1f}% (the mean of its seeds' last values); seeds that never do are censored")
    return Study(path, path.name, experiment, config, trials, curves, arms, base, source, metric, kind, notes, manifest,
                 outcomes, settings, classes, test_size, test_source, val_size, tuning, budgets, by_budget, val_source,
                 manifest.source_images if manifest is not None else None, baselines=families if baseline is None else {},
                 targets=targets)


def metric_format(study: Study, metric: str | None = None) -> tuple[float, str]:
    """``(scale, unit)`` for showing a metric: accuracies stored in [0, 1] are shown in percentage points."""
    m = metric or study.metric
    v = study.column(m)
    v = v[np.isfinite(v)]
    if "acc" in m and len(v) and v.min() >= 0 and v.max() <= 1:
        return 100.0, "points"
    return 1.0, ""


def median(v: np.ndarray) -> float:
    """The median of the finite values, NaN when there is none."""
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else math.nan


def mean(v: np.ndarray) -> float:
    """The mean of the finite values, NaN when there is none."""
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def margin_of(study: Study, metric: str) -> float | None:
    """The equivalence margin of a metric in its points: ``report.margin`` for the primary outcome, else the experiment's."""
    if metric == study.metric and study.settings.margin is not None:
        return float(study.settings.margin)
    m = study.outcomes.margin.get(metric)
    return float(m) if m is not None else None
