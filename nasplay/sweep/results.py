"""A study's result files and its closing summary.

``results.csv`` — one row per trial of the study, rewritten from the Optuna storage after every trial
(so it always agrees with the storage), ordered by trial number. Columns:

- ``number`` (Optuna's trial number), ``state`` (COMPLETE, PRUNED, FAIL, RUNNING, WAITING),
- ``arm`` (e.g. ``skip=none``; ``BASE knob=value`` when an experiment has several bases), ``arch``
  (the zoo network), one column per knob (``skip``, ``width``, ...; ``knob.NAME`` where a knob's name
  would clash with another column), ``seed``; in a tuned experiment ``stage`` (``tune`` or ``final``) and
  ``tuned.SETTING`` (a final trial's value chosen by its arm's tuning; a tuning trial's value is its
  ``param.SETTING``); with ``experiment.budgets``, ``budget`` (a multiple of ``trainer.max_epochs``); with
  ``experiment.pairs``, ``pair`` (the sampled architecture, trained under every arm),
- ``value`` (the objective; ``value_0``, ``value_1``, ... for several objectives), the metrics ``fit``
  returned (``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``val/acc_best``, ``test/loss``,
  ``test/acc``, ``imgs_per_sec``, ``train_time``, ``wall_time``, ``epochs``, ``steps``,
  ``epochs_to_target``, ``steps_to_target``, ...), then for sampled parameters ``param.NAME``,
- ``params``, ``flops``, ``genome_hash``, ``duration_s`` (the whole trial, overheads included),
  ``datetime_start``, ``datetime_complete``, ``wandb_id`` (the W&B run id, or ``csv/trial_N``),
  ``environment`` (the fingerprint of the environment the trial ran in: versions, commit, hardware,
  threads; each is described in study.json's ``environments``, see :mod:`nasplay.environment`),
  ``pruned_epoch``, ``fail_reason``.

Empty cells mean "not measured" (a pruned or failed trial has no test accuracy).

``curves.csv`` — the learning curves: ``trial, epoch, step, metric, value``, one row per logged value
(``metric`` is a Lightning key such as ``train/loss`` or ``val/acc``; ``step`` is the global step, -1
where none). Rows are appended when a trial ends (pruned and failed trials included).

The genome of each arm is in ``genomes/<genome_hash>.yaml``; the resolved config in ``config.yaml``.
"""

from __future__ import annotations

import csv
import fcntl
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from nasplay.sweep.faults import writing

ArrayLike = Sequence[float] | np.ndarray
RESULTS = "results.csv"
CURVES = "curves.csv"
CURVE_COLUMNS = ("trial", "epoch", "step", "metric", "value")
HEAD = ("number", "state", "arm", "arch")
TAIL = ("params", "flops", "genome_hash", "duration_s", "datetime_start", "datetime_complete", "wandb_id",
        "environment", "pruned_epoch", "fail_reason")


