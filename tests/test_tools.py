"""nasplay in the tools its users already have: W&B's grouped view, Hydra's flags (completion, multirun,
launchers), Lightning's Trainer arguments, Optuna's dashboards; mistakes that stop before a study exists;
progress with an ETA."""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import optuna
import pytest
from rich.console import Console
from wandb_read import read_run, run_files

from nasplay.experiment import run_experiment
from nasplay.sweep.plan import make_plan, to_config
from nasplay.sweep.progress import Progress, format_seconds
from nasplay.sweep.storage import make_storage

ROOT = Path(__file__).resolve().parents[1]
# 320 training images at 16 x 16, 64 a batch: 5 steps an epoch.
TINY = ("arch=lenet5_common", "data.limit=320", "trainer.max_epochs=1", "sweep=grid", "experiment.name=tiny")
ARMS = ("experiment.knob=activation", "experiment.values=[relu, tanh]")


def run(cfg, **kw):
    buf = io.StringIO()
    result = run_experiment(cfg, console=Console(file=buf, width=200), **kw)
    return result, buf.getvalue()


def trials_of(study_dir: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=make_storage(None, study_dir)).get_trials()


def command(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "NASPLAY_CONF_DIR": str(ROOT / "conf"), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "nasplay", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


# --- W&B and Optuna -----------------------------------------------------------------------------------------
def test_wandb_runs_compare_arms_and_optuna_shows_names(compose, tmp_path, one_thread):
    """Runs grouped <study>/<arm>, named '<arm> seed=<seed>', flat keys, lr every step, git; report honours
    entity and tags; Optuna's study has metric names and flat, sortable user attributes."""
    cfg = compose(*TINY, *ARMS, "experiment.seeds=[0, 1]", "logger=wandb", "logger.entity=my-team", "logger.tags=[mine]",
                  "trainer.log_every_n_steps=1", "optim.lr=0.05", f"runs_dir={tmp_path}")
    result, _ = run(cfg)
    study_dir = Path(result.study_dir)
    trials = trials_of(study_dir, "tiny")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4

    study = optuna.load_study(study_name="tiny", storage=make_storage(None, study_dir))
    assert study.metric_names == ["val/acc"]
    for t in trials:
        ua = t.user_attrs
        assert ua["val_acc"] == t.value == ua["metrics"]["val/acc"]
        assert ua["test_acc"] == ua["metrics"]["test/acc"] and ua["val_acc_best"] == ua["metrics"]["val/acc_best"]
        assert ua["arm"] in ("activation=relu", "activation=tanh") and ua["seed"] in (0, 1) and ua["params"] > 10_000
    # numbers, not strings: a dashboard sorts the trials by them
    assert [t.number for t in sorted(trials, key=lambda t: t.user_attrs["test_acc"])] == \
        [t.number for t in sorted(trials, key=lambda t: t.user_attrs["metrics"]["test/acc"])]
    assert all(isinstance(t.user_attrs[k], float) for t in trials for k in ("val_acc", "test_acc", "val_loss", "wall_time"))

    runs = [read_run(p) for p in run_files(study_dir)]
    report = [r for r in runs if r.job_type == "report"]
    by_id = {r.id: r for r in runs if r.job_type == "trial"}
    assert len(report) == 1 and len(by_id) == 4
    assert report[0].entity == "my-team" and {"mine", "study:tiny", "report"} <= set(report[0].tags)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=os.getcwd())
    for t in trials:
        r = by_id[t.user_attrs["wandb_id"]]
        arm, seed = t.user_attrs["arm"], t.user_attrs["seed"]
        assert (r.group, r.name, r.entity) == (f"tiny/{arm}", f"{arm} seed={seed}", "my-team")
        assert r.tags[0] == "study:tiny" and arm in r.tags and "mine" in r.tags
        c = r.config
        assert (c["arm"], c["seed"], c["study"], c["experiment"]) == (arm, seed, "tiny", "tiny")
        assert c["activation"] == arm.split("=")[1] and c["experiment_config"]["knob"] == "activation"
        assert c["optim"]["lr"] == 0.05 and c["genome_hash"] == t.user_attrs["genome_hash"]
        # the learning rate at every step: cosine from 0.05 to 0 over the trial's steps
        steps = int(t.user_attrs["metrics"]["steps"])
        lrs = [(h["trainer/global_step"], h["lr-SGD/pg1"]) for h in r.history if "lr-SGD/pg1" in h]
        assert steps == 5 and [s for s, _ in lrs] == list(range(steps))
        assert [v for _, v in lrs] == pytest.approx([0.05 * 0.5 * (1 + math.cos(math.pi * k / steps)) for k in range(steps)])
        if head.returncode == 0:  # W&B records the commit it ran from
            assert r.git.get("commit") == head.stdout.strip()
    # curves.csv keeps its per-epoch metrics; the per-step lr went to W&B only
    assert "lr-" not in (study_dir / "curves.csv").read_text()


