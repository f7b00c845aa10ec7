"""The study runner end to end, in-process, with the real parts: Hydra-composed configs, Optuna storages
(SQLite and journal files), Lightning training on the embedded digits, W&B offline runs read back from disk."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import optuna
import pytest
import torch
from rich.console import Console
from wandb_read import read_run, run_files

from nasplay.experiment import run_experiment as run_study
from nasplay.sweep.plan import make_plan
from nasplay.sweep.results import read_csv
from nasplay.sweep.storage import make_storage
from nasplay.track.secrets import mask, mask_text

pytestmark = pytest.mark.slow  # end-to-end studies and a subprocess

# A study small enough for a test: LeNet-5 (its common modern form) on 240 digits at 16 x 16, two epochs.
TINY = ("arch=lenet5_common", "data.limit=240", "data.batch_size=32", "trainer.max_epochs=2", "trainer.log_every_n_steps=1",
        "sweep=grid", "experiment.name=tiny")
ACTIVATION = ("experiment.knob=activation", "experiment.values=[relu, tanh]")


def run(cfg, **kw):
    """``run_study`` with its printed output captured: (result, text)."""
    buf = io.StringIO()
    result = run_study(cfg, console=Console(file=buf, width=200), **kw)
    return result, buf.getvalue()


def stored(result, storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=result.name, storage=storage or make_storage(None, result.study_dir)).get_trials()


def curves(study_dir) -> dict[tuple[int, str], list[float]]:
    out: dict[tuple[int, str], list[float]] = {}
    for r in read_csv(Path(study_dir) / "curves.csv"):
        out.setdefault((int(r["trial"]), r["metric"]), []).append(float(r["value"]))
    return out


def points(trials) -> list[tuple]:
    return sorted((t.user_attrs["arm"], t.user_attrs["seed"]) for t in trials if t.state.name in ("COMPLETE", "PRUNED"))


def test_tiny_study_end_to_end(compose, tmp_path):
    """A 2 arms x 2 seeds grid on SQLite with W&B: storage, results.csv, curves.csv and the runs all agree."""
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    cfg = compose(*TINY, *ACTIVATION, "experiment.seeds=[0, 1]", "logger=wandb", f"runs_dir={tmp_path}", f"sweep.storage={db}")
    result, text = run(cfg)
    assert result.counts["COMPLETE"] == 4 and result.ran == 4
    study_dir = Path(result.study_dir)
    assert study_dir == tmp_path / "tiny" / "tiny"

    trials = stored(result, db)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    # seed-major order: every arm once per seed before the next seed
    assert [(t.user_attrs["arm"], t.user_attrs["seed"]) for t in trials] == [
        ("activation=relu", 0), ("activation=tanh", 0), ("activation=relu", 1), ("activation=tanh", 1)]
    for t in trials:
        ua = t.user_attrs
        assert ua["knobs"] == {"activation": ua["arm"].split("=")[1]} and ua["arch"] == "lenet5_common"
        assert len(ua["genome_hash"]) == 12 and ua["params"] > 10_000 and ua["flops"] > 100_000
        assert t.value == ua["metrics"]["val/acc"] and 0 <= t.value <= 1
        assert sorted(t.intermediate_values) == [0, 1]  # the pruning callback reported every epoch
    assert trials[0].user_attrs["genome_hash"] != trials[1].user_attrs["genome_hash"]  # relu vs tanh
    assert trials[0].user_attrs["genome_hash"] == trials[2].user_attrs["genome_hash"]  # same arm, other seed

    rows = read_csv(study_dir / "results.csv")
    assert len(rows) == len(trials)
    for row, t in zip(rows, trials):  # results.csv and the storage agree trial by trial
        assert int(row["number"]) == t.number and row["state"] == t.state.name == "COMPLETE"
        assert row["arm"] == t.user_attrs["arm"] and row["activation"] == t.user_attrs["knobs"]["activation"]
        assert int(row["seed"]) == t.user_attrs["seed"] and float(row["value"]) == t.value
        assert float(row["test/acc"]) == t.user_attrs["metrics"]["test/acc"]
        assert int(row["params"]) == t.user_attrs["params"] and int(row["flops"]) == t.user_attrs["flops"]
        assert row["genome_hash"] == t.user_attrs["genome_hash"] and row["wandb_id"] == t.user_attrs["wandb_id"]
        assert (study_dir / "genomes" / f"{row['genome_hash']}.yaml").exists()

    curve = curves(study_dir)
    for t in trials:  # the learning curves hold what was reported to the pruner, epoch by epoch
        assert curve[(t.number, "val/acc")] == pytest.approx([t.intermediate_values[0], t.intermediate_values[1]], abs=1e-7)
        assert len(curve[(t.number, "train/loss")]) == 2

    read = list(map(read_run, run_files(study_dir)))
    runs = {r.id: r for r in read if r.job_type != "report"}  # the end-of-study report is a run of its own
    assert sorted(runs) == sorted(t.user_attrs["wandb_id"] for t in trials)
    assert [r.job_type for r in read].count("report") == 1
    for t in trials:
        r = runs[t.user_attrs["wandb_id"]]
        assert (r.project, r.group, r.exit_code) == ("nasplay", f"tiny/{t.user_attrs['arm']}", 0)
        assert f"activation={t.user_attrs['knobs']['activation']}" in r.tags
        assert r.config["genome_hash"] == t.user_attrs["genome_hash"] and r.config["params"] == t.user_attrs["params"]
        assert r.config["flops"] == t.user_attrs["flops"] and r.config["trial"]["seed"] == t.user_attrs["seed"]
        assert r.config["experiment"] == "tiny" == r.config["experiment_config"]["name"] and r.config["genome"]["stages"]
        assert r.config["sweep"]["storage"] == db  # no password in it to mask
        logged = [h["val/acc"] for h in r.history if "val/acc" in h]
        assert logged == pytest.approx(curve[(t.number, "val/acc")], abs=1e-7)
        assert r.summary["test/acc"] == pytest.approx(t.user_attrs["metrics"]["test/acc"]) and r.summary["state"] == "COMPLETE"

    assert "activation=relu" in text and "activation=tanh" in text and "±" in text
    saved = (study_dir / "config.yaml").read_text()
    assert "name: tiny" in saved and "activation" in saved

    # Resumed: a finished study does no new work and says so.
    result2, text2 = run(cfg)
    assert result2.ran == 0 and "is finished, nothing to do" in text2
    assert len(stored(result2, db)) == 4 and len(run_files(study_dir)) == 5  # four trials and the report, no new run

    # More seeds: only the new grid points run; no point twice.
    result3, _ = run(compose(*TINY, *ACTIVATION, "experiment.seeds=[0, 1, 2]", "logger=wandb", f"runs_dir={tmp_path}",
                             f"sweep.storage={db}"))
    trials = stored(result3, db)
    assert result3.ran == 2 and len(trials) == 6 and len(set(points(trials))) == 6
    assert len(read_csv(study_dir / "results.csv")) == 6


class Interrupt(pl.Callback):
    """Presses Ctrl-C (raises KeyboardInterrupt) as the second epoch of the ``at``-th fit starts."""

    def __init__(self, at: int):
        self.at, self.fits = at, 0

    def on_fit_start(self, trainer, pl_module):
        self.fits += 1

    def on_train_epoch_start(self, trainer, pl_module):
        if self.fits == self.at and trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_stopped_study_continues_where_it_stopped(compose, tmp_path):
    """Journal storage (the default), CSV logger: a study cut short by n_trials, then by Ctrl-C, then finished."""
    base = (*TINY, *ACTIVATION, "experiment.seeds=[0, 1]", "logger=csv", f"runs_dir={tmp_path}")
    result, text = run(compose(*base, "sweep.n_trials=1"))
    assert result.ran == 1 and "sweep.n_trials=1" in result.stopped
    with pytest.raises(KeyboardInterrupt):
        run(compose(*base), callbacks=(Interrupt(at=2),))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Lightning's SIG_IGN is undone
    trials = stored(result)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert trials[2].user_attrs["fail_reason"] == "interrupted" and trials[2].user_attrs["retry"] is True
    ckpt = Path(result.study_dir) / "ckpt"
    assert len(list(ckpt.glob("*/last.ckpt"))) == 1  # the interrupted trial's checkpoint, kept to resume from

    result, text = run(compose(*base))
    trials = stored(result)
    assert result.ran == 2 and [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert (trials[3].user_attrs["arm"], trials[3].user_attrs["seed"]) == (trials[2].user_attrs["arm"], trials[2].user_attrs["seed"])
    assert points(trials) == sorted(set(points(trials))) and len(points(trials)) == 4
    assert len(curves(result.study_dir)[(3, "train/loss")]) == 1  # it continued from the checkpoint: one epoch left
    assert list(ckpt.glob("*/last.ckpt")) == []
    for t in trials:  # one CSV log per trial, holding its metrics
        assert (Path(result.study_dir) / "csv" / f"trial_{t.number}" / "metrics.csv").exists()
    assert [r["state"] for r in read_csv(Path(result.study_dir) / "results.csv")] == [t.state.name for t in trials]


def test_pruning_stops_a_hopeless_trial(compose, tmp_path):
    """Median pruning: after one good trial, a trial whose learning rate is far too small is stopped early."""
    cfg = compose(*TINY, "logger=none", f"runs_dir={tmp_path}", "data.limit=480", "trainer.max_epochs=4",
                  "sweep.space={optim.lr: [0.05, 1.0e-7]}", "experiment.seeds=[0]",
                  "sweep.pruner.kind=median", "sweep.pruner.n_startup_trials=1", "sweep.pruner.n_warmup_steps=0")
    result, text = run(cfg)
    good, hopeless = stored(result)
    assert good.state.name == "COMPLETE" and good.params == {"seed": 0, "optim.lr": 0.05}
    assert hopeless.state.name == "PRUNED" and hopeless.params["optim.lr"] == 1e-7
    assert len(good.intermediate_values) == 4 and len(hopeless.intermediate_values) < 4
    assert hopeless.user_attrs["pruned_epoch"] == max(hopeless.intermediate_values)
    row = read_csv(Path(result.study_dir) / "results.csv")[1]
    assert row["state"] == "PRUNED" and row["arm"] == "optim.lr=1e-07" and row["test/acc"] == ""
    assert "1 pruned" in text


class Sabotage(pl.Callback):
    """Raises the given exception during the n-th fit of the study (counted from 1)."""

    def __init__(self, errors: dict[int, BaseException]):
        self.errors, self.fits = errors, 0

    def on_fit_start(self, trainer, pl_module):
        self.fits += 1

    def on_train_epoch_end(self, trainer, pl_module):
        if self.fits in self.errors:
            raise self.errors[self.fits]


def test_failed_trials_are_recorded_and_the_study_goes_on(compose, tmp_path):
    """A diverging arm (lr 1e9: NaN loss), a trial that raises and one out of memory: FAIL with their reasons."""
    base = (*TINY, "logger=wandb", f"runs_dir={tmp_path}", "sweep.space={optim.lr: [0.05, 1.0e9]}", "experiment.seeds=[0, 1, 2]")
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    result, text = run(compose(*base), callbacks=(Sabotage({3: RuntimeError("boom"), 5: oom}),))
    trials = stored(result)
    assert result.ran == 6 and [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"]
    reasons = [t.user_attrs.get("fail_reason", "") for t in trials]
    assert reasons[1].startswith("diverged: training loss is") and reasons[3].startswith("diverged:")
    assert reasons[2] == "RuntimeError: boom"
    assert reasons[4] == "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert [r["fail_reason"] for r in read_csv(Path(result.study_dir) / "results.csv")] == reasons
    runs = {r.id: r for r in map(read_run, run_files(result.study_dir))}
    assert [runs[t.user_attrs["wandb_id"]].exit_code for t in trials] == [0, 1, 1, 1, 1, 1]  # every run finished
    assert runs[trials[2].user_attrs["wandb_id"]].summary["fail_reason"] == "RuntimeError: boom"
    assert "5 fail" in text and "diverged" in text

    # Failures are final unless asked: resuming does nothing; retry_failed reruns them (the sabotage is gone).
    assert run(compose(*base))[0].ran == 0
    result, _ = run(compose(*base, "sweep.retry_failed=true"))
    trials = stored(result)
    assert result.ran == 5
    assert [t.state.name for t in trials[6:]] == ["FAIL", "COMPLETE", "FAIL", "COMPLETE", "FAIL"]


def test_search_samplers_single_and_multi_objective(compose, tmp_path):
    """TPE over a learning-rate range and a width choice; NSGA-II trading accuracy against FLOPs."""
    cfg = compose(*TINY, "sweep=tpe", "sweep.n_trials=3", "logger=none", f"runs_dir={tmp_path}", "trainer.max_epochs=1",
                  "sweep.space={optim.lr: {low: 0.01, high: 0.1, log: true}, knobs.width: [0.5, 1.0]}")
    result, _ = run(cfg)
    trials = stored(result)
    assert result.counts["COMPLETE"] + result.counts["PRUNED"] == 3
    for t in trials:
        assert 0.01 <= t.params["optim.lr"] <= 0.1 and t.user_attrs["knobs"]["width"] == t.params["knobs.width"]
    rows = read_csv(Path(result.study_dir) / "results.csv")
    assert float(rows[0]["param.optim.lr"]) == trials[0].params["optim.lr"] and rows[0]["width"] in ("0.5", "1.0")
    assert rows[0]["arm"] == f"optim.lr={float(rows[0]['param.optim.lr']):g} width={rows[0]['width']}"

    cfg = compose(*TINY, "sweep=nsga2", "sweep.n_trials=2", "logger=none", f"runs_dir={tmp_path}", "study=pareto",
                  "trainer.max_epochs=1", "sweep.space={knobs.width: [0.25, 0.5]}", "sweep.options.population_size=2")
    result, _ = run(cfg)
    trials = stored(result)
    directions = optuna.load_study(study_name="pareto", storage=make_storage(None, result.study_dir)).directions
    assert [d.name for d in directions] == ["MAXIMIZE", "MINIMIZE"]
    for t in trials:
        assert t.values[1] == t.user_attrs["flops"]
    assert {"value_0", "value_1"} <= set(read_csv(Path(result.study_dir) / "results.csv")[0])


def test_secrets_are_masked(compose, tmp_path):
    url = "postgresql://nasplay:hunter2@127.0.0.1:9/studies"
    plan = make_plan(compose(*TINY, f"sweep.storage={url}", f"runs_dir={tmp_path}"), data_shape=(1, 16, 10))
    assert plan.resolved["sweep"]["storage"] == "postgresql://nasplay:***@127.0.0.1:9/studies"
    assert "hunter2" not in json.dumps(plan.resolved)
    with pytest.raises(ValueError) as e:  # nothing listens on port 9: the driver's error is masked too
        run(compose(*TINY, f"sweep.storage={url}", f"runs_dir={tmp_path}"))
    assert "cannot open" in str(e.value) and "hunter2" not in str(e.value)
    assert mask({"wandb": {"api_key": "abc"}, "url": "mysql://u:pw@h/d?password=pw2"}) == {
        "wandb": {"api_key": "***"}, "url": "mysql://u:***@h/d?password=***"}
    assert mask_text("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_command_line_runs_and_resumes(tmp_path):
    """`python -m nasplay experiment=ablate_skip debug=fdr`: one trial, files in the study directory only."""
    env = {**os.environ, "NASPLAY_CONF_DIR": str(Path(__file__).resolve().parents[1] / "conf")}
    cmd = [sys.executable, "-m", "nasplay", "experiment=ablate_skip", "debug=fdr", "runs_dir=out"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "study 'ablate_skip-fdr' (new)" in r.stdout and "ablate_skip-fdr: 1 complete" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no outputs/, .hydra/ or wandb/ beside it
    study_dir = tmp_path / "out" / "ablate_skip" / "ablate_skip-fdr"
    assert {"optuna.journal", "config.yaml", "results.csv", "curves.csv", "genomes"} <= {p.name for p in study_dir.iterdir()}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "is finished, nothing to do" in r.stdout