def trial_rows(trials: Sequence[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of ``results.csv`` for Optuna ``FrozenTrial`` s."""
    knob_names: list[str] = []
    metric_names: list[str] = []
    param_names: list[str] = []
    tuned_names: list[str] = []
    n_values = 0
    for t in trials:
        ua = t.user_attrs
        tuned_names += [k for k in ua.get("tuned", {}) if k not in tuned_names]
        knob_names += [k for k in ua.get("knobs", {}) if k not in knob_names]
        metric_names += [k for k in ua.get("metrics", {}) if k not in metric_names and k not in ("params", "flops")]
        param_names += [k for k in t.params if k not in param_names and k not in ("arm", "seed", "stage", "budget", "pair")]
        n_values = max(n_values, len(t.values or ()))
    stages = any("stage" in t.user_attrs for t in trials)
    budgets = any("budget" in t.user_attrs for t in trials)
    pairs = any("pair" in t.user_attrs for t in trials)
    design = [*(["stage"] if stages else []), *(["budget"] if budgets else []), *(["pair"] if pairs else []),
              *(f"tuned.{k}" for k in tuned_names)]
    fixed = set(HEAD) | set(TAIL) | {"seed", "value"} | set(metric_names) | set(design)
    knob_cols = {k: (f"knob.{k}" if k in fixed else k) for k in knob_names}
    value_cols = ["value"] if n_values <= 1 else [f"value_{i}" for i in range(n_values)]
    columns = [*HEAD, *knob_cols.values(), "seed", *design, *value_cols, *metric_names, *(f"param.{p}" for p in param_names), *TAIL]

    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        ua = t.user_attrs
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "arm": ua.get("arm", ""), "arch": ua.get("arch", ""),
                               "seed": ua.get("seed", "")}
        for k, col in knob_cols.items():
            row[col] = _cell(ua.get("knobs", {}).get(k))
        row.update(stage=ua.get("stage", ""), budget=ua.get("budget", ""), pair=ua.get("pair", ""))
        row.update({f"tuned.{k}": v for k, v in ua.get("tuned", {}).items()})
        for col, v in zip(value_cols, t.values or ()):
            row[col] = v
        row.update({k: v for k, v in ua.get("metrics", {}).items() if k in metric_names})
        row.update({f"param.{p}": t.params[p] for p in param_names if p in t.params})
        row.update(params=ua.get("params", ""), flops=ua.get("flops", ""), genome_hash=ua.get("genome_hash", ""),
                   duration_s=ua.get("duration_s", ""), wandb_id=ua.get("wandb_id", ""), environment=ua.get("environment", ""),
                   pruned_epoch=ua.get("pruned_epoch", ""), fail_reason=ua.get("fail_reason", ""),
                   datetime_start=_time(t.datetime_start), datetime_complete=_time(t.datetime_complete))
        rows.append({c: _cell(row.get(c)) for c in columns})
    return columns, rows


def write_results(study_dir: Path, trials: Sequence[Any]) -> Path:
    """Rewrite ``results.csv`` from the storage's trials (atomically: readers never see half a file)."""
    columns, rows = trial_rows(trials)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path = Path(study_dir) / RESULTS
    tmp = path.with_name(f".{RESULTS}.{os.getpid()}")
    with writing(path, "the study's results table"):  # a full disk: one line naming it; the storage still has all
        try:
            tmp.write_text(buf.getvalue())
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
    return path


def append_curves(study_dir: Path, trial: int, rows: Iterable[tuple[int, int, str, float]]) -> None:
    """Append a trial's ``(epoch, step, metric, value)`` rows to ``curves.csv`` (locked: workers share it).

    All or nothing: rows cut short by a full disk are taken back, and :class:`nasplay.sweep.faults.DiskFull` says so."""
    path = Path(study_dir) / CURVES
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows((trial, e, s, m, _cell(v)) for e, s, m, v in rows)
    with writing(path, "the study's learning curves"), open(path, "ab", buffering=0) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            size = f.seek(0, os.SEEK_END)
            head = io.StringIO()
            if size == 0:
                csv.writer(head, lineterminator="\n").writerow(CURVE_COLUMNS)
            data = memoryview((head.getvalue() + buf.getvalue()).encode())
            try:
                while data:
                    data = data[f.write(data):]
            except OSError:
                os.ftruncate(f.fileno(), size)
                raise
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return v


def _time(t: Any) -> str:
    return t.isoformat(timespec="seconds") if t is not None else ""


# --- the closing summary (and the report's summary over seeds: nasplay.report.stats uses these) -----------


def finite(x: ArrayLike) -> np.ndarray:
    """Values as a float array with NaN / None dropped (failed or missing seeds)."""
    a = np.asarray([np.nan if v is None else v for v in x], dtype=float) if not isinstance(x, np.ndarray) else x.astype(float)
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Summary:
    """Mean, std and t-interval of one arm's values over seeds."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    def to_dict(self) -> dict:
        return asdict(self)


def t_quantile(confidence: float, df: float) -> float:
    """Two-sided Student-t critical value: ``t`` with ``P(|T| <= t) = confidence``."""
    return float(sps.t.ppf(0.5 + confidence / 2, df))


def summarize(values: ArrayLike, confidence: float = 0.95) -> Summary:
    """Mean, sample std (ddof=1) and ``mean ± t·s/√n`` interval; ``nan`` where n is too small."""
    x = finite(values)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan, confidence)
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan, math.nan, confidence)
    std = float(x.std(ddof=1))
    sem = std / math.sqrt(n)
    h = t_quantile(confidence, n - 1) * sem
    return Summary(n, mean, std, sem, mean - h, mean + h, confidence)


def summary_rows(trials: Sequence[Any], arms: Sequence[str], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Per arm: trials by state, and the :func:`summarize` of each metric over its COMPLETE trials (seeds)."""
    out = []
    seen = list(arms) + [a for a in dict.fromkeys(t.user_attrs.get("arm", "") for t in trials) if a not in arms]
    for arm in seen:
        ts = [t for t in trials if t.user_attrs.get("arm", "") == arm]
        if not ts:
            continue
        done = [t for t in ts if t.state.name == "COMPLETE"]
        row: dict[str, Any] = {"arm": arm, "n": len(done), "pruned": sum(t.state.name == "PRUNED" for t in ts),
                               "failed": sum(t.state.name == "FAIL" for t in ts),
                               "params": ts[0].user_attrs.get("params"), "flops": ts[0].user_attrs.get("flops")}
        for m in metrics:
            row[m] = summarize([t.user_attrs.get("metrics", {}).get(m, math.nan) for t in done])
        row["wall_time"] = summarize([t.user_attrs.get("duration_s", math.nan) for t in done]).mean
        out.append(row)
    return out


def format_summary(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    """The summary as a plain-text table (accuracies in percent)."""
    def fmt(m: str, s: Summary) -> str:
        mean, half = s.mean, s.ci_high - s.mean
        scale = 100.0 if "acc" in m else 1.0
        if math.isnan(mean):
            return "-"
        return f"{mean * scale:.2f}" + ("" if math.isnan(half) else f" ± {half * scale:.2f}")

    cols = [f"{m}{' %' if 'acc' in m else ''} (95% CI)" for m in metrics]
    header = ["arm", "n", *cols, "params", "MFLOPs", "s/trial", "pruned", "failed"]
    table = [header]
    for r in rows:
        flops = r.get("flops")
        table.append([r["arm"], str(r["n"]), *[fmt(m, r[m]) for m in metrics],
                      f"{r['params']:,}" if isinstance(r.get("params"), int) else "-",
                      f"{flops / 1e6:.1f}" if isinstance(flops, (int, float)) else "-",
                      "-" if math.isnan(r["wall_time"]) else f"{r['wall_time']:.1f}", str(r["pruned"]), str(r["failed"])])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
