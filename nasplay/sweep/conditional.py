"""A conditional search space over the classic networks (``experiment.conditional: true``).

The first choice of a trial is a base network (the space's ``arch`` list, e.g. the ten classics); the
next choices are the knobs of the space that this base accepts, each from the values it accepts. What a
base accepts is not kept in a table: :func:`allowed` tries every listed value of every knob on every
base, alone, exactly as a trial would build it (the base's own knobs from ``experiment.classics``, the
data's input and classes) and keeps the values :func:`nasplay.apply` does not refuse. Values that give
the same network are merged (the first listed stays), and a knob left with one network is not sampled
on that base at all: it does not apply there.

Optuna needs one distribution per parameter name, so a knob's parameter is named per base
(``resnet50.skip``, ``xception.separable``); :func:`knob_of` maps a name back to its knob.

A sampled *combination* can still be refused (``bottleneck=off`` with ``cardinality=32`` …), and a
sample can break ``experiment.max_flops`` / ``experiment.max_params``. :func:`suggest_conditional`
builds the genome and counts its complexity; a refused sample is marked (user attribute ``refused``).
The study's ask (:mod:`nasplay.sweep.feasible`) proposes into a scratch study and asks again until the
proposal is feasible, so a refusal is never a trial: it is recorded in the study's user attributes
and in ``refusals.json``, which the search report counts. A trial that still arrives refused (queued
by hand, or by an older study) ends as FAIL (``Refused: ...``) before anything trains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasplay.complexity import complexity, resolve
from nasplay.space.knobs.parse import format_value
from nasplay.sweep.config import NasplayConfig
from nasplay.sweep.space import TrialSpec, suggest_value

if TYPE_CHECKING:  # annotations only: optuna loads when a study runs; the plan imports this module
    import optuna

    from nasplay.sweep.plan import Plan

SPACE_FILE = "space.json"  # the conditional space as a study sampled it (written into the study directory)
REFUSALS_FILE = "refusals.json"  # the proposals refused untrained (nasplay.sweep.feasible), for the report


def read_refusals(study_dir: str | Path) -> dict[str, Any] | None:
    """``refusals.json`` of a study directory: ``{"refusals": [...], "duplicate_proposals": n}`` (``None`` when the
    study wrote none: it refused nothing, or it is older than the refusal-free ask)."""
    path = Path(study_dir) / REFUSALS_FILE
    return json.loads(path.read_text()) if path.exists() else None


class Refused(ValueError):
    """A sampled genome that is not trained: a knob combination the knobs refuse, or over a budget."""


def knob_of(param: str) -> tuple[str | None, str]:
    """``"resnet50.skip"`` -> ``("resnet50", "skip")``; a shared name (``optim.lr``, ``arch``) -> ``(None, name)``."""
    head, _, rest = param.partition(".")
    if rest and head not in ("knobs", "optim", "data", "trainer"):
        return head, rest
    return None, param


def bases(c: NasplayConfig) -> list[str]:
    """The base networks: the space's ``arch`` choices (else ``experiment.bases``, else ``arch.name``)."""
    spec = c.sweep.space.get("arch")
    if isinstance(spec, (list, tuple)) and spec:
        return [str(b) for b in spec]
    return list(c.experiment.bases) or [c.arch.name]


def base_knobs(c: NasplayConfig, base: str) -> dict[str, Any]:
    """A base's own knobs as configured: its ``experiment.classics`` entry (the reference it is compared with),
    else ``arch.knobs`` (of which :func:`allowed` keeps those the base accepts: LeNet-5 refuses ``width``)."""
    classics = c.experiment.classics or {}
    if base in classics:
        return dict(((classics[base] or {}).get("knobs")) or {})
    return dict(c.arch.knobs)


def _own(c: NasplayConfig, base: str, data_shape: tuple[int, int, int]) -> dict[str, Any]:
    own = base_knobs(c, base)
    if base in (c.experiment.classics or {}):
        return own
    kept = {}
    for k, v in own.items():
        try:
            resolve(base, {k: v}, data_shape)
            kept[k] = v
        except ValueError:
            pass
    return kept


def _knob_specs(c: NasplayConfig) -> dict[str, Any]:
    return {k.removeprefix("knobs."): v for k, v in c.sweep.space.items() if k.startswith("knobs.")}


_CACHE: dict[str, dict[str, Any]] = {}


def allowed(c: NasplayConfig, data_shape: tuple[int, int, int]) -> dict[str, Any]:
    """Per base: its knobs, ``{"knobs": {knob: [values]}, "defaults": {knob: value | None}, "refused": {knob: {value: why}}}``.

    A list knob keeps the values that build (distinct networks only; ``defaults`` names the value that
    leaves the base as it is, if listed); a range knob (``{low, high}``) is kept when both ends build.
    """
    key = json.dumps([bases(c), {b: base_knobs(c, b) for b in bases(c)}, _knob_specs(c), list(data_shape)],
                     sort_keys=True, default=str)
    if key in _CACHE:
        return _CACHE[key]
    out: dict[str, Any] = {}
    for base in bases(c):
        own = _own(c, base, data_shape)
        g0 = resolve(base, own, data_shape, where=f"sweep.space.arch={base}")
        entry: dict[str, Any] = {"own": own, "knobs": {}, "defaults": {}, "refused": {}}
        for knob, spec in _knob_specs(c).items():
            values = list(spec) if isinstance(spec, (list, tuple)) else [spec["low"], spec["high"]]
            seen: dict[str, Any] = {}  # genome hash -> the first value that gives it
            refused: dict[str, str] = {}
            for v in values:
                try:
                    g = resolve(base, {**own, knob: v}, data_shape)
                except ValueError as e:
                    refused[format_value(v)] = str(e).splitlines()[0][:300]
                    continue
                seen.setdefault(g.hash, v)
            if refused:
                entry["refused"][knob] = refused
            if isinstance(spec, dict):
                if not refused:
                    entry["knobs"][knob] = dict(spec)
                continue
            if len(seen) >= 2:
                entry["knobs"][knob] = list(seen.values())
                entry["defaults"][knob] = seen.get(g0.hash)
        out[base] = entry
    _CACHE[key] = out
    return out


