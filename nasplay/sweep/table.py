"""A tabulated subspace of the classics' space (issue 21, after NAS-Bench-201 / NATS-Bench): every architecture of
a few bases x the card's knobs, trained once per seed, so that searchers can be replayed on the table in seconds
(:mod:`nasplay.report.replay`).

:func:`enumerate_space` lists the subspace: for each base, every combination of the values it accepts
(:func:`nasplay.sweep.conditional.allowed`, each value alone) is resolved through the one door
(:func:`nasplay.complexity.resolve`); combinations the knobs refuse are kept as refusals (a searcher replayed on the
table is told they are infeasible, as the refusal-free ask tells it), and combinations that give the same network
are one architecture. :func:`table_from_study` turns the study that trained them (``scripts/build_table.py``) into the
table: per architecture its genome hash, arch, knobs, params, FLOPs and per seed the per-epoch validation accuracy,
the final test accuracy and the train time.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasplay.complexity import complexity, resolve
from nasplay.space.knobs.parse import format_value
from nasplay.sweep.conditional import allowed
from nasplay.sweep.space import choices

TABLE_VERSION = 1


@dataclass
class Subspace:
    """The enumerated subspace: its bases and knob values, the architectures and every combination's genome."""

    bases: list[str]
    knobs: dict[str, dict[str, list[Any]]]  # base -> knob -> values (as the sampler labels them)
    own: dict[str, dict[str, Any]]  # base -> its own knobs (width ...)
    combos: dict[str, str | None] = field(default_factory=dict)  # combo key -> genome hash (None: refused by the knobs)
    architectures: dict[str, dict[str, Any]] = field(default_factory=dict)  # hash -> {arch, knobs, key}

    def to_dict(self) -> dict[str, Any]:
        return {"bases": self.bases, "knobs": self.knobs, "own": self.own, "combos": self.combos,
                "architectures": self.architectures}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Subspace:
        return cls(list(d["bases"]), dict(d["knobs"]), dict(d.get("own", {})), dict(d["combos"]), dict(d["architectures"]))


def combo_key(arch: str, labels: dict[str, Any]) -> str:
    """The key of one combination: the base and each knob's label, in a stable order."""
    return json.dumps([arch, sorted((k, str(v)) for k, v in labels.items())])


def enumerate_space(c: Any, data_shape: tuple[int, int, int]) -> Subspace:
    """Every combination of every base's accepted knob values in config ``c``'s conditional space, resolved."""
    table = allowed(c, data_shape)
    sub = Subspace(list(table), {}, {})
    for base, entry in table.items():
        sub.own[base] = json.loads(json.dumps(entry["own"], default=str))
        specs = {k: list(v) for k, v in entry["knobs"].items() if isinstance(v, (list, tuple))}
        sub.knobs[base] = {k: choices(v)[0] for k, v in specs.items()}
        names = list(specs)
        for combo in itertools.product(*(specs[k] for k in names)):
            labels = {k: choices(specs[k])[0][specs[k].index(v)] for k, v in zip(names, combo)}
            knobs = {**entry["own"], **{k: v for k, v in zip(names, combo) if v != entry["defaults"].get(k)}}
            key = combo_key(base, labels)
            try:
                g = resolve(base, knobs, data_shape)
            except ValueError:
                sub.combos[key] = None
                continue
            sub.combos[key] = g.hash
            if g.hash not in sub.architectures:
                arm = " ".join([base, *(f"{k}={format_value(v)}" for k, v in knobs.items() if k not in entry["own"])])
                sub.architectures[g.hash] = {"arch": base, "knobs": json.loads(json.dumps(knobs, default=str)),
                                             "labels": labels, "arm": arm}
    return sub


def measure(sub: Subspace, data_shape: tuple[int, int, int]) -> None:
    """Params and FLOPs of every architecture (one image as it trains), in place."""
    for a in sub.architectures.values():
        g = resolve(a["arch"], a["knobs"], data_shape)
        cx = complexity(g, num_classes=g.classes)
        a["params"], a["flops"] = int(cx.params), int(cx.flops)


