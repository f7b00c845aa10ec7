"""Samplers and pruners from the ``sweep`` config: ``_target_`` nodes (:mod:`nasplay.sweep.config`) built with
``hydra.utils.instantiate``."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from hydra.utils import instantiate

from nasplay.sweep.config import SweepConfig
from nasplay.sweep.storage import holds_its_point


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler for nasplay's ask-and-tell loop.

    The runner enqueues each pending grid point (seed-major, skipping points that are done, so a grid
    that grew keeps its finished trials) and stops when none is left. GridSampler's ``after_trial``
    would instead call ``study.stop()``, which raises outside ``study.optimize``.
    """

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        pass


WORKER_SEED_STRIDE = 1000


def worker_seed(seed: int | None, worker: int | None) -> int | None:
    """The sampler seed of worker ``worker`` of a study: ``sweep.seed + 1000 * worker`` (one process: ``sweep.seed``),
    so that the workers of one study do not all propose the same points."""
    return seed if seed is None or not worker else int(seed) + WORKER_SEED_STRIDE * int(worker)


def make_sampler(sweep: SweepConfig, grid: dict[str, list[Any]] | None = None, worker: int | None = None,
                 conditional: bool = False) -> optuna.samplers.BaseSampler:
    """The configured sampler, built from its ``_target_`` node (:meth:`SweepConfig.sampler_node`); ``grid`` is the
    grid sampler's search space (parameter -> values); ``worker`` the worker's index (its seed: :func:`worker_seed`).

    In a conditional space TPE models each base's knobs jointly (Optuna's ``multivariate`` with ``group``
    decomposition), unless ``sweep.options`` say otherwise: with independent TPE the search_classic space
    refused about 1 proposal per trained network, with groups about 0.6 (measured without training, 4 seeds).
    """
    node = sweep.sampler_node()
    if "seed" in node:
        node["seed"] = worker_seed(node["seed"], worker)
    if conditional and sweep.sampler == "tpe":
        node.setdefault("multivariate", True)
        node.setdefault("group", True)
    if sweep.sampler != "grid":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # TPE's group
            return instantiate(node, _convert_="all")
    if not grid:
        raise ValueError("sweep.sampler=grid needs a finite space: experiment arms x seeds, or lists in sweep.space")
    # the space's values go in as they are (OmegaConf would turn them into its own containers)
    return instantiate(node, _convert_="all", _partial_=True)(grid)


def make_pruner(sweep: SweepConfig) -> optuna.pruners.BasePruner:
    """The configured pruner, built from its ``_target_`` node (``NopPruner`` when off or when the study has
    several objectives: Optuna prunes single-objective studies only)."""
    if len(sweep.objectives) > 1:
        return optuna.pruners.NopPruner()
    return instantiate(sweep.pruner.node(), _convert_="all")


def enqueue_classics(study: optuna.Study, plan: Any) -> int:
    """Queue one trial per ``experiment.classics`` network the study lacks (they run first); returns how many.

    A classic counts as present while a trial of it is finished, running or waiting, or failed for good
    (``sweep.retry_failed`` queues failed ones again), so resuming or joining a study adds no duplicate.
    """
    have = {t.user_attrs.get("classic") for t in study.get_trials(deepcopy=False)
            if holds_its_point(t, plan.cfg.sweep.retry_failed)}
    added = 0
    for arm in plan.classics:
        name = arm.name.removeprefix("classic ")
        if name not in have:
            study.enqueue_trial({}, user_attrs={"classic": name}, skip_if_exists=False)
            added += 1
    return added
