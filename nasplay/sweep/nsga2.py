"""NSGA-II whose crossover means something on a conditional space: ``sweep=nsga2``.

Optuna's ``NSGAIISampler`` crosses over the *intersection* of the trials' parameters. In the classics' space
(:mod:`nasplay.sweep.conditional`) that is ``arch`` alone, since every knob is a parameter of its base
(``resnet50.skip``): every knob of a child then came from the random fallback, and NSGA-II sampled what
random search samples. Here the relative search space is the *union* of the parameters, and a child is made
among trials of one base: the first parent wins a binary tournament over the whole parent population
(constrained domination: a feasible trial beats an infeasible one, two infeasible ones compare their
violation, two feasible ones Pareto dominance); the second wins a tournament among the parents with the same
parameters (the same base; in a flat space, every parent); uniform crossover swaps each parameter with
``swapping_prob``; each parameter then mutates (is drawn afresh) with ``mutation_prob`` (default 1 / number of
parameters). Mutating ``arch`` moves the child to another base, whose knobs are drawn afresh. On a flat space
this is Optuna's NSGA-II with uniform crossover, its default.

Selection of the parent population (non-dominated sorting, crowding distance, the generations) is Optuna's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from nasplay.sweep.evolution import infeasibility, union_space


def dominates(a: FrozenTrial, b: FrozenTrial, directions: list[Any]) -> bool:
    """Constrained domination (Deb et al. 2002): feasibility first, then the violation, then Pareto dominance."""
    va, vb = infeasibility(a), infeasibility(b)
    if va > 0 or vb > 0:
        return va < vb
    signs = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in directions]
    x = [s * v for s, v in zip(signs, a.values)]
    y = [s * v for s, v in zip(signs, b.values)]
    return all(p >= q for p, q in zip(x, y)) and any(p > q for p, q in zip(x, y))


class ConditionalNSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II with crossover among parents of the same base (see the module's docstring)."""

    def __init__(self, *, population_size: int = 50, mutation_prob: float | None = None, crossover_prob: float = 0.9,
                 swapping_prob: float = 0.5, seed: int | None = None) -> None:
        super().__init__(population_size=population_size, mutation_prob=mutation_prob, crossover_prob=crossover_prob,
                         swapping_prob=swapping_prob, seed=seed)
        if mutation_prob is not None and not 0.0 <= mutation_prob <= 1.0:
            raise ValueError(f"sweep.options.mutation_prob must be in [0, 1] or null, got {mutation_prob!r}")
        self._mutation_p = mutation_prob
        self._crossover_p = crossover_prob
        self._swapping_p = swapping_prob
        self._crng = np.random.default_rng(seed)

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._crng = np.random.default_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return union_space(study)

    def _tournament(self, study: optuna.Study, population: list[FrozenTrial]) -> FrozenTrial:
        a, b = (population[int(i)] for i in self._crng.integers(len(population), size=2))
        return a if dominates(a, b, study.directions) else b

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        generation = self.get_trial_generation(study, trial)
        parents = [p for p in self.get_parent_population(study, generation) if p.params]
        if not parents:
            return {}
        first = self._tournament(study, parents)
        names = [n for n in first.params if n in search_space]
        mates = [p for p in parents if p.number != first.number and set(p.params) == set(first.params)]
        child = {n: first.params[n] for n in names}
        if mates and self._crng.random() < self._crossover_p:
            second = self._tournament(study, mates)
            child = {n: (second.params[n] if self._crng.random() < self._swapping_p else v) for n, v in child.items()}
        p = self._mutation_p if self._mutation_p is not None else 1.0 / max(1, len(child))
        return {n: v for n, v in child.items() if self._crng.random() >= p}  # a left-out parameter is drawn afresh


# The generations stay where Optuna's NSGA-II keeps them, so a study begun with it resumes with this one.
ConditionalNSGAIISampler._GENERATION_KEY = optuna.samplers.NSGAIISampler._GENERATION_KEY
ConditionalNSGAIISampler._PARENT_CACHE_KEY_PREFIX = optuna.samplers.NSGAIISampler._PARENT_CACHE_KEY_PREFIX
