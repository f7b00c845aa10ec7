"""Ctrl-C at every moment of a trial's life leaves no trial RUNNING, and the same command finishes the study.

Each test sends SIGINT to this process at one moment of the study loop (while it claims, between ask
and fit, mid-epoch, twice — the second while the trial's W&B run is being finished, which is where a
loaded machine once left a trial RUNNING — and during tell), then checks the storage and resumes.
"""

from __future__ import annotations

import io
import os
import signal
from collections import Counter

import lightning.pytorch as pl
import optuna
import pytest
from rich.console import Console

from nasplay.sweep.runner import run_study
from nasplay.sweep.storage import make_storage

pytestmark = pytest.mark.slow  # end-to-end studies interrupted and resumed

STUDY = ("arch=lenet5_common", "data.limit=320", "data.batch_size=32", "trainer.max_epochs=2", "sweep=grid",
         "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0]",
         "experiment.name=ctrlc", "progress=false")
POINTS = Counter({("activation=relu", 0): 1, ("activation=tanh", 0): 1})


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class CtrlCMidEpoch(pl.Callback):
    """SIGINT in the second training batch of the first trial's first epoch."""

    def __init__(self) -> None:
        self.sent = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == 1 and not self.sent:
            self.sent = True
            ctrl_c()


def trials_of(study_dir) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="ctrlc", storage=make_storage(None, study_dir)).get_trials()


def interrupted_then_resumed(compose, tmp_path, *, logger: str = "none", callbacks: tuple = ()) -> list[optuna.trial.FrozenTrial]:
    """Run the study until the planted Ctrl-C stops it; check nothing is left RUNNING; resume it to the end."""
    cfg = compose(*STUDY, f"runs_dir={tmp_path}", f"logger={logger}")
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, console=Console(file=io.StringIO(), width=200), callbacks=callbacks)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the loop gave the handler back
    study_dir = tmp_path / "ctrlc" / "ctrlc"
    cut = trials_of(study_dir)
    assert not [t for t in cut if t.state.name in ("RUNNING", "WAITING")], [(t.number, t.state.name) for t in cut]
    result = run_study(compose(*STUDY, f"runs_dir={tmp_path}", f"logger={logger}"), console=Console(file=io.StringIO(), width=200))
    assert result.complete and result.counts["RUNNING"] == 0
    after = trials_of(study_dir)
    assert Counter((t.params["arm"], t.params["seed"]) for t in after if t.state.name == "COMPLETE") == POINTS
    return cut


def test_ctrl_c_while_claiming_starts_no_trial(compose, tmp_path, monkeypatch):
    import nasplay.sweep.loop as loop

    real = loop.fail_stale
    calls = []

    def claiming(study, grace):  # runs under the study lock, just before ask()
        calls.append(1)
        if len(calls) == 1:
            ctrl_c()
        return real(study, grace)

    monkeypatch.setattr(loop, "fail_stale", claiming)
    assert interrupted_then_resumed(compose, tmp_path) == []  # stopped before asking: no trial at all


def test_ctrl_c_between_ask_and_fit_fails_the_trial_for_a_retry(compose, tmp_path, monkeypatch):
    import nasplay.sweep.trial as trial_mod

    real = trial_mod.suggest

    def suggest(trial, plan):
        spec = real(trial, plan)
        if trial.number == 0:
            ctrl_c()
        return spec

    monkeypatch.setattr(trial_mod, "suggest", suggest)
    cut = interrupted_then_resumed(compose, tmp_path)
    assert [(t.state.name, t.user_attrs["fail_reason"], t.user_attrs["retry"]) for t in cut] == [("FAIL", "interrupted", True)]


def test_ctrl_c_mid_epoch_fails_the_trial_for_a_retry(compose, tmp_path):
    cut = interrupted_then_resumed(compose, tmp_path, callbacks=(CtrlCMidEpoch(),))
    assert [(t.state.name, t.user_attrs["fail_reason"]) for t in cut] == [("FAIL", "interrupted")]


def test_a_second_ctrl_c_while_the_wandb_run_finishes_is_absorbed(compose, tmp_path, monkeypatch):
    """The moment of the race: SIGINT once mid-epoch, again while the trial's W&B run is being closed."""
    from nasplay.track.tracker import WandbTracker

    real = WandbTracker.finish
    seen = []

    def finish(self, state, metrics, fail_reason=""):
        seen.append(state)
        if len(seen) == 1:
            ctrl_c()
        return real(self, state, metrics, fail_reason)

    monkeypatch.setattr(WandbTracker, "finish", finish)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cut = interrupted_then_resumed(compose, tmp_path, logger="wandb", callbacks=(CtrlCMidEpoch(),))
    assert seen[0] == "FAIL"
    assert [(t.state.name, t.user_attrs["fail_reason"], bool(t.user_attrs.get("wandb_id"))) for t in cut] == [
        ("FAIL", "interrupted", True)]


def test_ctrl_c_during_tell_keeps_the_told_state(compose, tmp_path, monkeypatch):
    real = optuna.study.Study.tell

    def tell(self, trial, values=None, state=None, skip_if_finished=False):
        if getattr(trial, "number", None) == 0:
            ctrl_c()
        return real(self, trial, values, state=state, skip_if_finished=skip_if_finished)

    monkeypatch.setattr(optuna.study.Study, "tell", tell)
    cut = interrupted_then_resumed(compose, tmp_path)
    assert [t.state.name for t in cut] == ["COMPLETE"]  # trial 0 finished and was told; trial 1 never started
