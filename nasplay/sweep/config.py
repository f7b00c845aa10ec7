"""The typed schema of ``python -m nasplay``: the root config and the arch / sweep / experiment groups.

The dataclasses are registered with Hydra's ConfigStore (:func:`register_configs`) as the schema the
YAML files of ``conf/`` merge into, so an unknown key or a wrongly typed value fails while composing.
Their ``check()`` methods then reject values a type cannot (a misspelt sampler, a bad seed list) with
a ``ValueError`` naming the field and what is allowed, before any data is read.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_class

from nasplay.manifest import KINDS as EXPERIMENT_KINDS
from nasplay.manifest import OBJECTIVES
from nasplay.outcomes import OutcomesConfig, ReportConfig
from nasplay.track.config import LoggerConfig
from nasplay.train.config import DataConfig, OptimConfig, TrainerConfig

# The samplers and pruners by the names the config uses (``sweep=tpe``, ``sweep.pruner.kind=median``): each name
# is the ``_target_`` of the node that nasplay.sweep.samplers builds with ``hydra.utils.instantiate`` (as
# lightning-hydra-template builds its parts), with the config's fields as arguments: a new one is a line here.
SAMPLER_TARGETS = {"grid": "nasplay.sweep.samplers.AskTellGridSampler", "random": "optuna.samplers.RandomSampler",
                   "tpe": "optuna.samplers.TPESampler", "nsga2": "nasplay.sweep.nsga2.ConditionalNSGAIISampler",
                   "evolution": "nasplay.sweep.evolution.RegularizedEvolutionSampler"}
PRUNER_TARGETS = {"none": "optuna.pruners.NopPruner", "median": "optuna.pruners.MedianPruner",
                  "hyperband": "optuna.pruners.HyperbandPruner"}
# The PrunerConfig fields each pruner takes.
PRUNER_ARGS = {"none": (), "median": ("n_startup_trials", "n_warmup_steps", "interval_steps"),
               "hyperband": ("min_resource", "max_resource", "reduction_factor")}
SAMPLERS = tuple(SAMPLER_TARGETS)
# What experiment.tune may judge a setting by (never a test metric): validation accuracy or loss, training loss, or the
# time to a target (trainer.target_train_error / target_val_acc), as a paper that tuned "for the fastest training" did.
TUNE_ON = ("val/acc", "val/acc_best", "val/loss", "train/loss", "epochs_to_target", "steps_to_target_train", "steps_to_target")
PRUNERS = tuple(PRUNER_TARGETS)
KEEPS = ("flops", "params")
# Integer knobs experiment.keep_by can re-solve in place of the uniform width multiplier.
KEEP_BY = ("group_width",)
# Prefixes a search-space parameter may carry: what part of a trial it sets.
SPACE_PREFIXES = ("knobs.", "optim.", "data.", "trainer.")
# Mappings whose keys are free (knob names, parameters, sampler options, arm names).
OPEN_MAPPINGS = ("arch.knobs", "sweep.space", "sweep.options", "experiment.arms", "experiment.tune")


@dataclass
class ArchConfig:
    """A zoo network (or a genome file's path: ``arch=nets/my_net.yaml``) and the knob values applied to it
    (``nasplay.knobs()`` lists the knobs)."""

    name: str = "resnet18"
    knobs: dict[str, Any] = field(default_factory=dict)


@dataclass
class PrunerConfig:
    """Early stopping of hopeless trials from their per-epoch ``sweep.monitor`` values."""

    kind: str = "none"
    n_startup_trials: int = 5  # median: trials that finish before any is pruned
    n_warmup_steps: int = 1  # median: epochs a trial runs before it may be pruned
    interval_steps: int = 1
    min_resource: int = 1  # hyperband, in epochs
    max_resource: Any = "auto"
    reduction_factor: int = 3

    def check(self) -> PrunerConfig:
        if self.kind not in PRUNERS:
            raise ValueError(f"sweep.pruner.kind must be one of {list(PRUNERS)}, got {self.kind!r}")
        for name in ("n_startup_trials", "n_warmup_steps"):
            _int_at_least(f"sweep.pruner.{name}", getattr(self, name), 0)
        for name in ("interval_steps", "min_resource"):
            _int_at_least(f"sweep.pruner.{name}", getattr(self, name), 1)
        _int_at_least("sweep.pruner.reduction_factor", self.reduction_factor, 2)
        if self.max_resource != "auto":
            _int_at_least("sweep.pruner.max_resource", self.max_resource, 1)
        return self

    def node(self) -> dict[str, Any]:
        """The pruner as a ``_target_`` node (``hydra.utils.instantiate`` builds it)."""
        return {"_target_": PRUNER_TARGETS[self.kind], **{name: getattr(self, name) for name in PRUNER_ARGS[self.kind]}}


@dataclass
class SweepConfig:
    """How trials are chosen, stopped early, counted and stored.

    ``space`` maps a parameter to a list of choices or to ``{low, high, log, step, int}``; a parameter
    is ``arch``, ``seed``, ``knobs.NAME`` or ``optim.`` / ``data.`` / ``trainer.`` + a field. An empty
    space samples the experiment's arms and seeds (the grid sampler runs all of them once); with
    several arms, each trial also picks an arm (design spaces with a knob on and off).
    ``n_trials`` counts COMPLETE + PRUNED trials (null: the whole grid). ``storage`` is an RDB URL
    (``sqlite:///x.db``, ``postgresql://...``) or a ``.journal`` file; null means
    ``<study dir>/optuna.journal``. ``options`` go to the sampler's constructor.
    """

    sampler: str = "tpe"
    n_trials: int | None = 20
    objectives: list[str] = field(default_factory=lambda: ["val/acc"])
    directions: list[str] | None = None  # default: each objective's natural direction
    monitor: str = "val/acc"  # the per-epoch value reported to the pruner
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    storage: str | None = None
    seed: int | None = 0
    space: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    workers: Any = 1  # worker processes on this host; "auto": one per visible GPU (or 1 without GPUs)
    heartbeat_interval: float = 10.0  # seconds between a running trial's heartbeats
    heartbeat_grace: float = 60.0  # a RUNNING trial silent this long belongs to a dead worker: FAIL, retried
    storage_retry: float = 300.0  # seconds storage calls are retried through an outage (a database restart); 0: not at all
    retry_failed: bool = False  # rerun failed grid points when the study is resumed
    max_failures: int | None = None  # stop this run after so many failed trials (null: n_trials or the grid size)
    timeout: float | None = None  # seconds; no new trial starts after it
    job: int = 0  # a label that changes nothing: `-m sweep.job=range(N)` starts N Hydra jobs, all workers of one study
    # Trained weights kept in <study dir>/weights/trial_<N>/ (nasplay.sweep.weights; `nasplay export` reads them): best
    # (the best trial, or a multi-objective study's front, pruned as trials finish), all, none; auto: best, but none for
    # a design-space comparison (edf_*: hundreds of sampled networks, none of them the result).
    keep_weights: str = "auto"

    def check(self) -> SweepConfig:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sweep.sampler must be one of {list(SAMPLERS)}, got {self.sampler!r}")
        if self.n_trials is not None:
            _int_at_least("sweep.n_trials", self.n_trials, 1)
        if self.sampler != "grid" and self.n_trials is None:
            raise ValueError(f"sweep.n_trials must be set for sweep.sampler={self.sampler} (only a grid has a natural size)")
        if not self.objectives:
            raise ValueError(f"sweep.objectives must name at least one of {list(OBJECTIVES)}")
        for o in self.objectives:
            if o not in OBJECTIVES:
                raise ValueError(f"sweep.objectives: unknown objective {o!r}; allowed: {list(OBJECTIVES)}")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"sweep.objectives must not repeat a name, got {list(self.objectives)}")
        if self.directions is not None:
            if len(self.directions) != len(self.objectives) or any(d not in ("maximize", "minimize") for d in self.directions):
                raise ValueError(f"sweep.directions must be 'maximize' or 'minimize', one per objective "
                                 f"{list(self.objectives)}, got {list(self.directions)}")
        if self.monitor not in ("val/acc", "val/loss", "train/loss"):
            raise ValueError(f"sweep.monitor must be one of ['val/acc', 'val/loss', 'train/loss'], got {self.monitor!r}")
        self.pruner.check()
        if self.workers != "auto":
            if isinstance(self.workers, str) and self.workers.isdigit():
                self.workers = int(self.workers)
            if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
                raise ValueError(f"sweep.workers must be an int >= 1 or 'auto' (one per visible GPU), got {self.workers!r}")
        for name in ("heartbeat_interval", "heartbeat_grace"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"sweep.{name} must be a positive number of seconds, got {v!r}")
        v = self.storage_retry
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
            raise ValueError(f"sweep.storage_retry must be a number of seconds >= 0 (how long storage calls are retried "
                             f"through an outage such as a database restart; 0: not at all), got {v!r}")
        if self.heartbeat_grace < 2 * self.heartbeat_interval:
            raise ValueError(f"sweep.heartbeat_grace ({self.heartbeat_grace}) must be at least twice "
                             f"sweep.heartbeat_interval ({self.heartbeat_interval}), or live trials would look dead")
        if self.max_failures is not None:
            _int_at_least("sweep.max_failures", self.max_failures, 1)
        if self.keep_weights not in ("auto", "best", "all", "none"):
            raise ValueError(f"sweep.keep_weights must be one of ['auto', 'best', 'all', 'none'], got {self.keep_weights!r}")
        if self.timeout is not None and not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ValueError(f"sweep.timeout must be a positive number of seconds or null, got {self.timeout!r}")
        for name, spec in self.space.items():
            _check_param(name, spec)
        self._check_options()
        return self

    def sampler_node(self) -> dict[str, Any]:
        """The sampler as a ``_target_`` node, ``options`` as its arguments (the grid's space is given when it is built)."""
        kwargs = dict(self.options)
        if self.sampler == "tpe" and len(self.objectives) == 1:
            kwargs.setdefault("n_startup_trials", min(10, max(2, (self.n_trials or 10) // 4)))
        return {"_target_": SAMPLER_TARGETS[self.sampler], "seed": self.seed, **kwargs}

    @property
    def directions_resolved(self) -> list[str]:
        return list(self.directions) if self.directions is not None else [OBJECTIVES[o] for o in self.objectives]

    def _check_options(self) -> None:
        if not self.options:
            return
        cls = get_class(SAMPLER_TARGETS[self.sampler])
        allowed = [p for p in inspect.signature(cls).parameters if p not in ("self", "seed", "search_space")]
        for k in self.options:
            if k not in allowed:
                raise ValueError(f"sweep.options.{k}: not an option of the {self.sampler} sampler; allowed: "
                                 f"{', '.join(allowed) or 'none'}")
        if self.sampler == "evolution":
            from nasplay.sweep.evolution import check_sizes

            params = inspect.signature(cls).parameters
            check_sizes(self.options.get("population_size", params["population_size"].default),
                        self.options.get("sample_size", params["sample_size"].default))


@dataclass
class ExperimentConfig:
    """What a study compares: arms (a knob's values on base networks, or named arms) times seeds.

    Arms: every base network in ``bases`` (default: ``arch.name``) with ``knob`` set to each of
    ``values``, plus the named ``arms`` (``{name: {arch: NAME, knobs: {...}}}``, for ladders and depth
    series). ``arch.knobs`` apply to every arm first. ``keep=flops|params`` makes each arm re-solve its
    widths to the base network's compute as ``arch.knobs`` size it (within ``tol``); ``keep_by=group_width``
    re-solves only the grouped convs' channels per group instead (ResNeXt's templates). ``baseline`` names
    the arm the others are compared with (default: the first); with several ``bases`` and a knob it is a value of the
    knob (default: the first), and each base's arms are compared with that base's own arm at that value (a family per
    base, Holm-adjusted within it).

    ``kind`` tells the report what the study is (default: from the name, ``edf_*`` / ``search_*`` /
    ``ladder*``, else an ablation). ``space`` names a file of ``search_spaces/`` (or a path) whose
    parameters fill ``sweep.space`` (entries given in ``sweep.space`` win). ``classics`` are networks
    trained beside a search on the same budget, once each with the first seed, before the sampled
    trials and never pruned (``{name: {arch: NAME, knobs: {...}}}``, arch defaulting to the name;
    ``arch.knobs`` do not apply to them); their arms are ``classic NAME``. ``conditional``,
    ``max_flops`` and ``max_params`` are for searches of the classics' space (:mod:`nasplay.sweep.conditional`):
    a classic's knobs are then its base's own.

    ``tune`` gives every arm the same chance: a grid of settings tuned per arm (``{optim.lr: [0.01, 0.1]}``,
    keys ``optim.*`` / ``trainer.*`` / ``data.*``), each value trained with each of ``tune_seeds`` (seeds the
    comparison does not use) and judged by the study's first objective on the validation split; each
    arm's final seeds then train with its best value. ``tune_on`` judges the settings by another measure of
    the tuning trials (:data:`TUNE_ON`; a time to target: the setting whose seeds all reach it soonest).
    ``budgets`` runs the comparison at several training budgets, multiples of ``trainer.max_epochs`` (tuning
    runs at the first).
    """

    name: str = "${arch.name}"
    description: str = ""
    kind: str | None = None
    bases: list[str] = field(default_factory=list)
    knob: str | None = None
    values: list[Any] = field(default_factory=list)
    arms: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    keep: str | None = None
    keep_to: str | None = None  # the arm every other arm's compute is solved to (default: each arm's base network)
    # What keep re-solves: null, every width by one multiplier; group_width, only the grouped convs' channels per group
    # (ResNeXt's templates, Table 3: the rest of the network stays as it is)
    keep_by: str | None = None
    tol: float = 0.02
    space: str | None = None
    classics: dict[str, Any] | None = None
    tune: dict[str, Any] | None = field(default_factory=dict)  # null turns off a tuning the experiment file sets
    tune_seeds: list[int] = field(default_factory=lambda: [100, 101])
    tune_on: str | None = None  # what the tuning judges by (TUNE_ON); null: the study's first objective
    budgets: list[float] = field(default_factory=list)
    pairs: int | None = None  # a paired design-space comparison: this many architectures from sweep.space, each under every arm
    outcomes: OutcomesConfig = field(default_factory=OutcomesConfig)  # primary / secondary outcomes, margins, claims
    # A conditional search (nasplay.sweep.conditional): the space's arch is a list of bases, each trial samples
    # only the knobs (and values) its base accepts, as BASE.KNOB; null or false: every parameter for every trial.
    conditional: bool | None = None
    max_flops: float | None = None  # a sampled network over this (FLOPs of one image as trained) is refused untrained
    max_params: float | None = None

    def check(self) -> ExperimentConfig:
        if not self.name or "/" in self.name:
            raise ValueError(f"experiment.name must be a non-empty name without '/', got {self.name!r}")
        if not self.seeds:
            raise ValueError("experiment.seeds must list at least one seed")
        for s in self.seeds:
            _int_at_least("experiment.seeds[]", s, 0)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"experiment.seeds must not repeat a seed, got {list(self.seeds)}")
        if self.keep is not None and self.keep not in KEEPS:
            raise ValueError(f"experiment.keep must be one of {list(KEEPS)} or null, got {self.keep!r}")
        if self.keep_by is not None and self.keep_by not in KEEP_BY:
            raise ValueError(f"experiment.keep_by must be one of {list(KEEP_BY)} or null, got {self.keep_by!r}")
        if self.keep_by is not None and self.keep is None:
            raise ValueError(f"experiment.keep_by={self.keep_by} re-solves that knob to hold compute: set experiment.keep=flops|params")
        if self.keep_to is not None and self.keep is None:
            raise ValueError(f"experiment.keep_to={self.keep_to} solves arms to that arm's compute: set experiment.keep=flops|params")
        if self.knob is None and self.values:
            raise ValueError("experiment.values is set but experiment.knob is not: name the knob the values are for")
        if self.knob is not None and not self.values:
            raise ValueError(f"experiment.knob={self.knob} needs experiment.values (the arms), e.g. [on, off]")
        if not (isinstance(self.tol, (int, float)) and 0 < self.tol < 1):
            raise ValueError(f"experiment.tol must be in (0, 1), got {self.tol!r}")
        for name, arm in self.arms.items():
            if not isinstance(arm, dict) or set(arm) - {"arch", "knobs"}:
                raise ValueError(f"experiment.arms.{name} must be a mapping with 'arch' and/or 'knobs', got {arm!r}")
        if self.kind is not None and self.kind not in EXPERIMENT_KINDS:
            raise ValueError(f"experiment.kind must be one of {list(EXPERIMENT_KINDS)} or null, got {self.kind!r}")
        self.tune = dict(self.tune or {})  # null: no tuning (an experiment file's own turned off)
        for name, values in self.tune.items():
            if not name.startswith(("optim.", "trainer.", "data.")):
                raise ValueError(f"experiment.tune.{name}: a tuned setting is optim.*, trainer.* or data.* (e.g. optim.lr)")
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"experiment.tune.{name}: a non-empty list of values to try, got {values!r}")
        if self.tune_on is not None and self.tune_on not in TUNE_ON:
            raise ValueError(f"experiment.tune_on must be one of {list(TUNE_ON)} or null (the study's first objective), "
                             f"got {self.tune_on!r}")
        if self.tune:
            for s in self.tune_seeds:
                _int_at_least("experiment.tune_seeds[]", s, 0)
            if not self.tune_seeds or set(self.tune_seeds) & set(self.seeds):
                raise ValueError(f"experiment.tune_seeds must be seeds the comparison does not use: {list(self.tune_seeds)} "
                                 f"vs experiment.seeds {list(self.seeds)}")
        if self.pairs is not None:
            _int_at_least("experiment.pairs", self.pairs, 1)
        for b in self.budgets:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0:
                raise ValueError(f"experiment.budgets: each budget is a positive multiple of trainer.max_epochs, got {b!r}")
        if len(set(self.budgets)) != len(self.budgets):
            raise ValueError(f"experiment.budgets must not repeat a budget, got {list(self.budgets)}")
        for name, arm in (self.classics or {}).items():
            if arm is not None and (not isinstance(arm, dict) or set(arm) - {"arch", "knobs"}):
                raise ValueError(f"experiment.classics.{name} must be null or a mapping with 'arch' and/or 'knobs', got {arm!r}")
        self.outcomes.check()
        return self


@dataclass
class NasplayConfig:
    """The root config of ``python -m nasplay``."""

    arch: ArchConfig = field(default_factory=ArchConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    report: ReportConfig = field(default_factory=ReportConfig)  # how the end-of-study report tests
    runs_dir: str = "runs"
    study: str = "${experiment.name}"  # the Optuna study's name and the last part of its directory
    progress: bool | None = None  # the live display; null: when stdout is a terminal
    progress_interval: float = 60.0  # seconds between progress lines (with ETA) when there is no live display

    def check(self) -> NasplayConfig:
        from nasplay.space.load import genome_label, is_genome_file

        # arch=path/to/net.yaml: the experiment (and its study) take the file's stem, not its path, as their names
        if is_genome_file(self.experiment.name):
            if self.study == self.experiment.name:
                self.study = genome_label(self.study)
            self.experiment.name = genome_label(self.experiment.name)
        for part in (self.data, self.optim, self.trainer, self.logger, self.sweep, self.experiment, self.report):
            part.check()
        if isinstance(self.progress_interval, bool) or not isinstance(self.progress_interval, (int, float)) \
                or not self.progress_interval > 0:
            raise ValueError(f"progress_interval must be a positive number of seconds, got {self.progress_interval!r}")
        if not self.study or "/" in self.study:
            raise ValueError(f"study must be a non-empty name without '/', got {self.study!r}")
        if (self.experiment.tune or self.experiment.budgets or self.experiment.pairs) and self.sweep.sampler != "grid":
            raise ValueError("experiment.tune, experiment.budgets and experiment.pairs run a grid of arms x seeds (sweep=grid), "
                             f"not sweep.sampler={self.sweep.sampler}")
        if self.experiment.pairs and not self.sweep.space:
            raise ValueError("experiment.pairs samples architectures from sweep.space (or experiment.space): give it one")
        if self.trainer.distributed and (not self.sweep.storage or self.sweep.storage.endswith(".journal")):
            raise ValueError("trainer: a DDP trial (trainer.strategy=ddp*, trainer.devices>1) needs an RDB sweep.storage "
                             "(sqlite:///PATH.db, postgresql://...): its pruning decision reaches the study through it")
        return self


def register_configs() -> None:
    """Register the schema with Hydra's ConfigStore (``conf/config.yaml`` starts from ``nasplay_schema``)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    node = OmegaConf.structured(NasplayConfig)
    # Open mappings: `arch.knobs.skip=none` works without Hydra's `+` (their keys are checked later).
    for key in OPEN_MAPPINGS:
        OmegaConf.set_struct(OmegaConf.select(node, key), False)
    ConfigStore.instance().store(name="nasplay_schema", node=node)


def _int_at_least(name: str, v: Any, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def _check_param(name: str, spec: Any) -> None:
    if name not in ("arch", "seed") and not name.startswith(SPACE_PREFIXES):
        raise ValueError(f"sweep.space.{name}: a parameter is 'arch', 'seed' or starts with one of {list(SPACE_PREFIXES)}")
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError(f"sweep.space.{name}: an empty list of choices")
        return
    if isinstance(spec, dict):
        allowed = {"low", "high", "log", "step", "int"}
        if set(spec) - allowed or not {"low", "high"} <= set(spec):
            raise ValueError(f"sweep.space.{name}: a range is a mapping with low and high (and log, step, int); got {spec!r}")
        if not spec["low"] < spec["high"]:
            raise ValueError(f"sweep.space.{name}: low must be < high, got {spec['low']} and {spec['high']}")
        return
    raise ValueError(f"sweep.space.{name}: expected a list of choices or {{low, high, ...}}, got {spec!r}")