def data_shape_of(plan: Plan) -> tuple[int, int, int]:
    """The data's ``(channels, size, classes)`` as the plan's genomes were fitted to it."""
    g = next(iter(plan.genomes.values()))
    return g.input.channels, g.input.size, g.classes


def check(c: NasplayConfig, data_shape: tuple[int, int, int]) -> dict[str, Any]:
    """Check a conditional space before anything trains: bases, knobs that apply somewhere, budgets."""
    if "arch" in c.sweep.space and not isinstance(c.sweep.space["arch"], (list, tuple)):
        raise ValueError("sweep.space.arch: a conditional space needs a list of base networks")
    if c.sweep.sampler == "grid":
        raise ValueError("experiment.conditional: a conditional space is sampled (sweep=random|tpe|nsga2|evolution), not a grid")
    for name in ("max_flops", "max_params"):
        v = getattr(c.experiment, name)
        if v is not None and not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"experiment.{name} must be a positive number or null, got {v!r}")
    table = allowed(c, data_shape)
    # A knob no base accepts is never sampled (a subset of the bases may leave some out); a space with none is an error.
    if _knob_specs(c) and not any(e["knobs"] for e in table.values()):
        knob = next(iter(_knob_specs(c)))
        why = next((r for e in table.values() for r in e["refused"].get(knob, {}).values()), "it changes no base")
        raise ValueError(f"sweep.space: no base network of {bases(c)} accepts two values of any knob of the space "
                         f"(knobs.{knob}: {why})")
    return table


def budget_refusal(c: NasplayConfig, params: int, flops: int) -> str:
    """Why a genome of this complexity is over the experiment's budget ('' when it is within)."""
    exp = c.experiment
    if exp.max_flops is not None and flops > exp.max_flops:
        return f"flops {flops:,} > experiment.max_flops {int(exp.max_flops):,}"
    if exp.max_params is not None and params > exp.max_params:
        return f"params {params:,} > experiment.max_params {int(exp.max_params):,}"
    return ""


def suggest_conditional(trial: optuna.Trial, plan: Plan) -> TrialSpec:
    """Sample a base, then each knob it accepts (``BASE.KNOB``), then the shared parameters (``optim.lr`` …).

    The genome is built and measured here: a refused combination or a sample over budget gets the user
    attribute ``refused`` (the runner fails it before training).
    """
    c = plan.cfg
    shape = data_shape_of(plan)
    table = allowed(c, shape)
    _write_space(plan, table)
    seeds = list(c.experiment.seeds)
    seed = trial.user_attrs.get("seed", seeds[trial.number % len(seeds)])
    base = str(trial.suggest_categorical("arch", bases(c)))
    knobs = dict(table[base]["own"])
    label = [base]
    for knob, spec in table[base]["knobs"].items():
        v = suggest_value(trial, f"{base}.{knob}", spec)
        if isinstance(spec, dict) or v != table[base]["defaults"].get(knob):
            label.append(f"{knob}={format_value(v)}")
            knobs[knob] = v  # a base's own value is left out: it changes nothing, and alone it cannot clash
    overrides: dict[str, dict[str, Any]] = {}
    for name, spec in c.sweep.space.items():
        prefix, _, rest = name.partition(".")
        if name in ("arch", "seed") or prefix == "knobs":
            continue
        v = suggest_value(trial, name, spec)
        overrides.setdefault(prefix, {})[rest] = v
        label.append(f"{name}={format_value(v)}")
    if "seed" in c.sweep.space:
        seed = suggest_value(trial, "seed", c.sweep.space["seed"])
    arm = " ".join(label)
    trial.set_user_attr("arm", arm)
    trial.set_user_attr("arch", base)
    trial.set_user_attr("knobs", json.loads(json.dumps(knobs, default=str)))
    trial.set_user_attr("seed", int(seed))
    try:
        genome = resolve(base, knobs, shape)
        cx = complexity(genome, num_classes=genome.classes)
        trial.set_user_attr("params", int(cx.params))
        trial.set_user_attr("flops", int(cx.flops))
        trial.set_user_attr("genome_hash", genome.hash)
        why = budget_refusal(c, int(cx.params), int(cx.flops))
    except ValueError as e:
        why = f"knobs: {str(e).splitlines()[0][:400]}"
    if why:
        trial.set_user_attr("refused", why)
    return TrialSpec(arm, base, knobs, int(seed), overrides)


def check_refused(trial: optuna.Trial) -> None:
    """Raise :class:`Refused` for a trial :func:`suggest_conditional` refused (the runner's hook, before training)."""
    why = trial.user_attrs.get("refused")
    if why:
        raise Refused(why)


def _write_space(plan: Plan, table: dict[str, Any]) -> None:
    path = Path(plan.study_dir) / SPACE_FILE
    if path.exists() or not Path(plan.study_dir).is_dir():
        return
    doc = {"bases": {b: {"own_knobs": e["own"], **e} for b, e in table.items()},
           "max_flops": plan.cfg.experiment.max_flops, "max_params": plan.cfg.experiment.max_params}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    tmp.replace(path)
