"""Samplers and pruners from the ``sweep`` config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nasplay.sweep.storage import holds_its_point

if TYPE_CHECKING:
    import optuna

    from nasplay.sweep.config import SweepConfig


def sampler_class(name: str) -> type:
    import optuna

    return {
        "grid": _grid_sampler(),
        "random": optuna.samplers.RandomSampler,
        "tpe": optuna.samplers.TPESampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }[name]


def __getattr__(name: str) -> type:
    # A DDP trial pickles its study, sampler included, into spawned processes: pickle finds the class here.
    if name == "AskTellGridSampler":
        return _grid_sampler()
    raise AttributeError(name)


_GRID: list[type] = []


def _grid_sampler() -> type:
    if _GRID:
        return _GRID[0]
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler for nasplay's ask-and-tell loop.

        The runner enqueues each pending grid point (seed-major, skipping points that are done, so a grid
        that grew keeps its finished trials) and stops when none is left. GridSampler's ``after_trial``
        would instead call ``study.stop()``, which raises outside ``study.optimize``.
        """

        def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
            pass

    AskTellGridSampler.__qualname__ = "AskTellGridSampler"
    _GRID.append(AskTellGridSampler)
    return AskTellGridSampler


def make_sampler(sweep: SweepConfig, grid: dict[str, list[Any]] | None = None) -> optuna.samplers.BaseSampler:
    """The configured sampler; ``grid`` is the search space of the grid sampler (parameter -> values)."""
    cls = sampler_class(sweep.sampler)
    kwargs = dict(sweep.options)
    if sweep.sampler == "grid":
        if not grid:
            raise ValueError("sweep.sampler=grid needs a finite space: experiment arms x seeds, or lists in sweep.space")
        return cls(grid, seed=sweep.seed)
    if sweep.sampler == "tpe" and len(sweep.objectives) == 1:
        kwargs.setdefault("n_startup_trials", min(10, max(2, (sweep.n_trials or 10) // 4)))
    return cls(seed=sweep.seed, **kwargs)


def make_pruner(sweep: SweepConfig) -> optuna.pruners.BasePruner:
    """The configured pruner (``NopPruner`` when off or when the study has several objectives)."""
    import optuna

    p = sweep.pruner
    if p.kind == "none" or len(sweep.objectives) > 1:
        return optuna.pruners.NopPruner()
    if p.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps,
                                           interval_steps=p.interval_steps)
    return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, max_resource=p.max_resource,
                                          reduction_factor=p.reduction_factor)


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
