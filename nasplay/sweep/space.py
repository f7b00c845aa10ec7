"""The search space's values: how an entry of ``sweep.space`` (a list of choices, or ``{low, high, log, step, int}``)
becomes a value, through Optuna (:func:`suggest_value`) or a seeded draw (:func:`draw_value`), and what one trial
trains (:class:`TrialSpec`). The plan, the trial and the conditional search all read the space through here.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nasplay.space.knobs.parse import format_value

if TYPE_CHECKING:  # annotations only: optuna loads when a study runs
    import optuna


def choices(spec: list[Any]) -> tuple[list[Any], dict[Any, Any]]:
    """Optuna-storable choices for a list of values (lists become their labels) and label -> value."""
    labels = [v if v is None or isinstance(v, (bool, int, float, str)) else format_value(v) for v in spec]
    return labels, dict(zip(labels, spec))


def is_int_range(spec: dict[str, Any]) -> bool:
    """Whether a ``{low, high}`` range is sampled as integers (``int: true``, or both ends integers)."""
    return bool(spec.get("int")) or all(isinstance(x, int) for x in (spec["low"], spec["high"]))


def suggest_value(trial: optuna.Trial, name: str, spec: Any) -> Any:
    """The value of space entry ``spec`` that ``trial`` suggests for parameter ``name``."""
    if isinstance(spec, (list, tuple)):
        labels, back = choices(list(spec))
        return back[trial.suggest_categorical(name, labels)]
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    if is_int_range(spec):
        return trial.suggest_int(name, int(low), int(high), step=int(step or 1), log=log)
    return trial.suggest_float(name, float(low), float(high), step=step, log=log)


def draw_value(rng: random.Random, spec: Any) -> Any:
    """A value of space entry ``spec`` drawn with ``rng`` (uniform, or log-uniform with ``log``)."""
    if isinstance(spec, (list, tuple)):
        return rng.choice(choices(list(spec))[0])
    if is_int_range(spec):
        return rng.randint(int(spec["low"]), int(spec["high"]))
    if spec.get("log"):
        return math.exp(rng.uniform(math.log(spec["low"]), math.log(spec["high"])))
    return rng.uniform(float(spec["low"]), float(spec["high"]))


def trial_key(params: dict[str, Any]) -> str:
    """A short stable name for a trial's parameters (its checkpoint directory)."""
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class TrialSpec:
    """What one trial trains: a network (arch + knobs), a seed and config overrides from the search space."""

    arm: str
    arch: str
    knobs: dict[str, Any]
    seed: int
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"optim": {"lr": 0.1}, ...}
    classic: bool = False  # a network trained beside a search (experiment.classics): never pruned
    stage: str = ""  # a tuned experiment's "tune" or "final" trial
    budget: float = 1.0  # trainer.max_epochs times this
    tuned: dict[str, Any] = field(default_factory=dict)  # a final trial's settings chosen by its arm's tuning
    pair: int | None = None  # experiment.pairs: the sampled architecture this trial trains under its arm

    @property
    def key(self) -> str:
        return trial_key({"arch": self.arch, "knobs": self.knobs, "seed": self.seed, "overrides": self.overrides})