# --- Lightning's Trainer arguments --------------------------------------------------------------------------
def test_trainer_takes_every_lightning_argument(compose, tmp_path, one_thread):
    from nasplay.sweep.overrides import check_key
    from nasplay.train.config import LIGHTNING_ONLY, NASPLAY_SETS, TrainerConfig
    from nasplay.train.fit import make_trainer

    names = {f.name for f in __import__("dataclasses").fields(TrainerConfig)}
    lightning = set(inspect.signature(pl.Trainer).parameters)
    assert lightning - set(NASPLAY_SETS) <= names and set(LIGHTNING_ONLY) <= lightning  # every argument, nasplay's own aside
    assert check_key("trainer.accumulate_grad_batches") is None and check_key("trainer.val_check_interval") is None
    msg = check_key("trainer.acumulate_grad_batches")
    assert msg.startswith("unknown key 'trainer.acumulate_grad_batches' (did you mean accumulate_grad_batches")
    assert "gradient_clip_algorithm" in msg and "max_epochs" in msg  # the allowed keys are named
    t = make_trainer(TrainerConfig(max_epochs=1, accumulate_grad_batches=3, gradient_clip_algorithm="value", gradient_clip_val=1.0))
    assert (t.accumulate_grad_batches, t.gradient_clip_algorithm, t.num_sanity_val_steps) == (3, "value", 0)
    assert make_trainer(TrainerConfig(max_epochs=1, num_sanity_val_steps=2)).num_sanity_val_steps == 2

    # as users type it; it changes what a trial computes: 5 batches, 2 per optimizer step -> 3 steps
    cfg = compose(*TINY, "trainer.accumulate_grad_batches=2", "logger=none", f"runs_dir={tmp_path}")
    assert to_config(cfg).trainer.accumulate_grad_batches == 2
    result, _ = run(cfg)
    (t,) = trials_of(Path(result.study_dir), "tiny")
    assert t.user_attrs["metrics"]["steps"] == 3
    assert "trainer.accumulate_grad_batches=2" not in (Path(result.study_dir) / "study.json").read_text()  # not from a CLI
    assert "accumulate_grad_batches: 2" in (Path(result.study_dir) / "config.yaml").read_text()


# --- mistakes that stop before the study ------------------------------------------------------------------
def test_missing_dataset_creates_no_study(compose, tmp_path):
    empty = tmp_path / "nodata"
    with pytest.raises(ValueError) as e:
        make_plan(compose("data=cifar10", "data.download=false", f"data.root={empty}"))
    msg = str(e.value)
    assert msg.startswith(f"data: cifar10 is not under data.root='{empty}': looked for data_batch_1")
    assert str(empty / "cifar-10-batches-py") in msg and "data.download=true" in msg
    with pytest.raises(ValueError, match=r"mnist is not under .* train-images-idx3-ubyte"):
        make_plan(compose("data=mnist", "data.download=false", f"data.root={empty}"))
    # MNIST files as they come (gzipped) count as there
    raw = empty / "MNIST" / "raw"
    raw.mkdir(parents=True)
    from torchvision.datasets import MNIST

    for url, _ in MNIST.resources:
        (raw / os.path.basename(url)).write_bytes(b"")
    from nasplay.sweep.plan import missing_data_files

    assert missing_data_files(to_config(compose("data=mnist", f"data.root={empty}")).data) == (raw, [])

    with pytest.raises(ValueError, match="cifar10 is not under"):
        run(compose(*TINY, "data=cifar10", "data.download=false", f"data.root={empty}", "logger=none", f"runs_dir={tmp_path}/runs"))
    assert not (tmp_path / "runs" / "tiny").exists()  # no study folder, no journal: a rerun after the fix starts afresh


