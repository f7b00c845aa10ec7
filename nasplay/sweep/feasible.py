"""A refusal is not a trial: the ask of a conditional search proposes only networks that can train (issue 21).

FLOPs, params and the knobs' own refusals are known before anything is built (:func:`nasplay.complexity.resolve`
and :func:`~nasplay.complexity.complexity`, through :func:`nasplay.sweep.conditional.suggest_conditional`). So the
configured sampler (TPE, NSGA-II, evolution, random) never proposes straight into the study. It proposes into a
*scratch* study, an in-memory copy of what it knows:

- every trial of the real study (trained, pruned, running), each with a constraint value that says whether it
  was within ``experiment.max_flops`` / ``experiment.max_params`` (Optuna's constrained optimisation: a value
  <= 0 is feasible), and the classics placed beside the search as the base's own point of the space;
- every proposal refused so far, as an *infeasible* trial (the relative excess over the budget, or 1 for a
  knob combination the knobs refuse);
- the *probes*: each base at its own knobs and with one knob moved to each value it accepts (the points
  :func:`~nasplay.sweep.conditional.allowed` builds anyway), measured before the search, those over the budget
  shown as infeasible trials. They are not proposals and not refusals; on the configured search_classic they
  took TPE from about 25 refused proposals for 40 trained networks to 3 or 4 (NSGA-II's and evolution's
  populations hold trials of their own generations only, so the probes do not change them).

A refused proposal is told to the scratch study and the sampler asked again, at most ``attempts`` times per
trial; TPE and NSGA-II read the constraint values (infeasible trials go to TPE's "bad" group and lose every
NSGA-II tournament), evolution takes parents among feasible trials only. The refusal is recorded in the
study's user attributes (``nasplay:refusal:NNNNNN``: the proposal, why, its complexity) so that every worker,
every host and every resume teaches its sampler the same, and ``refusals.json`` in the study directory lists
them for the report. A refusal is never a trial of the study: it is not FAIL, it spends nothing of
``sweep.n_trials`` and nothing of ``sweep.max_failures``.

The accepted proposal becomes the study's next trial with its parameters fixed (``enqueue_trial``) and a seed
that this genome has not been trained with: the same genome and seed are never trained twice in one study
(a proposal whose genome has every seed already is re-proposed and counted as a duplicate). Whatever the
configured sampler keeps on a trial (NSGA-II's generation) is kept on the real trial (system attribute
``nasplay:proposal``) and given back to it in the next scratch study.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import TrialState

from nasplay.complexity import complexity, resolve
from nasplay.sweep.conditional import REFUSALS_FILE, allowed, bases, data_shape_of

if TYPE_CHECKING:
    from nasplay.sweep.plan import Plan

REFUSAL_PREFIX = "nasplay:refusal:"  # study user attrs, one per refused proposal (zero-padded index)
DUPLICATES = "nasplay:duplicate_proposals"  # study user attr: proposals re-asked because genome and seed were taken
PROPOSAL_ATTR = "nasplay:proposal"  # trial system attr: what the configured sampler kept on the accepted proposal
CONSTRAINTS = "constraints"  # Optuna's system attr of constraint values (a list; <= 0 is feasible)
ATTEMPTS = 500  # proposals per trial before the space is declared empty (each costs a build on the meta device)
KNOB_VIOLATION = 1.0  # the constraint value of a knob combination the knobs refuse (no complexity to measure)


class SpaceEmpty(ValueError):
    """Every proposal of an ask was refused or taken: the space within the budget looks empty."""


@dataclass
class Proposal:
    """One accepted proposal: its parameters, the seed it trains with and how many proposals it took."""

    params: dict[str, Any]
    seed: int
    refused: int
    duplicates: int


def violation(c: Any, flops: int | None, params: int | None, knob_refused: bool = False) -> float:
    """The constraint value of a genome: > 0 over budget (the relative excess) or refused by the knobs, else <= 0."""
    if knob_refused:
        return KNOB_VIOLATION
    exp = c.experiment
    parts = [flops / exp.max_flops - 1.0 if exp.max_flops and flops is not None else None,
             params / exp.max_params - 1.0 if exp.max_params and params is not None else None]
    parts = [p for p in parts if p is not None]
    return max(parts) if parts else 0.0


class FeasibleSampler(optuna.samplers.BaseSampler):
    """The sampler of a conditional search's study: proposals come from :meth:`propose`, never from ``ask``.

    The real study's own trials get their parameters fixed by :meth:`propose` (or by a queued trial: a classic,
    a retry), so this sampler samples nothing itself; a parameter that is somehow not fixed is drawn at random.
    ``inner`` is the configured sampler, which sees only the scratch studies.
    """

    def __init__(self, inner: optuna.samplers.BaseSampler, plan: Plan, *, attempts: int = ATTEMPTS, seed: int | None = None):
        self.inner = inner
        self.plan = plan
        self.attempts = attempts
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: Any, param_name: str, param_distribution: Any) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    # -- the refusal-free ask ------------------------------------------------------------------------------

    def propose(self, study: optuna.Study) -> optuna.Trial:
        """Ask the inner sampler until it proposes a feasible network not yet trained with its seed; that proposal
        becomes the study's next trial (returned, RUNNING). Call it holding the study lock, with no trial WAITING.

        Raises :class:`SpaceEmpty` after :attr:`attempts` refused or duplicate proposals in a row.
        """
        from nasplay.sweep.conditional import suggest_conditional

        c = self.plan.cfg
        trials = study.get_trials(deepcopy=False)
        records = refusal_records(study)
        scratch = self._scratch(study, trials, records)
        taken = taken_pairs(trials)
        seeds = list(c.experiment.seeds)
        refused, dup = 0, 0
        causes: Counter[str] = Counter()
        for _ in range(self.attempts):
            t = scratch.ask()
            spec = suggest_conditional(t, self.plan)
            why = t.user_attrs.get("refused")
            if why:
                knob = why.startswith("knobs:")
                v = violation(c, t.user_attrs.get("flops"), t.user_attrs.get("params"), knob_refused=knob)
                values = self._worst(trials, t.user_attrs)
                scratch._storage.set_trial_system_attr(t._trial_id, CONSTRAINTS, [v])
                scratch.tell(t, values)
                record = {"time": time.time(), "arch": spec.arch, "arm": spec.arm, "knobs": _plain(spec.knobs),
                          "cause": "knobs" if knob else "budget", "reason": why, "violation": v, "values": values,
                          "flops": t.user_attrs.get("flops"), "params_count": t.user_attrs.get("params"),
                          "params": _plain(t.params),
                          "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
                          "attrs": _sampler_attrs(scratch, t)}
                study.set_user_attr(f"{REFUSAL_PREFIX}{len(records):06d}", record)
                records.append(record)
                refused += 1
                causes[record["cause"]] += 1
                continue
            genome = t.user_attrs.get("genome_hash")
            seed = self._seed(spec.seed, genome, taken, seeds, len(trials), "seed" in c.sweep.space)
            if seed is None:  # this genome has every seed: tell it as infeasible here (not recorded) and ask again
                scratch._storage.set_trial_system_attr(t._trial_id, CONSTRAINTS, [KNOB_VIOLATION])
                scratch.tell(t, self._worst(trials, t.user_attrs))
                dup += 1
                continue
            if dup:
                study.set_user_attr(DUPLICATES, int(study.user_attrs.get(DUPLICATES, 0)) + dup)
            if refused or dup or not (Path(self.plan.study_dir) / REFUSALS_FILE).exists():
                _write_file(self.plan.study_dir, records, int(study.user_attrs.get(DUPLICATES, 0)), len(self._probes()))
            attrs = _sampler_attrs(scratch, t)
            study.enqueue_trial(dict(t.params), user_attrs={"seed": int(seed)}, skip_if_exists=False)
            trial = study.ask()
            if attrs:
                study._storage.set_trial_system_attr(trial._trial_id, PROPOSAL_ATTR, attrs)
            trial.set_user_attr("refused_before", refused)
            return trial
        if refused:
            _write_file(self.plan.study_dir, records, int(study.user_attrs.get(DUPLICATES, 0)), len(self._probes()))
        shown = ", ".join(f"{n} {k}" for k, n in causes.most_common()) or "none refused"
        raise SpaceEmpty(f"sweep: {self.attempts} proposals in a row were refused or already trained ({shown}, {dup} "
                         f"duplicates): the space within experiment.max_flops={c.experiment.max_flops} / experiment.max_params="
                         f"{c.experiment.max_params} seems empty or exhausted; raise the budget, widen sweep.space or "
                         f"lower sweep.n_trials")

    @staticmethod
    def _seed(sampled: int, genome: str | None, taken: set[tuple[str, int]], seeds: list[int], n: int,
              seed_in_space: bool) -> int | None:
        """The seed a new trial of ``genome`` trains with: one it has not been trained with (``None``: none left).

        Seeds take turns by trial number as before (``experiment.seeds[n % len]``), skipping taken ones; a seed
        sampled from ``sweep.space`` is kept or refused as it is.
        """
        if seed_in_space:
            return None if (genome, int(sampled)) in taken else int(sampled)
        order = seeds[n % len(seeds):] + seeds[:n % len(seeds)]
        return next((s for s in order if (genome, int(s)) not in taken), None)

    def _worst(self, trials: list[Any], attrs: dict[str, Any]) -> list[float]:
        """Objective values for a trial the sampler must see as bad: FLOPs / params as measured, else the worst seen."""
        c = self.plan.cfg
        out = []
        for i, (o, d) in enumerate(zip(c.sweep.objectives, c.sweep.directions_resolved)):
            if o in ("flops", "params") and attrs.get(o) is not None:
                out.append(float(attrs[o]))
                continue
            seen = [t.values[i] for t in trials if t.state == TrialState.COMPLETE and t.values and math.isfinite(t.values[i])]
            worst = (min(seen) if d == "maximize" else max(seen)) if seen else 0.0
            out.append(float(worst))
        return out

    def _scratch(self, study: optuna.Study, trials: list[Any], records: list[dict[str, Any]]) -> optuna.Study:
        """The study the inner sampler proposes into: the real trials and the refused proposals, oldest first."""
        c = self.plan.cfg
        scratch = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=self.inner,
                                      directions=list(study.directions))
        items: list[tuple[float, Any]] = []
        classic_points = self._classic_points()
        for t in trials:
            if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
                continue
            params, dists = dict(t.params), dict(t.distributions)
            classic = t.user_attrs.get("classic")
            if classic:
                if classic not in classic_points:
                    continue
                params, dists = classic_points[classic]
            if not params:
                continue
            ua = t.user_attrs
            v = violation(c, ua.get("flops"), ua.get("params"))
            system = {**dict(t.system_attrs.get(PROPOSAL_ATTR) or {}), CONSTRAINTS: [v]}
            if classic and self._generation_key():
                system[self._generation_key()] = 0  # the classics are a GA's first generation
            values = list(t.values) if t.state == TrialState.COMPLETE and t.values else None
            if values is not None and not all(math.isfinite(x) for x in values):
                continue
            when = t.datetime_start.timestamp() if t.datetime_start else time.time()
            items.append((when, optuna.trial.create_trial(
                state=t.state, values=values, params=params, distributions=dists, user_attrs=_plain(dict(ua)),
                system_attrs=system, intermediate_values=dict(t.intermediate_values))))
        for r in records:
            dists = {k: json_to_distribution(d) for k, d in r["distributions"].items()}
            items.append((float(r["time"]), optuna.trial.create_trial(
                state=TrialState.COMPLETE, values=list(r["values"]), params=dict(r["params"]), distributions=dists,
                user_attrs={"refused": r["reason"]}, system_attrs={**dict(r.get("attrs") or {}), CONSTRAINTS: [r["violation"]]})))
        for params, dists, v, attrs in self._probes():
            items.append((0.0, optuna.trial.create_trial(
                state=TrialState.COMPLETE, values=self._worst(trials, attrs), params=params, distributions=dists,
                user_attrs={"probe": True}, system_attrs={CONSTRAINTS: [v]})))
        items.sort(key=lambda x: x[0])
        scratch.add_trials([t for _, t in items])
        return scratch

    def _probes(self) -> list[tuple[dict[str, Any], dict[str, Any], float, dict[str, Any]]]:
        """The points of the space measured before the search and found over the budget: each base at its own
        knobs, and with one knob moved to each value it accepts (what :func:`~nasplay.sweep.conditional.allowed`
        built anyway). The sampler sees them as infeasible trials; they are not proposals, and not counted as refusals."""
        if getattr(self, "_probed", None) is not None:
            return self._probed
        c = self.plan.cfg
        out = []
        if c.experiment.max_flops is not None or c.experiment.max_params is not None:
            shape = data_shape_of(self.plan)
            table = allowed(c, shape)
            for params, dists in self._base_points(table).values():
                base = params["arch"]
                from nasplay.sweep.space import choices

                variants = [dict(params)]
                for knob, spec in table[base]["knobs"].items():
                    if not isinstance(spec, (list, tuple)) or f"{base}.{knob}" not in params:
                        continue
                    labels, back = choices(list(spec))
                    variants += [{**params, f"{base}.{knob}": lab} for lab in labels if lab != params[f"{base}.{knob}"]]
                for point in variants:
                    knobs = dict(table[base]["own"])
                    for name, lab in point.items():
                        if name != "arch":
                            knob = name.split(".", 1)[1]
                            v = choices(list(table[base]["knobs"][knob]))[1][lab]
                            if v != table[base]["defaults"].get(knob):
                                knobs[knob] = v
                    try:
                        g = resolve(base, knobs, shape)
                    except ValueError:
                        continue
                    cx = complexity(g, num_classes=g.classes)
                    v = violation(c, int(cx.flops), int(cx.params))
                    if v > 0:
                        out.append((point, dists, v, {"flops": int(cx.flops), "params": int(cx.params)}))
        self._probed = out
        return out

    def _generation_key(self) -> str | None:
        get = getattr(self.inner, "_get_generation_key", None)  # optuna's genetic samplers (BaseGASampler)
        return get() if callable(get) else None

    def _classic_points(self) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """Each classic beside the search as the point of the space it is: its base, and each knob at the base's own
        value (where that value is one of the knob's choices)."""
        points = self._base_points(allowed(self.plan.cfg, data_shape_of(self.plan)))
        return {arm.name.removeprefix("classic "): points[arm.arch] for arm in self.plan.classics if arm.arch in points}

    def _base_points(self, table: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """Per base, its own point of the space: each knob at the base's own value (where that value is listed)."""
        from optuna.distributions import CategoricalDistribution

        from nasplay.sweep.space import choices

        names = bases(self.plan.cfg)
        out = {}
        for base in names:
            if base not in table:
                continue
            params: dict[str, Any] = {"arch": base}
            dists: dict[str, Any] = {"arch": CategoricalDistribution(names)}
            for knob, spec in table[base]["knobs"].items():
                default = table[base]["defaults"].get(knob)
                if default is None or not isinstance(spec, (list, tuple)):
                    continue
                labels, back = choices(list(spec))
                params[f"{base}.{knob}"] = next(lab for lab, v in back.items() if v == default)
                dists[f"{base}.{knob}"] = CategoricalDistribution(labels)
            out[base] = (params, dists)
        return out


def taken_pairs(trials: list[Any]) -> set[tuple[str, int]]:
    """(genome hash, seed) of every trial that trained, trains or failed training: none of them trains again."""
    out = set()
    for t in trials:
        ua = t.user_attrs
        if ua.get("refused") or "genome_hash" not in ua or "seed" not in ua:
            continue
        if t.state == TrialState.FAIL and (ua.get("retry") or ua.get("setup_error")):
            continue  # its retry (queued, or the next run's) stands for it
        out.add((ua["genome_hash"], int(ua["seed"])))
    return out


def refusal_records(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's refused proposals, oldest first."""
    attrs = study.user_attrs
    return [attrs[k] for k in sorted(k for k in attrs if k.startswith(REFUSAL_PREFIX))]


def _write_file(study_dir: Path, records: list[dict[str, Any]], duplicates: int, probes: int) -> None:
    """``refusals.json``: every refused proposal of the study (all workers' and hosts', from the storage)."""
    keep = ("time", "arch", "arm", "knobs", "cause", "reason", "violation", "flops", "params_count")
    doc = {"refusals": [{k: r.get(k) for k in keep} for r in records], "duplicate_proposals": duplicates,
           "probes_over_budget": probes}
    study_dir.mkdir(parents=True, exist_ok=True)
    tmp = study_dir / (REFUSALS_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    tmp.replace(study_dir / REFUSALS_FILE)


def _sampler_attrs(scratch: optuna.Study, trial: optuna.Trial) -> dict[str, Any]:
    """What the inner sampler kept on a scratch trial (NSGA-II's generation), constraints and Optuna's own left out."""
    system = scratch._storage.get_trial_system_attrs(trial._trial_id)
    return {k: v for k, v in system.items() if not k.startswith((CONSTRAINTS, "fixed_params"))}


def _plain(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def wrap(sampler: optuna.samplers.BaseSampler, plan: Plan, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler: ``sampler`` behind the refusal-free ask for a conditional search, else as it is."""
    if not plan.cfg.experiment.conditional or plan.grid is not None:
        return sampler
    return FeasibleSampler(sampler, plan, seed=seed)
