"""What a running study shows: a live panel on a terminal, one line per trial elsewhere (logs, tests)."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text


class Progress:
    """Counts of trials done / running / pruned / failed, the best value so far and the trial in flight."""

    def __init__(self, console: Console, *, live: bool, study: str, total: int | None, objective: str, maximize: bool):
        self.console = console
        self.study, self.total, self.objective, self.maximize = study, total, objective, maximize
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.best: tuple[float, str] | None = None
        self.current = ""
        self.epoch = ""
        self.started = time.perf_counter()
        self._live = Live(console=console, refresh_per_second=2, transient=False, get_renderable=self._render) if live else None

    @property
    def live(self) -> bool:
        """Whether the live panel is on (a terminal), rather than one line per trial."""
        return self._live is not None

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self.current = self.epoch = ""
            self._live.stop()

    def seed_counts(self, trials: list[Any]) -> None:
        """Start from the trials already in the storage (a resumed study)."""
        for t in trials:
            if t.state.name in self.counts:
                self.counts[t.state.name] += 1
                self._offer(t.values[0] if t.values else None, t.user_attrs.get("arm", ""), t.number)

    def trial_started(self, number: int, arm: str, seed: int) -> None:
        self.current, self.epoch = f"#{number} {arm} seed={seed}", ""

    def epoch_done(self, epoch: int, max_epochs: int, value: float | None) -> None:
        v = "" if value is None else f"  {self.objective} {value:.4f}"
        self.epoch = f"epoch {epoch + 1}/{max_epochs}{v}"

    def trial_finished(self, number: int, state: str, arm: str, seed: int, value: float | None, seconds: float,
                       reason: str = "", prefix: str = "") -> None:
        self.counts[state] = self.counts.get(state, 0) + 1
        self._offer(value if state == "COMPLETE" else None, arm, number)
        self.current = self.epoch = ""
        shown = f"{self.objective}={value:.4f}" if state != "FAIL" and value is not None and math.isfinite(value) else ""
        line = f"{prefix}trial {number:>3} {state:<8} {arm}  seed={seed}  {shown}  ({seconds:.1f} s){'  ' + reason if reason else ''}"
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _offer(self, value: float | None, arm: str, number: int) -> None:
        if value is None or not math.isfinite(value):
            return
        if self.best is None or (value > self.best[0] if self.maximize else value < self.best[0]):
            self.best = (value, f"#{number} {arm}")

    def _render(self) -> Group:
        total = f"/{self.total}" if self.total else ""
        c = self.counts
        head = Text.assemble((self.study, "bold"), f"  done {c['COMPLETE']}{total}  running {1 if self.current else 0}  "
                             f"pruned {c['PRUNED']}  failed {c['FAIL']}  {time.perf_counter() - self.started:.0f} s")
        best = f"best {self.objective} {self.best[0]:.4f} ({self.best[1]})" if self.best else f"best {self.objective} -"
        lines = [head, Text(best)]
        if self.current:
            lines.append(Text(f"now {self.current}  {self.epoch}".rstrip()))
        return Group(*lines)


class EpochProgress(pl.Callback):
    """Feeds the live panel the epoch and the monitored value of the trial in flight."""

    def __init__(self, progress: Progress, monitor: str):
        self.progress, self.monitor = progress, monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        v = trainer.callback_metrics.get(self.monitor)
        self.progress.epoch_done(trainer.current_epoch, trainer.max_epochs or 0, None if v is None else float(v))
