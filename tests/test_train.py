"""Training: real Lightning fits on the embedded digits — learning, reproducibility, divergence, resume."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch

from nasplay.nn.build import build
from nasplay.space.genome import Act, Aux, Block, Branch, Conv, Genome, Head, Input, Linear, Pool, Stage
from nasplay.train.config import DataConfig, OptimConfig, TrainerConfig, as_config
from nasplay.train.data import make_datamodule
from nasplay.train.fit import METRIC_KEYS, fit
from nasplay.train.module import LitClassifier, TrialDiverged
from nasplay.train.optim import make_optimizer, make_scheduler

TIMES = ("wall_time", "train_time", "imgs_per_sec", "train/imgs_per_sec")


def cbr(out: int, k: int = 3, s: int = 1) -> Conv:
    return Conv(out, k, s, norm="batch", act="relu")


def residual(out: int, stride: int = 1) -> Block:
    body = Branch((cbr(out, 3, stride), Conv(out, 3, norm="batch")))
    return Block((body,), skip="projection" if stride > 1 else "identity", post=(Act("relu"),))


def tiny_resnet(aux: tuple[Aux, ...] = ()) -> Genome:
    """A two-stage residual net for 1 x 16 x 16 digits (about 20k parameters)."""
    return Genome("tiny_resnet", input=Input(1, 16), classes=10, stem=(Block((Branch((cbr(16),)),)),),
                  stages=(Stage((residual(16),)), Stage((residual(32, 2),))), head=Head((Pool("avg", adaptive=1),)), aux=aux)


def cpu(**kw) -> TrainerConfig:
    return TrainerConfig(accelerator="cpu", **kw)


@pytest.fixture(scope="module")
def digits():
    return make_datamodule(DataConfig())


@pytest.fixture(scope="module")
def small():
    return make_datamodule(DataConfig(limit=256))


def without_times(m: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in m.items() if k not in TIMES}


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    a, b = without_times(a), without_times(b)
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_fit_learns_the_digits(digits):
    m = fit(tiny_resnet(), digits, cpu(max_epochs=3, target_val_acc=0.5, target_train_error=0.5), OptimConfig(), seed=0)
    assert set(METRIC_KEYS) <= set(m)
    # chance is 0.1; this net reaches ~0.94 in 3 epochs (measured: 0.944 val, 0.93 test)
    assert m["val/acc"] > 0.85 and m["test/acc"] > 0.85 and m["train/acc"] > 0.8
    assert m["val/acc_best"] >= m["val/acc"]
    assert m["train/loss"] < 1.0 and m["val/loss"] < 1.0
    steps_per_epoch = len(digits.train_dataloader())
    assert (m["epochs"], m["steps"]) == (3, 3 * steps_per_epoch)
    assert m["steps_to_target"] in (steps_per_epoch, 2 * steps_per_epoch, 3 * steps_per_epoch)
    # the training-error target at step resolution: the error over the latest quarter epoch, after each step
    assert m["steps_to_target_train"] == int(m["steps_to_target_train"]) and steps_per_epoch // 4 <= m["steps_to_target_train"]
    assert m["epochs_to_target"] == m["steps_to_target_train"] / steps_per_epoch and 0 < m["epochs_to_target"] <= 3
    from nasplay.complexity import complexity

    cx = complexity(tiny_resnet(), num_classes=10)
    assert (m["params"], m["flops"]) == (cx.params, cx.flops)
    assert m["imgs_per_sec"] > 0 and 0 < m["train_time"] <= m["wall_time"]


def test_same_seed_same_numbers_other_seed_other_numbers(small):
    cfg, opt = cpu(max_epochs=2), OptimConfig()
    a = fit(tiny_resnet(), small, cfg, opt, seed=7)
    b = fit(tiny_resnet(), small, cfg, opt, seed=7)
    assert same(a, b)
    c = fit(tiny_resnet(), small, cfg, opt, seed=8)
    assert c["train/loss"] != a["train/loss"]


def test_divergence_raises_and_stops_at_once(small):
    seen = []

    class Count(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            seen.append(trainer.global_step)

    with pytest.raises(TrialDiverged, match="nan|inf"):
        fit(tiny_resnet(), small, cpu(max_epochs=20), OptimConfig(lr=1e6), seed=0, callbacks=[Count()])
    assert len(seen) < 20  # stopped when the loss went bad, not after 20 epochs of NaN


class Interrupt(pl.Callback):
    """Kills the trial at the start of epoch ``at`` (after the checkpoint of the epoch before)."""

    def __init__(self, at: int):
        self.at = at

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.at:
            raise KeyError("interrupted")


def test_interrupted_trial_resumes_to_the_uninterrupted_result(small, tmp_path):
    cfg, opt = cpu(max_epochs=3), OptimConfig()
    straight = fit(tiny_resnet(), small, cfg, opt, seed=3)
    with pytest.raises(KeyError):
        fit(tiny_resnet(), small, cfg, opt, seed=3, ckpt_dir=tmp_path, callbacks=[Interrupt(2)])
    assert (tmp_path / "last.ckpt").exists()
    epochs_run = []

    class Epochs(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            epochs_run.append(trainer.current_epoch)

    resumed = fit(tiny_resnet(), small, cfg, opt, seed=3, ckpt_dir=tmp_path, callbacks=[Epochs()])
    assert epochs_run == [2]  # only the missing epoch ran
    assert same(resumed, straight)  # weights, optimizer, schedule, batch order and RNG all restored
    again = fit(tiny_resnet(), small, cfg, opt, seed=3, ckpt_dir=tmp_path, callbacks=[Epochs()])
    assert epochs_run == [2] and same(again, straight)  # a finished trial does no new work
    fresh = fit(tiny_resnet(), small, cfg, opt, seed=3, ckpt_dir=tmp_path, resume=False, callbacks=[Epochs()])
    assert epochs_run == [2, 0, 1, 2] and same(fresh, straight)


def test_resume_with_more_epochs_runs_only_the_new_ones(small, tmp_path):
    two = fit(tiny_resnet(), small, cpu(max_epochs=2), OptimConfig(scheduler="none"), seed=1, ckpt_dir=tmp_path)
    three = fit(tiny_resnet(), small, cpu(max_epochs=3), OptimConfig(scheduler="none"), seed=1, ckpt_dir=tmp_path)
    per_epoch = two["steps"] / 2
    assert (two["epochs"], three["epochs"]) == (2, 3) and three["steps"] == two["steps"] + per_epoch


def test_aux_heads_add_their_weighted_loss():
    g = tiny_resnet(aux=(Aux(0, 0, (Pool("avg", adaptive=1),), weight=0.5), Aux(1, -1, (Pool("avg", adaptive=1), Linear(8)), weight=0.25)))
    torch.manual_seed(0)
    net = build(g, 10)
    module = LitClassifier(net, make_optimizer(OptimConfig()), aux_weights=[a.weight for a in g.aux])
    module.on_train_epoch_start()
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    loss = module.training_step((x, y), 0)
    logits, aux = net(x)
    ce = torch.nn.functional.cross_entropy
    expected = ce(logits, y) + 0.5 * ce(aux[0], y) + 0.25 * ce(aux[1], y)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.aux.parameters())


def test_fit_with_aux_heads_reports_both_losses(small):
    g = tiny_resnet(aux=(Aux(0, 0, (Pool("avg", adaptive=1),), weight=0.5),))
    m = fit(g, small, cpu(max_epochs=1), OptimConfig(), seed=0)
    assert m["train/loss_total"] > m["train/loss"] > 0 and m["params_aux"] == 170


def test_epoch_metrics_reach_the_logger(small, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(tmp_path, name="t", version=0)
    m = fit(tiny_resnet(), small, cpu(max_epochs=3, limit_train_batches=2), OptimConfig(), seed=0, logger=logger)
    import csv

    rows = list(csv.DictReader(open(tmp_path / "t" / "version_0" / "metrics.csv")))
    val = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    best = [float(r["val/acc_best"]) for r in rows if r.get("val/acc_best")]
    assert len(val) == 3 and best == [max(val[: i + 1]) for i in range(3)]
    assert len([r for r in rows if r.get("train/loss")]) == 3 and [r for r in rows if r.get("test/acc")]
    assert m["steps"] == 6  # limit_train_batches caps the in-memory loader too


def test_cpu_bf16_and_channels_last_train(small):
    m = fit(tiny_resnet(), small, cpu(max_epochs=1, precision="bf16-mixed", channels_last=True, limit_train_batches=3),
            OptimConfig(optimizer="adamw", lr=1e-3, warmup_epochs=0.5), seed=0)
    assert math.isfinite(m["train/loss"]) and m["steps"] == 3


def test_lenet5_trains_with_its_own_layers():
    dm = make_datamodule(DataConfig(size=32, limit=128))
    m = fit("lenet5", dm, cpu(max_epochs=1), OptimConfig(lr=0.01), seed=0)  # 1 x 32 x 32: fits as it is
    from nasplay.complexity import complexity

    assert math.isfinite(m["train/loss"]) and m["params"] == complexity("lenet5").params


def test_a_genome_that_does_not_fit_the_data_is_adapted_or_refused(small):
    g = tiny_resnet().replace(input=Input(3, 32))
    try:
        import nasplay.space.knobs  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="1x16"):
            fit(g, small, cpu(max_epochs=1), OptimConfig(), seed=0)
    else:
        m = fit(g, small, cpu(max_epochs=1, limit_train_batches=1), OptimConfig(), seed=0)
        assert m["steps"] == 1


def test_schedules():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(OptimConfig(scheduler="cosine", warmup_epochs=1))(opt, 20, 4)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8]) and lrs[4] == 1.0 and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    step = make_scheduler(OptimConfig(scheduler="step", step_size=2, gamma=0.5))(opt, 100, 3)
    got = []
    for _ in range(12):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        step.step()
    assert got == [1.0] * 6 + [0.5] * 6
    assert make_scheduler(OptimConfig(scheduler="none")) is None


@pytest.mark.parametrize("cls,kw,match", [
    (TrainerConfig, {"precision": "8-bit"}, "trainer.precision"),
    (TrainerConfig, {"accelerator": "tpu9"}, "trainer.accelerator"),
    (TrainerConfig, {"max_epochs": 0}, "trainer.max_epochs"),
    (TrainerConfig, {"devices": 0}, "trainer.devices"),
    (TrainerConfig, {"limit_train_batches": 1.5}, "trainer.limit_train_batches"),
    (TrainerConfig, {"target_val_acc": 2.0}, "trainer.target_val_acc"),
    (TrainerConfig, {"max_epochs": -1, "max_steps": -1}, "unlimited"),
    (OptimConfig, {"optimizer": "lion"}, "optim.optimizer"),
    (OptimConfig, {"scheduler": "plateau"}, "optim.scheduler"),
    (OptimConfig, {"lr": -1.0}, "optim.lr"),
    (OptimConfig, {"lr": float("nan")}, "optim.lr"),
    (OptimConfig, {"momentum": 1.0}, "optim.momentum"),
    (OptimConfig, {"nesterov": True, "optimizer": "adamw"}, "optim.nesterov"),
    (OptimConfig, {"label_smoothing": 1.0}, "optim.label_smoothing"),
])
def test_bad_training_config_names_the_field(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw).check()


def test_fit_checks_configs_before_any_work(small):
    class Boom(pl.Callback):
        def setup(self, *args, **kwargs):
            raise AssertionError("training started")

    with pytest.raises(ValueError, match="optim.scheduler"):
        fit(tiny_resnet(), small, cpu(max_epochs=1), {"scheduler": "exp"}, seed=0, callbacks=[Boom()])
    with pytest.raises(ValueError, match="unknown TrainerConfig field"):
        fit(tiny_resnet(), small, {"max_epoch": 1}, OptimConfig(), seed=0, callbacks=[Boom()])
    assert as_config(TrainerConfig, {"max_epochs": 2}).max_epochs == 2


def test_module_pickles_for_spawned_ddp_workers():
    import pickle

    g = tiny_resnet()
    module = LitClassifier(build(g, 10), make_optimizer(OptimConfig()), make_scheduler(OptimConfig(warmup_epochs=1)))
    clone = pickle.loads(pickle.dumps(module))
    opt = clone.optimizer_factory(clone.parameters())
    sched = clone.scheduler_factory(opt, 10, 5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 6)  # warm-up step 1 of 6
    assert set(sched.state_dict()["lr_lambdas"][0]) <= {"kind", "warm", "total", "per_epoch", "step_size", "gamma"}


def test_throughput_counts_training_not_validation():
    import time

    class SlowValidation(pl.Callback):
        def on_validation_epoch_end(self, trainer, module):
            time.sleep(1.0)

    dm = make_datamodule(DataConfig(limit=64))
    m = fit(tiny_resnet(), dm, cpu(max_epochs=2, test=False), OptimConfig(), seed=0, callbacks=[SlowValidation()])
    assert m["wall_time"] > 2.0 and m["train_time"] < 1.0  # two epochs of one step each: far less than a second
    assert m["imgs_per_sec"] == pytest.approx(m["train/imgs_per_sec"])  # the second epoch's, the first warms up
