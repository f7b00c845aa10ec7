"""One trial over several processes: DDP on 2 CPU processes (gloo), pruning decided on rank 0 reaching the
study; and the GPU path (workers pinned to devices, bf16 + channels_last), run only where CUDA exists."""

from __future__ import annotations

import io
import math

import optuna
import pytest
import torch
from rich.console import Console

from nasplay.sweep.results import read_csv
from nasplay.sweep.runner import run_study

pytestmark = pytest.mark.slow  # spawned DDP ranks

# Two grid points: a learning rate that learns, then one that cannot (median pruning stops it after epoch 0).
STUDY = ("arch=lenet5_common", "data.limit=480", "data.batch_size=32", "trainer.max_epochs=3", "trainer.test=false",
         "sweep=grid", "sweep.space={optim.lr: [0.05, 1.0e-7]}", "experiment.seeds=[0]", "experiment.name=ddp",
         "sweep.pruner.kind=median", "sweep.pruner.n_startup_trials=1", "sweep.pruner.n_warmup_steps=0", "logger=none")
DDP = ("trainer.strategy=ddp_spawn", "trainer.accelerator=cpu", "trainer.devices=2")


def test_ddp_trial_over_two_cpu_processes_is_pruned_and_the_study_knows(compose, tmp_path, capfd):
    """The learning rate that learns trains on one process; the hopeless one resumes the study under DDP on 2 gloo ranks."""
    db = f"sqlite:///{tmp_path / 'ddp.db'}"
    first = run_study(compose(*STUDY, "sweep.n_trials=1", f"runs_dir={tmp_path}", f"sweep.storage={db}"),
                      console=Console(file=io.StringIO()))
    assert first.counts["COMPLETE"] == 1
    capfd.readouterr()
    buf = io.StringIO()  # trainer.* may change when a study resumes: it does not change what a trial computes
    second = run_study(compose(*STUDY, *DDP, f"runs_dir={tmp_path}", f"sweep.storage={db}"), console=Console(file=buf, width=200))
    text = buf.getvalue()
    lightning = capfd.readouterr()
    logged = lightning.out + lightning.err  # Lightning announces each rank
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in logged and "distributed_backend=gloo" in logged
    good, hopeless = optuna.load_study(study_name="ddp", storage=db).get_trials()

    assert good.state.name == "COMPLETE" and good.params["optim.lr"] == 0.05, text
    assert sorted(good.intermediate_values) == [0, 1, 2] and good.value > 0.3
    assert hopeless.state.name == "PRUNED" and hopeless.params["optim.lr"] == 1e-7, text
    assert hopeless.system_attrs["ddp_pl:pruned"] is True  # decided on rank 0, in a spawned process
    assert list(hopeless.intermediate_values) == [0] and hopeless.user_attrs["pruned_epoch"] == 0
    assert hopeless.user_attrs["metrics"]["val/acc"] < good.value  # the rank-0 metrics came back
    # 1 epoch before pruning; each rank took half of the single-process batches (steps read from the checkpoint)
    assert hopeless.user_attrs["metrics"]["epochs"] == 1
    assert hopeless.user_attrs["metrics"]["steps"] == math.ceil(good.user_attrs["metrics"]["steps"] / 3 / 2)
    assert "1 complete, 1 pruned" in text
    # rank 0's per-epoch values, logged in a spawned process, reach curves.csv like a single-process trial's
    curves = [r for r in read_csv(second.study_dir / "curves.csv") if int(r["trial"]) == hopeless.number]
    (acc,) = [float(r["value"]) for r in curves if r["metric"] == "val/acc" and r["epoch"] == "0"]
    assert acc == pytest.approx(hopeless.intermediate_values[0])
    assert any(r["metric"] == "train/loss" for r in curves)


def test_ddp_trial_needs_an_rdb_storage(compose, tmp_path):
    with pytest.raises(ValueError, match="a DDP trial .* needs an RDB sweep.storage"):
        run_study(compose(*STUDY, *DDP, f"runs_dir={tmp_path}"), console=Console(file=io.StringIO()))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no GPU visible: torch.cuda.is_available() is False)")
def test_gpu_workers_are_pinned_and_train_bf16_channels_last(compose, tmp_path):
    """workers=auto: one worker per visible GPU, each pinned through CUDA_VISIBLE_DEVICES; bf16 + channels_last trials."""
    from nasplay.sweep.plan import to_config
    from nasplay.sweep.workers import resolve_workers, visible_gpus

    gpus = visible_gpus()
    c = to_config(compose(*STUDY, "trainer=gpu", "sweep.workers=auto", f"runs_dir={tmp_path}"))
    n, devices = resolve_workers(c)
    assert n == len(gpus) and (devices == [None] if n == 1 else devices == gpus)
    buf = io.StringIO()
    result = run_study(compose(*STUDY, "trainer=gpu", "sweep.workers=auto", "sweep.pruner.kind=none", f"runs_dir={tmp_path}"),
                       console=Console(file=buf, width=200))
    assert result.counts["COMPLETE"] == 2, buf.getvalue()
    import yaml

    saved = yaml.safe_load((result.study_dir / "config.yaml").read_text())
    assert saved["trainer"]["precision"] == "bf16-mixed" and saved["trainer"]["channels_last"] is True
