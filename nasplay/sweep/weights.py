"""Trained weights kept beside their trial (``sweep.keep_weights``), pruned as trials finish.

A kept trial is a folder ``<study dir>/weights/trial_<N>/`` holding ``weights.pt`` (the network's ``state_dict``, CPU
tensors, read with ``torch.load(..., weights_only=True)``), ``genome.yaml`` (the genome it trained: ``nasplay.build``
makes the network the weights load into) and ``trial.json`` (its arm, seed, objective values, metrics, the input it
takes and how that input was normalised). ``best`` keeps the trials no kept trial beats: the best by the study's
objective (the earliest among equals), or the Pareto front of a multi-objective study; a trial that is not among them
is never written, and a new best removes the trials it beats. Workers of one study take turns (a file lock).
``nasplay export`` (:mod:`nasplay.cli.export`) reads these folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

KEEP = ("auto", "best", "all", "none")
# sweep.keep_weights=auto by the experiment's kind (nasplay.manifest.kind_of): one file (or a front) where a study
# has a winner worth taking away; none for a design-space comparison, hundreds of sampled networks trained to compare
# distributions, where no one network is the result and writing each would cost a file per trial.
AUTO = {"ablation": "best", "search": "best", "ladder": "best", "design_space": "none"}
DIR = "weights"
WEIGHTS, GENOME, META = "weights.pt", "genome.yaml", "trial.json"


def resolve_keep(keep: str, kind: str) -> str:
    """``sweep.keep_weights`` as it applies to a study of ``kind`` (``auto`` resolved)."""
    return AUTO.get(kind, "best") if keep == "auto" else keep


def trial_dir(study_dir: Path, number: int) -> Path:
    return Path(study_dir) / DIR / f"trial_{number}"


def kept(study_dir: Path) -> dict[int, dict[str, Any]]:
    """The kept trials' ``trial.json``, by trial number (folders being written are not listed)."""
    out = {}
    root = Path(study_dir) / DIR
    for d in root.glob("trial_*") if root.is_dir() else ():
        try:
            meta = json.loads((d / META).read_text())
        except (OSError, ValueError):
            continue
        if (d / WEIGHTS).exists():
            out[int(meta["trial"])] = meta
    return out


def front(metas: dict[int, dict[str, Any]], directions: Sequence[str]) -> list[int]:
    """The trials no other beats: the best value (earliest among equals) of one objective, the Pareto front of several."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]

    def score(n: int) -> list[float]:
        return [s * float(v) for s, v in zip(signs, metas[n]["values"])]

    numbers = sorted(n for n, m in metas.items() if all(math.isfinite(float(v)) for v in m["values"]))
    if len(directions) == 1:
        return [max(numbers, key=lambda n: (score(n)[0], -n))] if numbers else []

    def beats(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return [n for n in numbers if not any(beats(score(m), score(n)) for m in numbers if m != n)]


@contextlib.contextmanager
def _locked(study_dir: Path) -> Iterator[None]:
    root = Path(study_dir) / DIR
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def keep(study_dir: Path, keep_weights: str, number: int, net: Any, genome: Any, meta: dict[str, Any],
         directions: Sequence[str]) -> bool:
    """Keep trial ``number``'s trained ``net`` if ``keep_weights`` (resolved) says so, then prune the trials it beats.

    ``meta`` must hold ``values`` (the objectives as told). Returns whether the weights were written.
    """
    if keep_weights == "none":
        return False
    import torch

    meta = {"trial": number, **meta}
    with _locked(study_dir):
        if keep_weights == "best":
            others = kept(study_dir)
            if number not in front({**others, number: meta}, directions):
                return False
        d = trial_dir(study_dir, number)
        tmp = d.with_name(d.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
        torch.save(state, tmp / WEIGHTS)
        (tmp / GENOME).write_text(genome.to_yaml())
        (tmp / META).write_text(json.dumps(meta, indent=1, default=str) + "\n")
        shutil.rmtree(d, ignore_errors=True)
        tmp.replace(d)
        if keep_weights == "best":
            prune(study_dir, directions)
    return True


def prune(study_dir: Path, directions: Sequence[str]) -> list[int]:
    """Remove the kept trials that others beat (``best``); returns the numbers removed."""
    metas = kept(study_dir)
    best = set(front(metas, directions))
    gone = sorted(n for n in metas if n not in best)
    for n in gone:
        shutil.rmtree(trial_dir(study_dir, n), ignore_errors=True)
    return gone
