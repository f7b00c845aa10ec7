"""What a running study shows: a live panel on a terminal, one line per trial elsewhere (logs, tests).

Both say how long the rest will take: the ETA is the mean duration of the finished trials times the
trials still to run (divided among the trials running at once), less what the running trial has done,
measured by its batches. Without a terminal (a SLURM log) a progress line with the ETA is printed every
``progress_interval`` seconds.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import lightning.pytorch as pl
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text


def format_seconds(s: float) -> str:
    """``75`` -> ``1m15s``, ``3700`` -> ``1h01m``."""
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counts of trials done / running / pruned / failed, the best value so far, the trial in flight and the ETA."""

    def __init__(self, console: Console, *, live: bool, study: str, total: int | None, objective: str, maximize: bool,
                 interval: float = 60.0, prefix: str = ""):
        self.console = console
        self.study, self.total, self.objective, self.maximize = study, total, objective, maximize
        self.interval, self.prefix = interval, prefix
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.best: tuple[float, str] | None = None
        self.current = ""
        self.epoch = ""
        self.value = ""  # the running trial's last monitored value, as shown
        self.durations: list[float] = []  # seconds of the trials that finished (COMPLETE or PRUNED)
        self.running = 0  # trials running in the whole study (other workers' included), when known
        self.fraction = 0.0  # of the running trial's training done (epochs and batches)
        self.trial_began: float | None = None
        self.started = time.perf_counter()
        self._live = Live(console=console, refresh_per_second=2, transient=False, get_renderable=self._render) if live else None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """Whether the live panel is on (a terminal), rather than one line per trial."""
        return self._live is not None

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.start()
        else:  # logs: a progress line every `interval` seconds
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="nasplay-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._live is not None:
            self.current = self.epoch = ""
            self._live.stop()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.note(self.status_line())

    def seed_counts(self, trials: list[Any]) -> None:
        """Start from the trials already in the storage (a resumed study)."""
        for t in trials:
            if t.state.name in self.counts:
                self.counts[t.state.name] += 1
                self._offer(t.values[0] if t.values else None, t.user_attrs.get("arm", ""), t.number)
                if t.state.name != "FAIL" and isinstance(t.user_attrs.get("duration_s"), (int, float)):
                    self.durations.append(float(t.user_attrs["duration_s"]))

    def sync(self, trials: list[Any]) -> None:
        """The study's counts as the storage has them (other workers' trials included)."""
        for s in self.counts:
            self.counts[s] = sum(t.state.name == s for t in trials)
        self.running = sum(t.state.name == "RUNNING" for t in trials)

    def trial_started(self, number: int, arm: str, seed: int) -> None:
        self.current, self.epoch, self.value = f"#{number} {arm} seed={seed}", "", ""
        self.trial_began, self.fraction = time.perf_counter(), 0.0

    def epoch_done(self, epoch: int, max_epochs: int, value: float | None) -> None:
        self.value = "" if value is None else f"{self.objective} {value:.4f}"
        self.epoch = f"epoch {epoch + 1}/{max_epochs}" + (f"  {self.value}" if self.value else "")

    def batch_done(self, batch: int, batches: int, epoch: int, max_epochs: int) -> None:
        """Within the epoch: ``batch`` of ``batches`` training batches done in epoch ``epoch`` (0-based)."""
        self.epoch = f"epoch {epoch + 1}/{max_epochs} batch {batch}/{batches}" + (f"  (last {self.value})" if self.value else "")
        if max_epochs > 0 and batches > 0:
            self.fraction = min(1.0, (epoch + batch / batches) / max_epochs)

    def trial_finished(self, number: int, state: str, arm: str, seed: int, value: float | None, seconds: float,
                       reason: str = "", prefix: str = "") -> None:
        self.counts[state] = self.counts.get(state, 0) + 1
        if state in ("COMPLETE", "PRUNED"):
            self.durations.append(seconds)
        self._offer(value if state == "COMPLETE" else None, arm, number)
        self.current = self.epoch = ""
        self.trial_began, self.fraction = None, 0.0
        shown = f"{self.objective}={value:.4f}" if state != "FAIL" and value is not None and math.isfinite(value) else ""
        eta = self.eta()
        left = f"  [{self._done_text()}{', ETA ' + format_seconds(eta) if eta is not None else ''}]" if self.total else ""
        line = (f"{prefix}trial {number:>3} {state:<8} {arm}  seed={seed}  {shown}  ({seconds:.1f} s){'  ' + reason if reason else ''}"
                f"{left}")
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until the study's last trial finishes (``None`` without a total or a finished trial)."""
        if not self.total or not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        done = self.counts["COMPLETE"] + self.counts["PRUNED"]
        remaining = max(0, self.total - done)
        if remaining == 0:
            return 0.0
        current_left = 0.0
        if self.trial_began is not None:  # this worker's trial in flight: what is left of it
            elapsed = (now if now is not None else time.perf_counter()) - self.trial_began
            current_left = elapsed * (1 - self.fraction) / self.fraction if self.fraction > 0 else max(0.0, mean - elapsed)
            remaining -= 1
        at_once = max(1, self.running + (self.trial_began is not None))  # trials running side by side
        return current_left + remaining * mean / at_once

    def _done_text(self) -> str:
        c = self.counts
        return f"{c['COMPLETE'] + c['PRUNED']}/{self.total} done"

    def status_line(self) -> str:
        """One line for logs: counts, the trial in flight (epoch, batch), elapsed time and ETA."""
        c = self.counts
        total = f"/{self.total}" if self.total else ""
        eta = self.eta()
        now = f"; now {self.current} {self.epoch}".rstrip() if self.current else ""
        return (f"{self.prefix}progress {self.study}: done {c['COMPLETE']}{total}, pruned {c['PRUNED']}, failed {c['FAIL']}{now}; "
                f"elapsed {format_seconds(time.perf_counter() - self.started)}; "
                f"ETA {format_seconds(eta) if eta is not None else '-'}")

    def _offer(self, value: float | None, arm: str, number: int) -> None:
        if value is None or not math.isfinite(value):
            return
        if self.best is None or (value > self.best[0] if self.maximize else value < self.best[0]):
            self.best = (value, f"#{number} {arm}")

    def _render(self) -> Group:
        total = f"/{self.total}" if self.total else ""
        c = self.counts
        eta = self.eta()
        head = Text.assemble((self.study, "bold"), f"  done {c['COMPLETE']}{total}  running {1 if self.current else 0}  "
                             f"pruned {c['PRUNED']}  failed {c['FAIL']}  {format_seconds(time.perf_counter() - self.started)}"
                             f"  ETA {format_seconds(eta) if eta is not None else '-'}")
        best = f"best {self.objective} {self.best[0]:.4f} ({self.best[1]})" if self.best else f"best {self.objective} -"
        lines = [head, Text(best)]
        if self.current:
            lines.append(Text(f"now {self.current}  {self.epoch}".rstrip()))
        return Group(*lines)


class EpochProgress(pl.Callback):
    """Feeds the progress display the epoch, the batch within it and the monitored value of the trial in flight.

    A copy pickled into DDP ranks (``ddp_spawn``) has no display: it does nothing there.
    """

    def __init__(self, progress: Progress | None, monitor: str):
        self.progress, self.monitor = progress, monitor

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.progress is None:
            return
        n = trainer.num_training_batches
        self.progress.batch_done(batch_idx + 1, int(n) if isinstance(n, (int, float)) and math.isfinite(n) else 0,
                                 trainer.current_epoch, trainer.max_epochs or 0)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.progress is None:
            return
        v = trainer.callback_metrics.get(self.monitor)
        self.progress.epoch_done(trainer.current_epoch, trainer.max_epochs or 0, None if v is None else float(v))


class TrainingBegan(pl.Callback):
    """Notes that training began (the data set up, the network built): a failure before it is a setup error.

    In this process only: a DDP rank's copy (``ddp_spawn``) cannot tell the trial's process.
    """

    def __init__(self) -> None:
        self.began = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.began = True
