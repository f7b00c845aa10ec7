"""Load a study directory and build its report: tables, tests, verdicts, figures, Markdown and JSON.

A study directory (``runs/<experiment>/<study>/``, written by the sweep runner) holds ``results.csv``
(one row per trial), ``curves.csv`` (``trial, epoch, step, metric, value``) and ``config.yaml`` (the
resolved config). Only ``results.csv`` is required; every optional column or file that is missing just
leaves its part of the report out, with a note saying so.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasplay import environment
from nasplay.manifest import FILE as MANIFEST_FILE
from nasplay.manifest import Manifest, direction, kind_of
from nasplay.outcomes import OutcomesConfig, ReportConfig, outcomes_from_dict
from nasplay.report import stats

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
# Columns read as text even when they look like numbers.
TEXT_COLUMNS = {"state", "arm", "wandb_id", "fail_reason", "genome_hash", "arch", "genome", "datetime_start", "datetime_complete",
                "environment"}
# The primary metric when the config names none: the first present in the finished trials.
METRIC_PREFERENCE = ("test/acc", "val/acc_best", "val/acc")
# Time-to-target metrics (e.g. epochs to a target error, as the AlexNet paper measured ReLU): empty where a seed never
# got there, so they are analysed as censored (Kaplan-Meier, log-rank, Fisher), never as a mean of those that arrived.
SECONDARY = ("epochs_to_target", "steps_to_target")
# Metrics the report derives from curves.csv: the area under a per-epoch curve divided by the epochs (its mean over the run).
DERIVED = {"train/loss_auc": "train/loss", "val/loss_auc": "val/loss"}
# Test-set sizes of the datasets nasplay reads (their own test splits), and their classes.
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
    import yaml

    data = yaml.safe_load(p.read_text()) or {}
    return data if isinstance(data, dict) else {}


def _num(v: Any) -> float:
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

    def eval_size(self, metric: str) -> int | None:
        """Images behind an accuracy: the test split for ``test/*``, the validation split for ``val/*``, else unknown."""
        return self.test_size if metric.startswith("test/") else self.val_size if metric.startswith("val/") else None

    @property
    def complete(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t.get("state", "COMPLETE") == "COMPLETE"]

    def values(self, arm: str, metric: str | None = None) -> np.ndarray:
        """The finished trials' values of ``metric`` (default: the study's) in one arm, NaN where missing."""
        m = metric or self.metric
        return np.array([_num(t.get(m)) for t in self.complete if t["arm"] == arm], dtype=float)

    def column(self, name: str, arm: str | None = None) -> np.ndarray:
        return np.array([_num(t.get(name)) for t in self.complete if arm is None or t["arm"] == arm], dtype=float)

    def has(self, column: str) -> bool:
        return any(math.isfinite(_num(t.get(column))) for t in self.complete)

    def available(self, metric: str) -> bool:
        """A metric the report can analyse: a value somewhere, or a time-to-target column (all censored is a result)."""
        if metric in SECONDARY:  # a trial that never reached the target records no value: censored, still a result
            return bool(self.complete) and (self.has(metric) or _target_set(self.config, metric))
        return self.has(metric)


# The trainer setting behind each time-to-target metric.
TARGETS = {"epochs_to_target": "target_train_error", "steps_to_target": "target_val_acc"}


def _target_set(config: dict, metric: str) -> bool:
    return (config.get("trainer") or {}).get(TARGETS[metric]) is not None


def add_derived(trials: list[dict[str, Any]], curves: list[dict[str, Any]]) -> list[str]:
    """Add :data:`DERIVED` metrics to each trial from its curve: the mean of the per-epoch values (area / epochs)."""
    made = []
    for name, source in DERIVED.items():
        per: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in curves:
            v = _num(r.get("value"))
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


def _val_size(config: dict) -> int | None:
    """The validation split's size: round(val_fraction * count) of each class (train.data.stratified_split)."""
    data = config.get("data") or {}
    if data.get("name") == "clutter":  # generated to size (nasplay.train.clutter)
        return int(data.get("clutter_val", 1000))
    per_class = DIGITS_PER_CLASS if data.get("name") == "digits" else TRAIN_PER_CLASS.get(data.get("name"))
    if per_class is None:
        return None
    f = float(data.get("val_fraction", 0.1))
    return sum(int(round(f * c)) for c in per_class)


def _test_size(manifest: Manifest | None, trials: list[dict[str, Any]], config: dict) -> tuple[int | None, str]:
    """The test split's size and where it came from: study.json, a results column, or the dataset and config.yaml."""
    if manifest is not None and manifest.test_size:
        return int(manifest.test_size), MANIFEST_FILE
    for col in ("test_size", "test/n"):
        v = [x for x in (_num(t.get(col)) for t in trials) if math.isfinite(x)]
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
    budgets = sorted({_num(t.get("budget")) for t in trials if math.isfinite(_num(t.get("budget")))})
    by_budget = {b: [t for t in trials if _num(t.get("budget")) == b] for b in budgets}
    if len(budgets) > 1:  # the verdicts are read at the longest training; every budget is in report.json's by_budget
        trials = by_budget[budgets[-1]]
        notes.append(f"several budgets (x trainer.max_epochs): {', '.join(f'{b:g}' for b in budgets)}; the verdicts below are at "
                     f"the largest, x{budgets[-1]:g}; 'Effect against the budget' gives every budget's")
    seen = list(dict.fromkeys(t["arm"] for t in sorted([*trials, *tuning], key=lambda t: _num(t.get("number")))))
    configured = [a.name for a in manifest.arms if a.name in seen] if manifest else []
    arms = configured + [a for a in seen if a not in configured]

    columns = {k for t in trials for k in t}
    if metric is None and outcomes.primary:
        probe = Study(path, path.name, "", config, trials, [], [], None, "", outcomes.primary, "")
        if probe.available(outcomes.primary):
            metric = outcomes.primary
        else:
            notes.append(f"the primary outcome {outcomes.primary!r} has no values in this study (e.g. a run without a test pass "
                         "or without curves); the report falls back to another metric, so its verdicts are not the pre-stated ones")
    if metric is None and manifest is not None:
        metric = manifest.metric
    if metric is None:
        done = [t for t in trials if t["state"] == "COMPLETE"]
        metric = next((m for m in METRIC_PREFERENCE if any(math.isfinite(_num(t.get(m))) for t in done)), None)
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
    return Study(path, path.name, experiment, config, trials, curves, arms, base, source, metric, kind, notes, manifest,
                 outcomes, settings, classes, test_size, test_source, _val_size(config), tuning, budgets, by_budget)


# ---------------------------------------------------------------------------------------------------
# The report as plain data (what --json prints).


def to_finite(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): to_finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_finite(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def metric_format(study: Study, metric: str | None = None) -> tuple[float, str]:
    """``(scale, unit)`` for showing a metric: accuracies stored in [0, 1] are shown in percentage points."""
    m = metric or study.metric
    v = study.column(m)
    v = v[np.isfinite(v)]
    if "acc" in m and len(v) and v.min() >= 0 and v.max() <= 1:
        return 100.0, "points"
    return 1.0, ""


def _median(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else math.nan


def _is_proportion(study: Study, metric: str | None = None) -> bool:
    """An accuracy stored in [0, 1]: its intervals stay in [0, 1] and the test set's binomial noise counts."""
    return metric_format(study, metric)[0] == 100.0


def _nonnegative(metric: str) -> bool:
    return any(k in metric for k in ("loss", "time", "flops", "params", "to_target", "err"))


def references(study: Study) -> list[tuple[str, str]]:
    """``(arm, reference)`` pairs the study tests: each arm against the baseline, or for a ladder the rung before it."""
    out = []
    for i, arm in enumerate(study.arms):
        ref = study.arms[i - 1] if study.kind == "ladder" else study.baseline
        if ref is None or arm == ref or (study.kind == "ladder" and i == 0):
            continue
        out.append((arm, ref))
    return out


def accuracy_metric(study: Study) -> str | None:
    """The accuracy that decides whether a seed trained: the primary metric if it is one, else test/acc, val/acc_best, val/acc."""
    for m in (study.metric, *METRIC_PREFERENCE):
        if "acc" in m and study.has(m) and _is_proportion(study, m):
            return m
    return None


def trained_rule(study: Study) -> str | None:
    """The stated rule for "a seed trained", or ``None`` without an accuracy or where the classes are unknown."""
    m = accuracy_metric(study)
    if m is None or not study.classes:
        return None
    n = study.eval_size(m)
    thr = stats.chance_threshold(study.classes, n)
    split = "test" if m.startswith("test/") else "validation"
    how = (f"3 binomial standard errors of a chance classifier on the {n} {split} images" if n
           else f"5 points (the {split} split's size is unknown)")
    return (f"a seed trained when its {m} exceeds chance (1/{study.classes} = {100 / study.classes:.1f}%) by more than "
            f"{how}: above {100 * thr:.1f}%")


def _trained(study: Study, arm: str) -> tuple[int, int] | None:
    m = accuracy_metric(study)
    if m is None or not study.classes:
        return None
    v = study.values(arm, m)
    v = v[np.isfinite(v)]
    return int((v > stats.chance_threshold(study.classes, study.eval_size(m))).sum()), len(v)


def arm_table(study: Study, confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per arm: n, mean, std, an interval inside the metric's range, the minimum detectable effect, seeds
    trained; params, FLOPs, time; counts of pruned / failed trials; censored time-to-target summaries."""
    refs = dict(references(study))
    st = study.settings
    secondary = [m for m in study.outcomes.secondary if m != study.metric and m not in SECONDARY and study.available(m)]
    rows = []
    for arm in study.arms:
        v = study.values(arm)
        s = stats.summarize(v, confidence)
        all_trials = [t for t in study.trials if t["arm"] == arm]
        row = {"arm": arm, "baseline": arm == study.baseline, **summary(study, arm, study.metric, confidence),
               "params": _median(study.column("params", arm)), "flops": _median(study.column("flops", arm)),
               "wall_time": _mean(study.column("wall_time" if study.has("wall_time") else "duration_s", arm)),
               "imgs_per_sec": _mean(study.column("imgs_per_sec", arm)),
               "seeds": sorted({t.get("seed") for t in study.complete if t["arm"] == arm and t.get("seed") is not None}),
               "pruned": sum(t["state"] == "PRUNED" for t in all_trials),
               "failed": sum(t["state"] == "FAIL" for t in all_trials),
               "running": sum(t["state"] in ("RUNNING", "WAITING") for t in all_trials)}
        if secondary:
            row["secondary"] = {m: summary(study, arm, m, confidence) for m in secondary}
        held = _compute_held(study, arm)
        if held is not None:
            row["compute"] = held
        # The smallest true difference from its reference this arm's comparison detects (pooled SD, both n).
        ref = refs.get(arm)
        if ref is not None:
            w = study.values(ref)
            sd, n_ref = stats.effect_size(v, w).pooled_sd, int(np.isfinite(w).sum())
        else:
            sd, n_ref = s.std, s.n
        row["mde"] = stats.mde(sd, s.n, n_ref, alpha=st.alpha, power=st.power) if s.n >= 2 and n_ref >= 2 else math.nan
        tr = _trained(study, arm)
        if tr is not None:
            k, n = tr
            acc = study.values(arm, accuracy_metric(study))
            good = acc[np.isfinite(acc) & (acc > stats.chance_threshold(study.classes, study.eval_size(accuracy_metric(study))))]
            row["trained"] = {"k": k, "n": n, "metric": accuracy_metric(study), "mean_of_trained": _mean(good)}
        for m in SECONDARY:
            if study.available(m):
                row[m] = stats.time_to_target(*_to_target(study, arm, m)).to_dict()
        rows.append(row)
    return rows


def _compute_held(study: Study, arm: str) -> dict[str, Any] | None:
    """An arm's params and FLOPs as trained (study.json) and their ratios to the baseline's, for every study that
    holds compute (experiment.keep), so a reader sees how equal "equal" was."""
    m = study.manifest
    if m is None or m.keep is None:
        return None
    arms = {a.name: a for a in m.arms}
    a, b = arms.get(arm), arms.get(study.baseline or "")
    if a is None or b is None or not (a.params and a.flops and b.params and b.flops):
        return None
    return {"keep": m.keep, "params": a.params, "flops": a.flops, "params_ratio": a.params / b.params,
            "flops_ratio": a.flops / b.flops, "held_ratio": (a.flops / b.flops) if m.keep == "flops" else (a.params / b.params),
            "grouping": a.grouping}


def tuning_table(study: Study) -> dict[str, Any]:
    """experiment.tune: per arm, the objective (validation) of each tried setting over the tuning seeds, and the
    setting its comparison trials trained with (the ``tuned.*`` columns)."""
    if not study.tuning:
        return {}
    names = sorted({k.removeprefix("param.") for t in study.tuning for k in t if k.startswith("param.")})
    out: dict[str, Any] = {"settings": names, "arms": {}}
    for arm in study.arms:
        rows = [t for t in study.tuning if t["arm"] == arm]
        if not rows:
            continue
        curve: dict[tuple, list[float]] = defaultdict(list)
        for t in rows:
            v = _num(t.get("value"))
            curve[tuple(t.get(f"param.{n}") for n in names)].append(v if t["state"] == "COMPLETE" else math.nan)
        chosen = next(({n: t.get(f"tuned.{n}") for n in names} for t in study.trials
                       if t["arm"] == arm and any(t.get(f"tuned.{n}") not in (None, "") for n in names)), {})
        out["arms"][arm] = {"chosen": chosen, "curve": [
            {"setting": dict(zip(names, k)), "mean": _mean(np.array(v)), "n": len(v),
             "finished": int(np.isfinite(np.array(v)).sum())} for k, v in sorted(curve.items(), key=lambda kv: [_num(x) for x in kv[0]])]}
    return out


def budget_table(study: Study) -> list[dict[str, Any]]:
    """experiment.budgets: every budget's comparison of the primary outcome (Holm within each budget)."""
    if len(study.budgets) < 2:
        return []
    import dataclasses

    out = []
    for b in study.budgets:
        sub = dataclasses.replace(study, trials=study.by_budget[b], notes=[])
        epochs = [_num(t.get("epochs")) for t in sub.complete]
        out.append({"budget": b, "epochs": _median(np.array(epochs, dtype=float)) if epochs else math.nan,
                    "arms": [{"arm": a["arm"], "n": a["n"], "mean": a["mean"], "ci_low": a["ci_low"], "ci_high": a["ci_high"]}
                             for a in arm_table(sub)],
                    "comparisons": comparison_rows(sub)})
    return out


def summary(study: Study, arm: str, metric: str, confidence: float = 0.95) -> dict[str, Any]:
    """n, mean, std and an interval inside the metric's range: for an accuracy the logit t-interval with the test set's
    binomial noise (``ci_low``/``ci_high``), the plain t-interval and the two-level bootstrap beside it."""
    v = study.values(arm, metric)
    s = stats.summarize(v, confidence)
    out = {**s.to_dict(), "t_interval": [s.ci_low, s.ci_high], "ci_method": "t"}
    if _is_proportion(study, metric):
        n_eval = study.eval_size(metric)
        out["ci_low"], out["ci_high"] = stats.logit_interval(v, n_test=n_eval, confidence=confidence)
        split = "test" if metric.startswith("test/") else "validation"
        out["ci_method"] = "logit t" + (f" + binomial noise of {n_eval} {split} images" if n_eval else " (seeds only)")
        out["bootstrap_ci"] = list(stats.two_level_bootstrap(v, n_test=n_eval, resamples=study.settings.resamples,
                                                             confidence=confidence))
    elif _nonnegative(metric) and math.isfinite(s.ci_low):
        out["ci_low"] = max(0.0, s.ci_low)
    return out


def _mean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def margin_of(study: Study, metric: str) -> float | None:
    """The equivalence margin of a metric in its points: ``report.margin`` for the primary outcome, else the experiment's."""
    if metric == study.metric and study.settings.margin is not None:
        return float(study.settings.margin)
    m = study.outcomes.margin.get(metric)
    return float(m) if m is not None else None


def claimed_of(study: Study, metric: str, arm: str) -> float | None:
    """The paper's claimed effect of ``arm`` against its reference on ``metric``, in the metric's points, if stated."""
    c = study.outcomes.claimed.get(metric)
    if isinstance(c, dict):
        v = c.get(arm, c.get(arm.split("=", 1)[-1]))
        return float(v) if isinstance(v, (int, float)) else None
    return float(c) if isinstance(c, (int, float)) and not isinstance(c, bool) else None


def comparisons(study: Study, metric: str | None = None, *, alpha: float | None = None, test: str | None = None,
                confidence: float = 0.95, adjust: str | None = None) -> list[stats.Comparison]:
    """Each arm against its reference on one metric, adjusted together (one family: Holm by default)."""
    m = metric or study.metric
    st = study.settings
    alpha = st.alpha if alpha is None else alpha
    scale, unit = metric_format(study, m)
    margin = margin_of(study, m)
    bounds = (0.0, 1.0) if _is_proportion(study, m) else None
    out = [stats.compare(arm, study.values(arm, m), ref, study.values(ref, m), metric=m, higher_is_better=not lower_is_better(m),
                         alpha=alpha, test=test or st.test, scale=scale, unit=unit, confidence=confidence,
                         margin=None if margin is None else margin / scale, bounds=bounds)
           for arm, ref in references(study)]
    return stats.adjust_family(out, adjust or st.adjust, alpha=alpha, scale=scale, unit=unit, confidence=confidence)


def comparison_rows(study: Study, metric: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`comparisons` as report rows: the margin in points, the claimed effect and the seeds it needs, seeds trained."""
    m = metric or study.metric
    if m in SECONDARY:
        return censored_comparisons(study, m, **kwargs)
    scale, _ = metric_format(study, m)
    st = study.settings
    rows = []
    for c in comparisons(study, m, **kwargs):
        d = c.to_dict()
        d["kind"] = "means"
        # The margin as the experiment states it (the metric's points: percentage points for an accuracy), and as stored.
        d["margin"], d["margin_raw"] = (None if c.margin is None else c.margin * scale), c.margin
        claim = claimed_of(study, m, c.arm)
        if claim is not None:
            d["claimed"] = {"effect": claim, "seeds_needed": stats.seeds_needed(claim / scale, c.effect.pooled_sd,
                                                                                alpha=st.alpha, power=st.power)}
        if m == accuracy_metric(study):
            ta, tb = _trained(study, c.arm), _trained(study, c.baseline)
            if ta and tb and (ta[0] < ta[1] or tb[0] < tb[1]):
                from scipy.stats import fisher_exact

                p = float(fisher_exact([[ta[0], ta[1] - ta[0]], [tb[0], tb[1] - tb[0]]]).pvalue)
                d["trained"] = {"arm": list(ta), "baseline": list(tb), "fisher_p": p}
                d["verdict"] += (f" [{c.arm}: {ta[0]} of {ta[1]} seeds trained, {c.baseline}: {tb[0]} of {tb[1]}; "
                                 f"Fisher's exact test {stats.format_p(p)}]")
        rows.append(d)
    return rows


def _to_target(study: Study, arm: str, metric: str) -> tuple[list[float], list[float]]:
    """An arm's times to the target and, for the seeds that never reached it, the budget they ran (censoring times)."""
    budget_col = "epochs" if metric.startswith("epochs") else "steps"
    reached = [x for x in study.column(metric) if math.isfinite(x)]
    fallback = float(max(reached)) if reached else 1.0
    if budget_col == "epochs":
        fallback = float((study.config.get("trainer") or {}).get("max_epochs") or fallback)
    times, censored = [], []
    for t in study.complete:
        if t["arm"] != arm:
            continue
        v = _num(t.get(metric))
        if math.isfinite(v):
            times.append(v)
        else:
            b = _num(t.get(budget_col))
            censored.append(b if math.isfinite(b) else fallback)
    return times, censored


def censored_comparisons(study: Study, metric: str, *, adjust: str | None = None, alpha: float | None = None,
                         **_: Any) -> list[dict[str, Any]]:
    """Time to target of each arm against its reference: log-rank (the outcome, Holm within the family) and Fisher."""
    st = study.settings
    alpha = st.alpha if alpha is None else alpha
    comps = [stats.compare_censored(arm, *_to_target(study, arm, metric), ref, *_to_target(study, ref, metric), metric=metric)
             for arm, ref in references(study)]
    adj = stats.adjust([c.p for c in comps], adjust or st.adjust)
    rows = []
    from dataclasses import replace

    for c, pa in zip(comps, adj):
        out = stats.outcome(float(pa), math.nan, c.better, alpha)
        c = replace(c, p_adjusted=float(pa), outcome=out)
        c = replace(c, verdict=stats.censored_verdict(c, alpha))
        rows.append({**c.to_dict(), "kind": "censored", "margin": None, "margin_raw": None,
                     "significant": bool(math.isfinite(pa) and pa < alpha), "adjust": adjust or st.adjust, "family": len(comps)})
    return rows


def pareto_metric(study: Study) -> str | None:
    """The score of the Pareto front: the study's metric when higher is better, else its accuracy (a loss is no score)."""
    return study.metric if not lower_is_better(study.metric) else accuracy_metric(study)


def pareto_points(study: Study, cost: str) -> dict[str, Any]:
    """Trials on the front of the score (:func:`pareto_metric`, max) against ``cost`` (min)."""
    done = study.complete
    m = pareto_metric(study) or study.metric
    score = [_num(t.get(m)) for t in done]
    c = [_num(t.get(cost)) for t in done]
    idx = stats.pareto_front(score, c)
    return {"cost": cost, "metric": m, "front": [{"number": done[i].get("number"), "arm": done[i]["arm"], "seed": done[i].get("seed"),
                                                  m: score[i], cost: c[i]} for i in idx]}


def curve_bands(study: Study, metric: str) -> tuple[str, dict[str, tuple]]:
    """Per arm the mean and std over seeds of a logged curve at each epoch (or step), with the seed count."""
    arm_of = {t.get("number"): t["arm"] for t in study.trials if t["state"] in ("COMPLETE", "PRUNED")}
    rows = [r for r in study.curves
            if r.get("metric") == metric and r.get("trial") in arm_of and math.isfinite(_num(r.get("value")))]
    epochs = {r.get("epoch") for r in rows}
    xkey = "epoch" if len(epochs - {None}) > 1 and None not in epochs else "step"
    per: dict[str, dict[float, dict[Any, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        x = _num(r.get(xkey))
        if x == x:
            per[arm_of[r["trial"]]][x][r["trial"]].append(float(r["value"]))
    bands = {}
    for arm in study.arms:
        if arm not in per:
            continue
        xs = sorted(per[arm])
        # Average within a trial first (several logs at one x), then across seeds.
        vals = [[float(np.mean(v)) for v in per[arm][x].values()] for x in xs]
        mean = np.array([np.mean(v) for v in vals])
        std = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals])
        bands[arm] = (np.array(xs), mean, std, np.array([len(v) for v in vals]))
    return xkey, bands


def _pairs(study: Study, arm: str, base: str, err: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """Errors of the same sampled architecture in ``arm`` and ``base``, matched by the ``pair`` column (None without one)."""
    if not any(t.get("pair") not in (None, "") for t in study.complete):
        return None
    def by_pair(a: str) -> dict[Any, float]:
        out: dict[Any, list[float]] = defaultdict(list)
        for t, e in zip([t for t in study.complete if t["arm"] == a], err[a]):
            if t.get("pair") not in (None, "") and math.isfinite(e):
                out[t["pair"]].append(float(e))
        return {k: float(np.mean(v)) for k, v in out.items()}
    pa, pb = by_pair(arm), by_pair(base)
    keys = sorted(set(pa) & set(pb), key=str)
    return np.array([pa[k] for k in keys]), np.array([pb[k] for k in keys])


def design_space(study: Study, *, bins: int = 10, resamples: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Error EDFs of each population (arm), plain and complexity-normalised, as Radosavovic et al. (2019) compare them.

    Per population: n, mean error with a bootstrap interval, min and median, the half-width of its simultaneous
    95% DKW band. Against the baseline: the KS statistic with scipy's p and a permutation p; per complexity
    measure the normalised KS (weights recomputed for every relabelling in its permutation p) and the normalised
    mean difference with a bootstrap interval whose weights are recomputed in every resample; with a ``pair``
    column, the paired differences (sign-flip permutation test, Wilcoxon). The outcome reads the permutation p
    (the sign-flip p when paired), Holm-adjusted across the populations.
    """
    st = study.settings
    resamples = resamples or st.resamples
    scale, unit = metric_format(study)
    higher = not lower_is_better(study.metric)
    err = {a: ((1.0 if scale == 100 else 0.0) - study.values(a)) * scale if higher else study.values(a) * scale for a in study.arms}
    err_name = f"error ({'%' if scale == 100 else study.metric})" if higher else study.metric
    measures = [m for m in ("flops", "params") if study.has(m)]
    comp = {m: {a: study.column(m, a) for a in study.arms} for m in measures}
    populations = []
    for a in study.arms:
        e = err[a][np.isfinite(err[a])]
        lo, hi = stats.bootstrap_ci(e, resamples=resamples, seed=seed)
        populations.append({"arm": a, "n": len(e), "mean_error": _mean(e), "mean_error_ci": [lo, hi],
                            "min_error": float(e.min()) if len(e) else math.nan, "median_error": _median(e),
                            "dkw_epsilon": stats.dkw_epsilon(len(e)) if len(e) else math.nan})
    tests = []
    base = study.baseline
    margin = margin_of(study, study.metric)
    for a in study.arms:
        if a == base or base is None:
            continue
        row: dict[str, Any] = {"arm": a, "baseline": base, "ks": stats.ks_test(err[a], err[base]).__dict__,
                               "ks_permutation_p": stats.ks_permutation(err[a], err[base], resamples=resamples, seed=seed),
                               "mean_diff": _mean(err[a]) - _mean(err[base]),
                               "mean_diff_ci": list(stats.bootstrap_diff_ci(err[a], err[base], resamples=resamples, seed=seed))}
        for m in measures:
            wa, wb = stats.complexity_weights([comp[m][a], comp[m][base]], bins=bins)
            ks = stats.ks_test(err[a], err[base], wa, wb).__dict__
            ks["permutation_p"] = (stats.ks_permutation(err[a], err[base], comp[m][a], comp[m][base], bins=bins,
                                                        resamples=min(resamples, 1000), seed=seed)
                                   if wa.sum() > 0 and wb.sum() > 0 else math.nan)
            row[f"ks_normalised_{m}"] = ks
            est, lo, hi = stats.normalised_mean_diff_ci(err[a], err[base], comp[m][a], comp[m][base], bins=bins,
                                                        resamples=min(resamples, 1000), seed=seed)
            row[f"mean_diff_normalised_{m}"] = est
            row[f"mean_diff_normalised_{m}_ci"] = [lo, hi]
        pairs = _pairs(study, a, base, err)
        if pairs is not None:
            row["paired"] = stats.paired_test(*pairs, resamples=resamples, seed=seed).to_dict()
        row["p"] = row["paired"]["sign_flip_p"] if pairs is not None and row["paired"]["pairs"] >= 2 else row["ks_permutation_p"]
        row["p_test"] = "paired sign-flip permutation" if pairs is not None and row["paired"]["pairs"] >= 2 else "KS permutation"
        eq = stats.tost(err[a], err[base], margin) if margin is not None else None
        row["margin"] = margin
        row["equivalence"] = None if eq is None else asdict(eq)
        tests.append(row)
    adj = stats.adjust([t["p"] for t in tests], st.adjust)
    eq_adj = stats.adjust([t["equivalence"]["p"] if t["equivalence"] else math.nan for t in tests], st.adjust)
    for t, pa, ea in zip(tests, adj, eq_adj):
        d = t["paired"]["mean_diff"] if "paired" in t and t["paired"]["pairs"] >= 2 else t["mean_diff"]
        better = None if not math.isfinite(d) or d == 0 else bool(d < 0)  # lower error is better
        t["p_adjusted"] = float(pa)
        t["adjust"] = st.adjust
        t["outcome"] = stats.outcome(float(pa), float(ea), better, st.alpha)
        t["verdict"] = _edf_verdict(t, measures, unit or "")
    return {"error": err_name, "measures": measures, "bins": bins, "populations": populations, "tests": tests, "_err": err,
            "_comp": comp}


def _edf_verdict(row: dict, measures: list[str], unit: str) -> str:
    ks = row["ks"]
    u = f" {unit}" if unit else ""
    lo, hi = row["mean_diff_ci"]
    norm = [(m, row[f"ks_normalised_{m}"]) for m in measures]
    out = row["outcome"]
    d = row["mean_diff"]
    if out in ("better", "worse"):
        head = f"{row['arm']}'s errors are {'lower' if out == 'better' else 'higher'} than {row['baseline']}'s — {out}"
    elif out == "equivalent":
        head = f"{row['arm']}'s mean error is within ±{row['margin']:.1f}{u} of {row['baseline']}'s — equivalent"
    else:
        head = f"no difference shown between the errors of {row['arm']} and {row['baseline']} — inconclusive"
    parts = [f"{head} ({row['p_test']} {stats.format_p(row['p'])}, Holm-adjusted {stats.format_p_bare(row['p_adjusted'])})",
             f"KS D={ks['statistic']:.2f}, {stats.format_p(ks['p'])}, permutation {stats.format_p(row['ks_permutation_p'])}, "
             f"n={int(ks['n_a'])} vs {int(ks['n_b'])}"]
    for m, k in norm:
        if math.isfinite(k["statistic"]):
            parts.append(f"normalised by {m}: D={k['statistic']:.2f}, permutation {stats.format_p(k['permutation_p'])}")
        else:
            parts.append(f"normalised by {m}: not possible, the populations share no {m} range")
    if math.isfinite(d):
        word = "lower" if d < 0 else "higher"
        lo, hi = sorted((math.copysign(1, d) * lo, math.copysign(1, d) * hi))
        parts.append(f"mean error {word} by {abs(d):.1f}{u} (95% bootstrap CI {lo:.1f}–{hi:.1f})")
    if "paired" in row and row["paired"]["pairs"] >= 2:
        pr = row["paired"]
        parts.append(f"{pr['pairs']} pairs: mean paired difference {pr['mean_diff']:+.2f}{u} (95% CI {pr['ci_low']:.2f} to "
                     f"{pr['ci_high']:.2f}), sign-flip {stats.format_p(pr['sign_flip_p'])}, Wilcoxon {stats.format_p(pr['wilcoxon_p'])}")
    return "; ".join(parts)


def configure(study: Study, **overrides: Any) -> Study:
    """Apply command-line overrides (``alpha``, ``test``, ``adjust``, ``margin``; ``None`` keeps config.yaml's) to the study."""
    from dataclasses import replace

    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        study.settings = replace(study.settings, **given).check()
    return study


def outcome_plan(study: Study) -> dict[str, Any]:
    """What the report tests and how: the primary and secondary outcomes, their margins and families, the claim."""
    o = study.outcomes
    secondary = [m for m in o.secondary if m != study.metric]
    stated = bool(o.primary or o.secondary)
    return {"stated": stated, "primary": study.metric, "primary_stated": o.primary, "secondary": secondary,
            "margins": {m: margin_of(study, m) for m in [study.metric, *secondary]},
            "claimed": o.claimed, "source": o.source,
            "families": "each outcome is its own family" + ("" if study.settings.adjust == "none" else
                                                             ", Holm-adjusted over its comparisons")}


def build_report(study: Study, *, alpha: float | None = None, test: str | None = None, adjust: str | None = None,
                 margin: float | None = None) -> dict[str, Any]:
    """Everything the report says about one study, as plain data (numbers, not prose, except verdicts)."""
    configure(study, alpha=alpha, test=test, adjust=adjust, margin=margin)
    st = study.settings
    scale, unit = metric_format(study)
    compared = [t for b in study.budgets for t in study.by_budget[b]] if study.budgets else study.trials
    everything = [*study.tuning, *compared]  # every trial: tuning, and every budget's
    counts = {s: sum(t["state"] == s for t in everything) for s in STATES}
    # A search's arms are a sampled population and the networks placed beside it: the front is the result, not tests.
    search = study.kind == "search"
    plan = outcome_plan(study)
    notes = list(study.notes) + (["search study: arms are not tested against a baseline; see the Pareto front"] if search else [])
    env = environment.report_block(study.manifest, everything)  # what the numbers were made with
    notes += [n for n in [environment.note(env)] if n]
    if _is_proportion(study):
        n_eval = study.eval_size(study.metric)
        split = "test" if study.metric.startswith("test/") else "validation"
        source = study.test_size_source if split == "test" else "config.yaml data.val_fraction of each class"
        notes.append(f"{split}-set size: {n_eval} images ({source}); the intervals of each arm count its binomial sampling noise"
                     if n_eval else
                     f"{split}-set size unknown (not in study.json, results.csv or config.yaml's data): the intervals count the "
                     f"seeds' spread only, not the finite {split} set's sampling noise")
    secondary: dict[str, list[dict[str, Any]]] = {}
    if not search:
        for m in plan["secondary"]:
            if study.available(m):
                secondary[m] = comparison_rows(study, m)
            else:
                notes.append(f"secondary outcome {m!r} has no values in this study: not analysed")
        for m in SECONDARY:  # time to target, when measured, even where the experiment did not name it
            if m not in secondary and m != study.metric and study.available(m):
                secondary[m] = comparison_rows(study, m)
    report: dict[str, Any] = {
        "study": study.name, "experiment": study.experiment, "path": str(study.path), "kind": study.kind,
        "metric": study.metric, "higher_is_better": not lower_is_better(study.metric), "scale": scale, "unit": unit,
        "baseline": study.baseline, "baseline_source": study.baseline_source,
        "reference": "previous rung" if study.kind == "ladder" else "baseline",
        "test": st.test, "alpha": st.alpha, "adjust": st.adjust, "power": st.power, "outcomes": plan,
        "test_size": study.test_size, "test_size_source": study.test_size_source, "val_size": study.val_size,
        "classes": study.classes,
        "trained_rule": trained_rule(study),
        "trials": {"total": len(everything), **{k: v for k, v in counts.items() if v},
                   **({"tuning": len(study.tuning)} if study.tuning else {}),
                   **({"compared": len(study.trials)} if len(everything) != len(study.trials) else {})},
        "arms": arm_table(study),
        "comparisons": [] if search else comparison_rows(study),
        "secondary": secondary,
        "failures": [{"number": t.get("number"), "arm": t["arm"], "seed": t.get("seed"), "reason": t.get("fail_reason") or ""}
                     for t in study.trials if t["state"] == "FAIL"],
        "notes": notes,
        "environment": env,
    }
    if study.tuning:
        report["tuning"] = tuning_table(study)
    if len(study.budgets) > 1:
        report["budgets"] = budget_table(study)
        report["budget"] = study.budgets[-1]
    report["pareto"] = {m: pareto_points(study, m) for m in ("flops", "params") if study.has(m) and pareto_metric(study)}
    report["pareto_metric"] = pareto_metric(study)
    report["pareto_scale"] = metric_format(study, pareto_metric(study))[0] if pareto_metric(study) else 1.0
    if study.kind == "design_space":
        ds = design_space(study)
        report["design_space"] = {k: v for k, v in ds.items() if not k.startswith("_")}
        report["_ds"] = ds  # the raw errors and complexities, for the figures (not in the JSON)
    if not study.available(study.metric):
        report["notes"].append(f"no finished trial has a value of {study.metric!r}")
    return report


def to_json(report: dict[str, Any]) -> str:
    """The report as strict JSON (NaN -> null)."""
    return json.dumps(to_finite({k: v for k, v in report.items() if not k.startswith("_")}), indent=2)


# ---------------------------------------------------------------------------------------------------
# Figures, diagrams and the files of a report.


def make_figures(study: Study, report: dict[str, Any], out: Path) -> dict[str, list[str]]:
    """Draw the study's figures into ``out``; returns ``{name: [file names]}`` (PNG and SVG)."""
    from nasplay.report import figures

    made: dict[str, list[Path]] = {}
    scale = report["scale"]
    ylabel = f"{study.metric} (%)" if scale == 100 else study.metric
    # The primary outcome's differences; a censored (time-to-target) primary has none to draw: the first secondary that has.
    families = [(study.metric, report["comparisons"]), *report.get("secondary", {}).items()]
    shown, comps = next(((m, cs) for m, cs in families if cs and cs[0].get("kind", "means") == "means"), (study.metric, []))
    if comps:
        es, eu = metric_format(study, shown)
        rows = [(c["arm"], c["welch"]["diff"] * es, c["welch"]["ci_low"] * es, c["welch"]["ci_high"] * es,
                 c["outcome"] in ("better", "worse"), study.arms.index(c["arm"])) for c in comps]
        ref = "the previous rung" if study.kind == "ladder" else study.baseline
        made["effects"] = figures.effects(rows, out, xlabel=f"Δ {shown}" + (f" ({eu})" if eu else ""), baseline=str(ref))
    if report.get("budgets"):
        es, eu = metric_format(study)
        series: dict[str, list[list[float]]] = {}
        for b in report["budgets"]:
            for c in b["comparisons"]:
                if c.get("kind", "means") == "means":
                    s_ = series.setdefault(c["arm"], [[], [], [], []])
                    for lst, v in zip(s_, (b["budget"], c["welch"]["diff"] * es, c["welch"]["ci_low"] * es, c["welch"]["ci_high"] * es)):
                        lst.append(v)
        if series:
            made["budgets"] = figures.effect_vs_budget({k: tuple(v) for k, v in series.items()}, out,
                                                       xlabel="budget (x trainer.max_epochs)",
                                                       ylabel=f"Δ {study.metric}" + (f" ({eu})" if eu else ""),
                                                       baseline=str(study.baseline))
    tuning = report.get("tuning") or {}
    if len(tuning.get("settings", [])) == 1:
        name = tuning["settings"][0]
        curves = {arm: ([_num(r["setting"][name]) for r in d["curve"]], [r["mean"] for r in d["curve"]], _num(d["chosen"].get(name)))
                  for arm, d in tuning["arms"].items()}
        made["tuning"] = figures.tuning_curves(curves, out, xlabel=name, ylabel="validation objective (mean over tuning seeds)")
    panels = []
    curve_metrics = list(dict.fromkeys(r.get("metric") for r in study.curves))
    # Curves over training: validation accuracy and training loss (test/* is one final value, not a curve).
    extra = () if study.metric.startswith("test/") or study.metric == "val/acc_best" else (study.metric,)
    wanted = [m for m in ("val/acc", *extra, "train/loss", "val/loss") if m in curve_metrics]
    for m in list(dict.fromkeys(wanted))[:3]:
        xkey, bands = curve_bands(study, m)
        if bands:
            if "acc" in m and all(np.nanmax(b[1]) <= 1 for b in bands.values()):
                bands = {a: (x, mu * 100, sd * 100, n) for a, (x, mu, sd, n) in bands.items()}
                m = f"{m} (%)"
            panels.append((m, xkey, bands))
    if panels:
        made["learning_curves"] = figures.learning_curves(panels, out, title=f"{study.experiment}: mean ± std over seeds")
    elif not study.curves:
        report["notes"].append("no curves.csv: learning curves left out")
    cost = "flops" if "flops" in report["pareto"] else "params" if "params" in report["pareto"] else None
    if cost:
        pm, ps = report["pareto_metric"], report["pareto_scale"]
        ylabel = f"{pm} (%)" if ps == 100 else pm
        points = {a: (study.column(cost, a), study.values(a, pm) * ps) for a in study.arms}
        if study.kind == "search":  # the sampled networks as one series; networks placed beside them each on their own
            sampled = [a for a in study.arms if not a.startswith("classic ")]
            points = {f"searched ({len(sampled)})": (np.concatenate([study.column(cost, a) for a in sampled] or [np.array([])]),
                                                     np.concatenate([study.values(a, pm) for a in sampled] or [np.array([])]) * ps),
                      **{a: points[a] for a in study.arms if a.startswith("classic ")}}
        front = report["pareto"][cost]["front"]
        made["pareto"] = figures.pareto(points, ([q[cost] for q in front], [q[pm] * ps for q in front]), out,
                                        xlabel=cost if cost == "params" else "FLOPs", ylabel=ylabel,
                                        title=f"{study.experiment}: {ylabel} against {cost}")
    ds = report.get("_ds")
    if ds:
        err = ds["_err"]
        every = np.concatenate([e[np.isfinite(e)] for e in err.values()] or [np.array([0.0])])
        span = (float(every.min()), float(every.max())) if len(every) else (0.0, 1.0)

        def curves(weights: dict[str, np.ndarray] | None) -> dict[str, tuple]:
            out_ = {}
            for a in study.arms:
                w = None if weights is None else weights[a]
                xs, F = stats.edf(err[a], w)
                grid = np.unique(np.r_[xs, np.linspace(*span, 200)]) if len(xs) else xs  # the band spans the whole axis
                lo, hi, _ = stats.dkw_band(err[a], grid, weights=w)  # simultaneous 95% (Kish n when weighted)
                out_[a] = (xs, F, grid, lo, hi)
            return out_
        edf_panels = [("plain", curves(None))]
        if study.baseline is not None:
            for m in ds["measures"]:
                # Weights matched pairwise against the baseline; the baseline's own weights from the first pair.
                weights: dict[str, np.ndarray] = {}
                for a in study.arms:
                    if a != study.baseline:
                        wa, wb = stats.complexity_weights([ds["_comp"][m][a], ds["_comp"][m][study.baseline]], bins=ds["bins"])
                        weights[a] = wa
                        weights.setdefault(study.baseline, wb)
                if len(weights) == len(study.arms) and all(w.sum() > 0 for w in weights.values()):
                    edf_panels.append((f"normalised by {m}", curves(weights)))
        made["edf"] = figures.edfs(edf_panels, out, xlabel=ds["error"],
                                   title=f"{study.experiment}: error EDFs (bands: simultaneous 95% DKW)")
    return {k: [p.name for p in v] for k, v in made.items()}


def arm_genome(study: Study, arm: str) -> tuple[Any, str]:
    """An arm's genome and where it came from: ``genomes/<genome_hash>.yaml`` (what the runner trained), else
    the manifest's arch with the arm's knobs applied (not adapted to the data); ``(None, "")`` if unknown."""
    from nasplay.space.genome import Genome

    rows = [t for t in study.trials if t["arm"] == arm]
    for t in rows:
        h = str(t.get("genome_hash") or "")
        if h and (study.path / "genomes" / f"{h}.yaml").exists():
            return Genome.from_yaml((study.path / "genomes" / f"{h}.yaml").read_text()), f"genomes/{h}.yaml"
    entry = next((a for a in study.manifest.arms if a.name == arm), None) if study.manifest else None
    if entry is None:
        return None, ""
    from nasplay.space.load import load_genome

    genome = load_genome(entry.arch, {k: v for k, v in entry.knobs.items() if k not in ("keep", "tol")})
    shown = ", ".join(f"{k}={v}" for k, v in entry.knobs.items()) or "no knobs"
    return genome, f"{entry.arch} with {shown} ({MANIFEST_FILE}; not adapted to the data)"


def make_diagrams(study: Study, out: Path) -> dict[str, dict[str, str]]:
    """Per arm an architecture diagram (SVG and PNG) from nasplay.report.diagram, or the reason there is none.

    Only for ablations and ladders: an arm of a design-space or search study is a population of networks.
    """
    if study.kind not in ("ablation", "ladder"):
        return {}
    try:
        from nasplay.report.diagram import layout_genome
        from nasplay.report.draw.render import render, save
    except ImportError:
        return {}
    result: dict[str, dict[str, str]] = {}
    drawn: dict[str, str] = {}  # genome hash -> file stem: arms with the same network share one drawing
    for arm in study.arms[:12]:
        try:
            genome, source = arm_genome(study, arm)
            if genome is None:
                continue
            stem = drawn.get(genome.hash) or "diagram_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in arm)
            if genome.hash not in drawn:
                fig = render(layout_genome(genome))  # laid out and drawn once, saved in both formats
                for ext in ("svg", "png"):
                    save(fig, out / f"{stem}.{ext}")
                drawn[genome.hash] = stem
            result[arm] = {"svg": f"{stem}.svg", "png": f"{stem}.png", "source": source, "genome_hash": genome.hash}
        except Exception as e:  # noqa: BLE001 - a diagram must never sink the report
            result[arm] = {"error": f"{type(e).__name__}: {e}"}
    return result


def write_report(study_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, metric: str | None = None,
                 baseline: str | None = None, alpha: float | None = None, test: str | None = None, adjust: str | None = None,
                 margin: float | None = None, figures: bool = True, diagrams: bool = True, wandb: bool = False) -> Path:
    """Build a study's report and write ``report.md``, ``report.json`` and the figures; returns report.md's path.

    ``alpha``, ``test``, ``adjust`` and ``margin`` override the study's ``report.*`` settings (config.yaml).
    """
    path, _ = write_study_report(study_dir, out, metric=metric, baseline=baseline, alpha=alpha, test=test, adjust=adjust,
                                 margin=margin, figures=figures, diagrams=diagrams, wandb=wandb)
    return path


def write_study_report(study_dir, out=None, *, metric=None, baseline=None, alpha=None, test=None, adjust=None, margin=None,
                       figures=True, diagrams=True, wandb=False) -> tuple[Path, dict[str, Any]]:
    study = load_study(study_dir, metric=metric, baseline=baseline)
    out = Path(out) if out is not None else study.path
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(study, alpha=alpha, test=test, adjust=adjust, margin=margin)
    if figures:
        report["figures"] = make_figures(study, report, out)
    if diagrams:
        report["diagrams"] = make_diagrams(study, out)
    from nasplay.report import markdown

    md = out / "report.md"
    report["report_path"] = str(md)
    md.write_text(markdown.render(report))
    (out / "report.json").write_text(to_json(report))
    if wandb:
        report["wandb_id"] = log_report_to_wandb(study.path, report, out=out)
    return md, report


def compare_studies(study_dirs: list[str | os.PathLike], out: str | os.PathLike | None = None, **kwargs) -> tuple[Path, list[dict]]:
    """Write each study's report, then ``comparison.md`` side by side (in ``out``, else the studies' common parent)."""
    from nasplay.report import markdown

    reports = []
    for i, d in enumerate(study_dirs):
        own = None if out is None else Path(out) / f"{i:02d}_{Path(d).parent.name}_{Path(d).name}"
        reports.append(write_study_report(d, own, **kwargs)[1])
    target = Path(out) if out is not None else Path(os.path.commonpath([Path(d).resolve() for d in study_dirs]))
    target.mkdir(parents=True, exist_ok=True)
    path = target / "comparison.md"
    path.write_text(markdown.render_comparison(reports))
    (target / "comparison.json").write_text(json.dumps(to_finite({"studies": [{k: v for k, v in r.items() if not k.startswith("_")}
                                                                              for r in reports]}), indent=2))
    return path, reports


def log_report_to_wandb(study_dir: str | os.PathLike, report: dict[str, Any], *, out: str | os.PathLike | None = None,
                        project: str = "nasplay", mode: str | None = None, entity: str | None = None,
                        tags: list[str] | tuple[str, ...] = ()) -> str:
    """Log a report as a W&B run of its own (``job_type="report"``, offline unless ``mode``/WANDB_MODE say otherwise).

    Tables of the arms and comparisons, the PNG figures as images and each arm's mean in the summary.
    Returns the run id; the run lives under ``<study_dir>/wandb``.
    """
    import wandb as wb

    study_dir = Path(study_dir)
    fig_dir = Path(out) if out is not None else study_dir
    run = wb.init(project=project, entity=entity, group=report["study"], job_type="report", name=f"report-{report['study']}",
                  dir=str(study_dir), mode=mode or os.environ.get("WANDB_MODE", "offline"), reinit="create_new",
                  tags=list(dict.fromkeys(["report", report["experiment"], *tags])),
                  config={"experiment": report["experiment"], "study": report["study"], "metric": report["metric"],
                          "baseline": report["baseline"], "test": report["test"], "alpha": report["alpha"]})
    try:
        arm_cols = ["arm", "n", "mean", "std", "ci_low", "ci_high", "params", "flops", "wall_time"]
        arms = wb.Table(columns=arm_cols, data=[[to_finite(a.get(c)) for c in arm_cols] for a in report["arms"]])
        comp_cols = ["arm", "baseline", "diff", "ci_low", "ci_high", "g", "welch_p", "permutation_p", "p_adjusted", "outcome",
                     "significant", "verdict"]
        comps = wb.Table(columns=comp_cols, data=[to_finite([c["arm"], c["baseline"], c["welch"]["diff"], c["welch"]["ci_low"],
                                                           c["welch"]["ci_high"], c["effect"]["g"], c["welch"]["p"],
                                                           c["permutation"]["p"], c["p_adjusted"], c["outcome"], c["significant"],
                                                           c["verdict"]])
                                                  for c in report["comparisons"] if c.get("kind", "means") == "means"])
        logged: dict[str, Any] = {"report/arms": arms, "report/comparisons": comps}
        for name, files in report.get("figures", {}).items():
            png = next((f for f in files if f.endswith(".png")), None)
            if png:
                logged[f"figures/{name}"] = wb.Image(str(fig_dir / png))
        run.log(logged)
        for a in report["arms"]:
            run.summary[f"{report['metric']}/{a['arm']}/mean"] = to_finite(a["mean"])
            run.summary[f"{report['metric']}/{a['arm']}/n"] = a["n"]
        for c in report["comparisons"]:
            run.summary[f"verdict/{c['arm']}"] = c["verdict"]
        md = fig_dir / "report.md"
        if md.exists():
            # A copy in the run's files directory is uploaded with the run (a symlink would dangle if the study moved).
            shutil.copyfile(md, Path(run.dir) / "report.md")
        return run.id
    finally:
        run.finish()
