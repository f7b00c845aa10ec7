"""Per-trial tracking: one W&B run (or CSV log) per trial, and the learning curves nasplay keeps itself.

Conventions: W&B project ``logger.project`` (``nasplay``), entity ``logger.entity``; group
``<study>/<arm>``, so W&B's default grouped charts draw one line per arm with its spread over seeds;
run name ``<arm> seed=<seed>``; job type ``trial``; tags ``study:<study>``, ``knob=value`` and
``logger.tags``. Config: flat keys ``arm``, ``seed``, ``study``, ``experiment`` and each knob (filter
and group by them in the W&B UI) beside the resolved config (secrets masked), ``genome`` (its dict),
``genome_hash``, ``params``, ``flops`` and ``trial`` (number, arm, seed, knobs). The learning rate is
logged every step (``lr-<optimizer>``, Lightning's ``LearningRateMonitor``). W&B records the git
commit and host as usual. Runs are offline unless ``logger.mode=online`` or ``WANDB_MODE`` says
otherwise, and live in ``<study dir>/wandb``. A run is always finished, with exit code 1 when the
trial failed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from nasplay.space.knobs.parse import format_value
from nasplay.track.config import TRACKER_TARGETS, WANDB_MODES, LoggerConfig


@dataclass
class TrialInfo:
    """What a tracker records about a trial before it trains."""

    study: str
    number: int
    arm: str
    seed: int
    knobs: dict[str, Any]
    genome: Any  # nasplay Genome
    params: int
    flops: int
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config, secrets already masked

    @property
    def tags(self) -> list[str]:
        return [f"{k}={format_value(v)}"[:64] for k, v in self.knobs.items()]


def study_tag(study: str) -> str:
    """The tag every W&B run of a study carries (its trials and its report): ``study:<name>``."""
    return f"study:{study}"[:64]


def flat_keys(info: TrialInfo) -> dict[str, Any]:
    """The flat config keys of a trial's run: ``arm``, ``seed``, ``study``, ``experiment`` and each knob."""
    exp = info.config.get("experiment")
    flat: dict[str, Any] = {"arm": info.arm, "seed": info.seed, "study": info.study,
                            "experiment": exp.get("name", "") if isinstance(exp, dict) else str(exp or "")}
    for k, v in info.knobs.items():
        key = k if k not in flat and k not in info.config and k not in RESERVED else f"knob.{k}"
        flat[key] = v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
    return flat


# Config keys of a trial's run besides the resolved config's groups; "experiment" is the flat name, its group
# is "experiment_config".
RESERVED = ("genome", "genome_hash", "params", "flops", "trial", "experiment_config")


class CurvesLogger(Logger):
    """Keeps every metric Lightning logs as ``(epoch, step, metric, value)`` rows for ``curves.csv``.

    Under ``ddp_spawn`` the logger is pickled into the ranks, and rank 0 logs there, not in the trial's
    process: a copy in another process appends its rows to a JSON-lines spool file, which :attr:`rows`
    reads back in the process that made the logger.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[tuple[int, int, str, float]] = []
        self._pid = os.getpid()
        # the file a rank in another process (ddp_spawn, ddp_fork) writes to; created only if one does
        self._spool = os.path.join(tempfile.gettempdir(), f"nasplay-curves-{self._pid}-{uuid.uuid4().hex}.jsonl")

    @property
    def rows(self) -> list[tuple[int, int, str, float]]:
        if os.getpid() == self._pid and os.path.exists(self._spool):
            with open(self._spool) as f:
                self._rows.extend(tuple(json.loads(line)) for line in f if line.strip())
            os.remove(self._spool)
        return self._rows

    @property
    def name(self) -> str:
        return "curves"

    @property
    def version(self) -> int:
        return 0

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        epoch = int(metrics.get("epoch", -1))
        # the per-step learning rate (LearningRateMonitor) goes to W&B; curves.csv keeps the per-epoch metrics
        rows = [(epoch, -1 if step is None else int(step), k, float(v)) for k, v in metrics.items()
                if k != "epoch" and not k.startswith("lr-")]
        if os.getpid() == self._pid:
            self._rows.extend(rows)
        else:  # a spawned rank: the trial's process reads these back
            with open(self._spool, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)


class Tracker:
    """Logs one trial nowhere but nasplay's own curves; the base of the W&B and CSV trackers."""

    def __init__(self, cfg: LoggerConfig, study_dir: Path):
        self.cfg = cfg
        self.study_dir = Path(study_dir)
        self.curves = CurvesLogger()
        self.run_id = ""

    def start(self, info: TrialInfo) -> list[Logger]:
        """The Lightning loggers for this trial's ``fit``."""
        self.curves = CurvesLogger()
        return [self.curves]

    def finish(self, state: str, metrics: dict[str, float], fail_reason: str = "") -> None:
        """Close the trial's run; ``state`` is COMPLETE, PRUNED or FAIL."""

    def callbacks(self) -> list[Any]:
        """Lightning callbacks this tracker needs in the trial's ``fit``."""
        return []


