"""Regularized ("aging") evolution (Real et al. 2019, "Regularized Evolution for Image Classifier Architecture
Search", Algorithm 1) as an Optuna sampler: ``sweep=evolution``.

The population is the last ``population_size`` completed trials of the study (feasible ones: a trial with a
positive constraint value, such as a proposal over the budget, never becomes a parent). A new trial takes
``sample_size`` of them at random, the best of that tournament (by the study's first objective) is the parent,
and the child is the parent with **one** parameter mutated: a knob of the parent's base to another of the values
that base accepts (its parameter's distribution is exactly those values), or the base itself (``arch``), whose
knobs are then drawn afresh. The oldest member leaves as the child arrives: the population is a window over
the study's history. Until ``population_size`` trials have completed, proposals are random (the initial
population).

Everything is read from the study's trials at every ask, so the sampler is asynchronous as every worker loop
here: it resumes with the study, and several workers (with their own seeds) evolve one population.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState


def union_space(study: optuna.Study) -> dict[str, BaseDistribution]:
    """Every parameter of the study's completed trials with its distribution (a conditional space's per-base names
    included), leaving out single-valued ones; the relative search space of the genetic samplers here."""
    out: dict[str, BaseDistribution] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for name, d in t.distributions.items():
            if name not in out and not d.single():
                out[name] = d
    return out


def infeasibility(t: FrozenTrial) -> float:
    """The sum of a trial's positive constraint values (0: feasible, or no constraints)."""
    return float(sum(v for v in t.constraints.values() if v > 0))


def check_sizes(population_size: Any, sample_size: Any) -> None:
    """``ValueError`` naming ``sweep.options.*`` when the population or tournament size is not usable."""
    for name, v, low in (("population_size", population_size, 2), ("sample_size", sample_size, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"sweep.options.{name} must be an int >= {low} for sweep=evolution, got {v!r}")
    if sample_size > population_size:
        raise ValueError(f"sweep.options.sample_size ({sample_size}) must be at most sweep.options.population_size "
                         f"({population_size}): the tournament samples the population")


class RegularizedEvolutionSampler(optuna.samplers.BaseSampler):
    """Aging evolution over the study's last ``population_size`` completed trials, tournaments of ``sample_size``."""

    def __init__(self, *, population_size: int = 20, sample_size: int = 5, seed: int | None = None) -> None:
        check_sizes(population_size, sample_size)
        self.population_size = population_size
        self.sample_size = sample_size
        self._rng = np.random.default_rng(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def population(self, study: optuna.Study) -> list[FrozenTrial]:
        """The living population: the last ``population_size`` feasible completed trials, oldest first."""
        alive = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.params and t.values and math.isfinite(t.values[0]) and infeasibility(t) <= 0]
        return sorted(alive, key=lambda t: t.number)[-self.population_size:]

    def tournament(self, study: optuna.Study, population: list[FrozenTrial]) -> FrozenTrial:
        """The best of ``sample_size`` members drawn without replacement (first objective; ties: the younger)."""
        picks = [population[i] for i in sorted(self._rng.choice(len(population), size=self.sample_size, replace=False))]
        sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        return max(picks, key=lambda t: (sign * t.values[0], t.number))

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return union_space(study)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        population = self.population(study)
        if len(population) < self.population_size:
            return {}  # the initial population: random
        parent = self.tournament(study, population)
        child = {n: v for n, v in parent.params.items() if n in search_space}
        trial_attrs = {"parent": parent.number, "parent_params": dict(parent.params)}
        mutable = [n for n in child if not parent.distributions[n].single()]
        if mutable:
            name = mutable[int(self._rng.integers(len(mutable)))]
            child[name] = self.mutate(parent.distributions[name], child[name])
            trial_attrs["mutated"] = name
        for k, v in trial_attrs.items():
            study._storage.set_trial_system_attr(trial._trial_id, f"evolution:{k}", v)
        return child

    def mutate(self, dist: BaseDistribution, value: Any) -> Any:
        """Another value of ``dist`` than ``value`` (uniform over the choices; a range is drawn afresh)."""
        rng = self._rng
        if isinstance(dist, CategoricalDistribution):
            others = [c for c in dist.choices if c != value]
            return others[int(rng.integers(len(others)))] if others else value
        for _ in range(20):
            if isinstance(dist, IntDistribution):
                if dist.log:
                    v = int(round(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))))
                else:
                    v = dist.low + dist.step * int(rng.integers((dist.high - dist.low) // dist.step + 1))
                v = min(max(v, dist.low), dist.high)
            elif isinstance(dist, FloatDistribution):
                if dist.log:
                    v = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
                elif dist.step is not None:
                    v = dist.low + dist.step * int(rng.integers(round((dist.high - dist.low) / dist.step) + 1))
                else:
                    v = float(rng.uniform(dist.low, dist.high))
            else:
                return value
            if v != value:
                return v
        return value

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # the initial population, and the knobs of a base the mutation has just changed to
        return self._random.sample_independent(study, trial, param_name, param_distribution)