@pytest.mark.slow
def test_command_line_mistakes_are_one_line(tmp_path):
    """A missing dataset or an unusable runs_dir: exit 2, one line, nothing left behind."""
    r = command("data=cifar10", "data.download=false", f"data.root={tmp_path / 'nodata'}", "runs_dir=out", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: data: cifar10 is not under data.root=")
    assert len(r.stderr.strip().splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "a_file").write_text("")
    r = command(f"runs_dir={tmp_path / 'a_file' / 'runs'}", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"error: runs_dir='{tmp_path / 'a_file' / 'runs'}': cannot create the study directory")
    assert "Traceback" not in r.stderr


class Sabotage(pl.Callback):
    """The first fit fails while setting up (before training), the second once training began."""

    def __init__(self):
        self.fits = 0

    def setup(self, trainer, pl_module, stage):
        self.fits += 1
        if self.fits == 1:
            raise FileNotFoundError("data: cifar10 not found under data.root='data'")

    def on_train_epoch_start(self, trainer, pl_module):
        if self.fits == 2:
            raise RuntimeError("boom")


def test_setup_errors_rerun_and_progress_says_how_long(compose, tmp_path, one_thread):
    cfg = compose(*TINY, *ARMS, "experiment.seeds=[0, 1]", "logger=none", f"runs_dir={tmp_path}", "progress=false",
                  "progress_interval=0.2")
    result, text = run(cfg, callbacks=(Sabotage(),))
    trials = trials_of(Path(result.study_dir), "tiny")
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[0].user_attrs["setup_error"] is True and "setup_error" not in trials[1].user_attrs
    assert trials[0].user_attrs["fail_reason"].startswith("FileNotFoundError")
    assert trials[1].user_attrs["fail_reason"] == "RuntimeError: boom"
    # progress: a line every progress_interval without a terminal, the ETA on trial lines
    ticks = [line for line in text.splitlines() if line.startswith("progress tiny: done ")]
    assert ticks and all(" ETA " in line for line in ticks)
    finished = [line for line in text.splitlines() if line.startswith("trial ")]
    mean = (trials[2].user_attrs["duration_s"] + trials[3].user_attrs["duration_s"]) / 2
    assert finished[-1].endswith(f"[2/4 done, ETA {format_seconds(2 * mean)}]")  # the failed points are still to run

    # Without a flag, the next run reruns the setup error (the user fixed it), not the trial that failed while training.
    result, text = run(cfg)
    trials = trials_of(Path(result.study_dir), "tiny")
    assert result.ran == 1 and [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert trials[4].params == trials[0].params
    assert run(cfg)[0].ran == 0  # and then the study stands as it is


def test_eta_from_finished_trials_and_the_running_one():
    p = Progress(Console(file=io.StringIO()), live=False, study="s", total=5, objective="val/acc", maximize=True)
    assert p.eta() is None  # nothing finished yet: nothing to go by
    p.trial_finished(0, "COMPLETE", "a", 0, 0.5, 10.0)
    p.trial_finished(1, "FAIL", "a", 1, None, 1.0)  # a failure says nothing about how long a trial takes
    p.trial_finished(2, "PRUNED", "b", 0, 0.1, 20.0)
    assert p.eta() == pytest.approx(3 * 15.0)  # 3 left at 15 s each
    p.trial_started(3, "b", 1)
    p.batch_done(5, 10, 0, 2)  # a quarter of the trial's training
    began = p.trial_began
    assert p.eta(now=began + 3.0) == pytest.approx(9.0 + 2 * 15.0)  # 3 s for a quarter: 9 s more, then 2 trials
    assert "epoch 1/2 batch 5/10" in p.status_line() and "ETA " in p.status_line()
    p.running = 1  # another worker's trial runs beside this one
    assert p.eta(now=began + 3.0) == pytest.approx(9.0 + 2 * 15.0 / 2)


# --- Hydra as Hydra users type it -------------------------------------------------------------------------
@pytest.mark.slow
def test_shell_completion(tmp_path):
    r = command("--shell-completion", "query=experiment=ablate_s", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    conf = sorted(f"experiment={p.stem}" for p in (ROOT / "conf" / "experiment").glob("ablate_s*.yaml"))
    assert r.stdout.split() == conf and "experiment=ablate_skip" in conf and len(conf) >= 3
    env = {**os.environ, "COMP_LINE": "python -m nasplay experiment=ablate_skip trainer.accumulate_g",
           "NASPLAY_CONF_DIR": str(ROOT / "conf")}
    r = subprocess.run([sys.executable, "-m", "nasplay", "-sc", "query=bash"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.stdout.split() == ["trainer.accumulate_grad_batches="]

    # `install=bash` completes the `nasplay` command (the console script, which takes the same overrides)
    script = command("-sc", "install=bash", cwd=tmp_path).stdout
    assert script.rstrip().endswith("-F hydra_bash_completion nasplay")
    exe = Path(sys.executable).parent / "nasplay"
    if not exe.exists() or not shutil.which("bash"):
        pytest.skip(f"no nasplay console script next to {sys.executable} (pip install -e .) or no bash")
    shell = ('eval "$(nasplay -sc install=bash)"; COMP_LINE="nasplay debug=sm"; COMP_POINT=${#COMP_LINE}; '
             'COMP_WORDS=(nasplay debug=sm); COMP_CWORD=1; hydra_bash_completion; echo "${COMPREPLY[@]}"')
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}", "NASPLAY_CONF_DIR": str(ROOT / "conf")}
    r = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.stdout.split() == ["debug=smoke"], r.stderr


def test_multirun_study_names():
    from nasplay.__main__ import multirun_study, swept_keys

    assert swept_keys(["-m", "a.b=1,2", "c=3", "hydra/launcher=submitit_local", "d=range(3)", "e=choice(x,y)"]) == ["a.b", "d", "e"]
    assert swept_keys(["a.b=1,2"]) == []  # not a multirun: Hydra says what is wrong with the value
    task = ["experiment=ablate_skip", "optim.lr=0.1", "arch.knobs.width=0.25", "sweep.job=1", "sweep.workers=2"]
    assert multirun_study("ablate_skip", task, ["arch.knobs.width", "optim.lr"]) == "ablate_skip-optim.lr=0.1,arch.knobs.width=0.25"
    assert multirun_study("ablate_skip", task, ["sweep.job", "sweep.workers"]) == "ablate_skip"  # workers of one study
    assert multirun_study("ablate_skip", task, ["experiment"]) == "ablate_skip"  # the experiment is the folder above
    assert multirun_study("mine", [*task, "study=mine"], ["arch.knobs.width"]) == "mine"  # the user named it
    assert multirun_study("s", ["arch=vgg11", "data.path=/a/b c"], ["arch", "data.path"]) == "s-arch=vgg11,data.path=_a_b_c"


@pytest.mark.slow
def test_multirun_one_study_per_job(tmp_path):
    base = ("arch=lenet5_common", "data.limit=320", "trainer.max_epochs=1", "logger=none", "runs_dir=out", "experiment.name=mr")
    r = command("-m", *base, "arch.knobs.width=0.5,0.25", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    exp = tmp_path / "out" / "mr"
    assert sorted(p.name for p in exp.iterdir()) == ["mr-arch.knobs.width=0.25", "mr-arch.knobs.width=0.5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mr"]
    for width in ("0.5", "0.25"):
        study_dir = exp / f"mr-arch.knobs.width={width}"
        (t,) = trials_of(study_dir, study_dir.name)
        assert t.state.name == "COMPLETE" and t.user_attrs["knobs"] == {"width": float(width)}
        overrides = json.loads((study_dir / "study.json").read_text())["overrides"]
        assert overrides == [*base, f"arch.knobs.width={width}"]
        assert not list(study_dir.rglob("multirun.yaml")) and not list(study_dir.glob("[0-9]*"))
    # a sweep over keys that change nothing a trial computes: every job is a worker of the same study
    r = command("-m", *base, "arch.knobs.width=0.5", "sweep.job=0,1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "study 'mr' (new)" in r.stdout and "study 'mr' (resumed, 1 finished)" in r.stdout
    assert r.stdout.count("is finished, nothing to do") == 1 and len(trials_of(exp / "mr", "mr")) == 1


@pytest.mark.slow
def test_submitit_local_jobs_are_workers_of_one_study(tmp_path):
    """The SLURM recipe through Hydra's submitit launcher, run here with its local executor: two jobs, one study."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'nasplay[slurm]' (hydra-submitit-launcher)")
    r = command("-m", "hydra/launcher=submitit_local", "arch=lenet5_common", "data.limit=320", "trainer.max_epochs=1",
                "logger=none", "runs_dir=out", "experiment.name=sm", *ARMS, "experiment.seeds=[0,1]", "progress=false",
                "sweep.job=0,1", "sweep.workers=1", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    exp = tmp_path / "out" / "sm"
    assert [p.name for p in exp.iterdir()] == ["sm"]
    trials = trials_of(exp / "sm", "sm")
    assert sorted((t.user_attrs["arm"], t.user_attrs["seed"]) for t in trials) == [
        ("activation=relu", 0), ("activation=relu", 1), ("activation=tanh", 0), ("activation=tanh", 1)]
    assert all(t.state.name == "COMPLETE" for t in trials)
    logs = sorted((tmp_path / "out" / ".submitit").glob("*/*_0_log.out"))
    assert len(logs) == 2  # two jobs, each a process of its own, both on study 'sm'
    texts = [p.read_text() for p in logs]
    assert all("study 'sm' (" in t for t in texts)
    ran = [int(t.split("done: ran ", 1)[1].split(" ", 1)[0]) if "done: ran " in t else 0 for t in texts]
    assert sum(ran) == 4  # every grid point once, whichever job claimed it
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == sum(n > 0 for n in ran)