def table_from_study(study_dirs: str | Path | list[str | Path], sub: Subspace, meta: dict[str, Any],
                     prior: dict[str, Any] | None = None) -> dict[str, Any]:
    """The table: per architecture of ``sub`` its complexity and per seed what the studies measured (a missing seed is
    absent). ``prior`` is a table written before (the committed file): its results are kept, and where a study measured
    the same architecture and seed again, the later measurement (``completed``, when its trial finished) stands, so a
    build split across runs and across clones adds up. A study's row whose genome is not the architecture its arm names
    now (the subspace changed since it ran) is left out. ``meta`` (the command, the budget) is kept as it is."""
    dirs = [study_dirs] if isinstance(study_dirs, (str, Path)) else list(study_dirs)
    results: dict[str, dict[str, Any]] = {}
    for a in (prior or {}).get("architectures", []):
        if a["hash"] not in sub.architectures:
            raise ValueError(f"the earlier table holds architecture {a['hash']} ({a.get('arm')}), which the subspace no "
                             f"longer has: write the new table to a file of its own")
        if a.get("seeds"):
            results[a["hash"]] = dict(a["seeds"])
    by_arm = {a["arm"]: h for h, a in sub.architectures.items()}
    for d in dirs:
        for h, seed, r in _study_results(Path(d), by_arm):
            held = results.setdefault(h, {}).get(seed)
            if held is None or str(r.get("completed", "")) >= str(held.get("completed", "")):
                results[h][seed] = r
    archs = []
    for h, a in sub.architectures.items():
        archs.append({"hash": h, **{k: a[k] for k in ("arch", "arm", "knobs", "labels")},
                      "params": a.get("params"), "flops": a.get("flops"),
                      "seeds": dict(sorted(results.get(h, {}).items(), key=lambda kv: int(kv[0])))})
    return {"version": TABLE_VERSION, **meta, "space": {"bases": sub.bases, "knobs": sub.knobs, "combos": sub.combos},
            "architectures": archs}


def _study_results(study_dir: Path, by_arm: dict[str, str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(architecture hash, seed, result) of every finished trial of one study whose arm is an architecture of the table
    with the genome it trained."""
    import csv

    rows = list(csv.DictReader(open(study_dir / "results.csv"))) if (study_dir / "results.csv").exists() else []
    curves: dict[int, dict[int, float]] = {}
    if (study_dir / "curves.csv").exists():
        for r in csv.DictReader(open(study_dir / "curves.csv")):
            if r["metric"] == "val/acc":
                curves.setdefault(int(r["trial"]), {})[int(r["epoch"])] = float(r["value"])
    for r in rows:
        if r["state"] != "COMPLETE" or r["arm"] not in by_arm or r.get("genome_hash") not in (None, "", by_arm[r["arm"]]):
            continue
        seed = str(int(float(r["seed"])))
        per_epoch = [v for _, v in sorted(curves.get(int(r["number"]), {}).items())]
        train_time = _num(r.get("train_time"))
        if train_time != train_time:
            train_time = _num(r.get("duration_s"))
        yield by_arm[r["arm"]], seed, {"val_acc": per_epoch, "test_acc": _num(r.get("test/acc")), "train_time": train_time,
                                       "completed": r.get("datetime_complete") or ""}


def missing(sub: Subspace, table: dict[str, Any] | None, seeds: list[int]) -> list[str]:
    """Hashes of the architectures of ``sub`` that ``table`` does not hold for every one of ``seeds``."""
    held = {a["hash"]: set(a.get("seeds", {})) for a in (table or {}).get("architectures", [])}
    want = {str(s) for s in seeds}
    return [h for h in sub.architectures if not want <= held.get(h, set())]


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def load_table(path: str | Path) -> dict[str, Any]:
    """A table file (JSON), checked for what the replay needs."""
    doc = json.loads(Path(path).read_text())
    for key in ("space", "architectures"):
        if key not in doc:
            raise ValueError(f"{path}: not a nasplay table (no {key!r}); make one with scripts/build_table.py")
    return doc
