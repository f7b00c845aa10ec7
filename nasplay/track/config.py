"""The ``logger`` config group: where a trial's metrics go (W&B, CSV files or nowhere)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The trackers by ``logger.kind``: each the ``_target_`` nasplay.track.tracker.make_tracker builds with
# ``hydra.utils.instantiate`` (called with the logger config and the study directory).
TRACKER_TARGETS = {"wandb": "nasplay.track.tracker.WandbTracker", "csv": "nasplay.track.tracker.CsvTracker",
                   "none": "nasplay.track.tracker.Tracker"}
LOGGERS = tuple(TRACKER_TARGETS)
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    """``kind=wandb`` makes every trial one W&B run, offline unless ``mode=online`` or ``WANDB_MODE`` says
    otherwise; ``kind=csv`` writes Lightning CSV logs; ``kind=none`` keeps only nasplay's own curves.csv."""

    kind: str = "wandb"
    project: str = "nasplay"
    entity: str | None = None
    mode: str | None = None  # None: $WANDB_MODE when set, else offline
    tags: list[str] = field(default_factory=list)  # extra tags on every run, after the knob=value tags

    def check(self) -> LoggerConfig:
        if self.kind not in LOGGERS:
            raise ValueError(f"logger.kind must be one of {list(LOGGERS)}, got {self.kind!r}")
        if self.mode is not None and self.mode not in WANDB_MODES:
            raise ValueError(f"logger.mode must be one of {list(WANDB_MODES)} or null, got {self.mode!r}")
        if not self.project:
            raise ValueError("logger.project must not be empty")
        return self