class WandbTracker(Tracker):
    """One W&B run per trial, through Lightning's ``WandbLogger``."""

    def __init__(self, cfg: LoggerConfig, study_dir: Path):
        super().__init__(cfg, study_dir)
        self.run: Any = None

    @property
    def mode(self) -> str:
        env = os.environ.get("WANDB_MODE", "")
        return self.cfg.mode or (env if env in WANDB_MODES else "offline")

    def start(self, info: TrialInfo) -> list[Logger]:
        import wandb  # slow to import: only when a trial logs to W&B
        from lightning.pytorch.loggers import WandbLogger

        loggers = super().start(info)
        config = {**info.config, "experiment_config": info.config.get("experiment", {}), **flat_keys(info),
                  "genome": info.genome.to_dict(), "genome_hash": info.genome.hash, "params": info.params, "flops": info.flops,
                  "trial": {"number": info.number, "arm": info.arm, "seed": info.seed, "knobs": info.knobs}}
        self.study_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.cfg.project, entity=self.cfg.entity, group=f"{info.study}/{info.arm}", job_type="trial",
            name=f"{info.arm} seed={info.seed}", tags=list(dict.fromkeys([study_tag(info.study), *info.tags, *self.cfg.tags])),
            config=config, dir=str(self.study_dir), mode=self.mode, reinit="finish_previous",
            # no console capture (it fights the live display), no system-stats sampler, no code snapshot; git and
            # host metadata are recorded as W&B always does
            settings=wandb.Settings(console="off", x_disable_stats=True, save_code=False, silent=True),
        )
        self.run_id = self.run.id
        self.run.define_metric("trainer/global_step")
        self.run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
        return [WandbLogger(experiment=self.run), *loggers]

    def callbacks(self) -> list[Any]:
        from lightning.pytorch.callbacks import LearningRateMonitor

        return [LearningRateMonitor(logging_interval="step")]  # lr-<optimizer> at every step

    def finish(self, state: str, metrics: dict[str, float], fail_reason: str = "") -> None:
        if self.run is None:
            return
        try:
            summary: dict[str, Any] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            summary["state"] = state
            if fail_reason:
                summary["fail_reason"] = fail_reason
            self.run.summary.update(summary)
        finally:
            self.run.finish(exit_code=1 if state == "FAIL" else 0)
            self.run = None


class CsvTracker(Tracker):
    """Lightning's CSV logs: ``<study dir>/csv/trial_<number>/metrics.csv`` and ``hparams.yaml``."""

    def start(self, info: TrialInfo) -> list[Logger]:
        from lightning.pytorch.loggers import CSVLogger

        loggers = super().start(info)
        csv = CSVLogger(save_dir=str(self.study_dir), name="csv", version=f"trial_{info.number}")
        csv.log_hyperparams({**info.config, "genome_hash": info.genome.hash, "params": info.params, "flops": info.flops,
                             "trial": {"number": info.number, "arm": info.arm, "seed": info.seed, "knobs": info.knobs}})
        self.run_id = f"csv/trial_{info.number}"
        return [csv, *loggers]


def make_tracker(cfg: LoggerConfig, study_dir: Path) -> Tracker:
    """The tracker ``logger.kind`` names, built from its ``_target_`` node (the config and the study directory are
    passed as they are: through the node, OmegaConf would turn the config into a mapping)."""
    return instantiate({"_target_": TRACKER_TARGETS[cfg.kind], "_partial_": True})(cfg, study_dir)
