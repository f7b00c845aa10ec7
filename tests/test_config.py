"""The Hydra configs of conf/: every option composes into the typed schema; bad input fails at once, saying
what is allowed; the command line's help is readable and runs leave nothing outside the study directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError, ValidationError

from nasplay.space.zoo import list_genomes
from nasplay.sweep.config import NasplayConfig
from nasplay.sweep.overrides import GROUPS, check_key, check_overrides
from nasplay.sweep.plan import experiment_arms, make_plan, to_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
OPTIONS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in GROUPS if (CONF_DIR / g).is_dir()}
DIGITS = (1, 16, 10)  # the default data: channels, size, classes
# Options that need a value the defaults cannot know.
NEEDS = {("data", "imagefolder"): ("data.path=/nonexistent/tree",),
         ("trainer", "ddp"): ("sweep.storage=sqlite:///nonexistent/study.db",)}  # DDP trials prune through an RDB storage


def test_every_group_has_its_options():
    assert set(OPTIONS) == set(GROUPS)
    assert OPTIONS["arch"] == sorted(list_genomes())  # one option per zoo network, no more
    assert OPTIONS["data"] == sorted(["digits", "clutter", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder"])
    assert OPTIONS["trainer"] == ["cpu", "ddp", "gpu"]
    assert OPTIONS["logger"] == ["csv", "none", "wandb"]
    assert OPTIONS["sweep"] == ["evolution", "grid", "nsga2", "random", "tpe"]
    assert OPTIONS["debug"] == ["fdr", "smoke"]
    assert "ablate_skip" in OPTIONS["experiment"]


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in OPTIONS.items() for o in opts])
def test_every_option_composes_into_the_schema(compose, group, option):
    cfg = compose(f"{group}={option}", *NEEDS.get((group, option), ()))
    c = to_config(cfg)  # typed and checked
    assert isinstance(c, NasplayConfig)
    if group == "arch":
        assert c.arch.name == option
        # ... and the zoo network adapts to the default data before anything trains
        plan = make_plan(cfg, data_shape=DIGITS)
        assert plan.arms[0].arch == option
    chosen = {"arch": c.arch.name, "data": c.data.name, "optim": c.optim.optimizer, "logger": c.logger.kind,
              "sweep": c.sweep.sampler, "experiment": c.experiment.name, "debug": c.study.rsplit("-", 1)[-1],
              "trainer": {"cpu": "cpu", "gpu": "gpu", "ddp_spawn": "ddp"}[c.trainer.strategy if option == "ddp" else c.trainer.accelerator]}
    assert chosen[group] == option


@pytest.mark.parametrize("experiment", OPTIONS["experiment"])
@pytest.mark.parametrize("debug", [None, "smoke", "fdr"])
def test_every_experiment_plans(compose, experiment, debug):
    overrides = [f"experiment={experiment}"] + ([f"debug={debug}"] if debug else [])
    cfg = compose(*overrides)
    plan = make_plan(cfg, data_shape=(DIGITS[0], cfg.data.size or DIGITS[1], DIGITS[2]))  # the digits at the experiment's size
    c = plan.cfg
    assert c.experiment.name == experiment and len(c.experiment.seeds) >= 3
    assert len(plan.arms) + len(plan.classics) >= 2  # a search: one sampled arm beside the classic networks
    assert plan.study_dir.parts[-2:] == (experiment, c.study)
    if debug:
        assert c.study == f"{experiment}-{debug}" and c.trainer.max_epochs == 1


def test_ablate_skip_is_residual_against_plain(compose):
    plan = make_plan(compose("experiment=ablate_skip"), data_shape=DIGITS)
    assert [(a.name, a.arch, a.knobs["skip"]) for a in plan.arms] == [("skip=identity", "resnet18", "identity"),
                                                                       ("skip=none", "resnet18", "none")]
    assert plan.grid == {"arm": ["skip=identity", "skip=none"], "seed": [0, 1, 2, 3, 4]}
    assert plan.cfg.sweep.sampler == "grid" and plan.cfg.experiment.baseline == "skip=identity"


def test_hydra_writes_into_the_study_directory_only(compose):
    cfg = compose("experiment=ablate_skip", "runs_dir=/tmp/somewhere", hydra=True)
    # nasplay makes the study directory (and points the job's log there); Hydra's own folders are ones that exist
    assert cfg.hydra.run.dir == "." and (cfg.hydra.sweep.dir, cfg.hydra.sweep.subdir) == ("/tmp/somewhere", ".")
    assert cfg.hydra.output_subdir is None and cfg.hydra.job.chdir is False


def test_knobs_and_spaces_need_no_plus(compose):
    cfg = compose("sweep=tpe", "arch.knobs.skip=none", "sweep.space={optim.lr: [0.1, 0.01]}", "sweep.options.n_startup_trials=3")
    c = to_config(cfg)
    assert c.arch.knobs == {"skip": "none"} and c.sweep.space == {"optim.lr": [0.1, 0.01]}


# --- bad input: named, with what is allowed -----------------------------------------------------------


def test_unknown_key_is_named_with_the_allowed_keys():
    msg = check_overrides(["experiment=ablate_skip", "data.sise=32"])
    assert "unknown key 'data.sise'" in msg and "did you mean size" in msg and "batch_size" in msg
    msg = check_overrides(["epochs=3"])
    assert "unknown key 'epochs'" in msg and "trainer" in msg and "config groups" in msg
    assert "trainer.max_epochs is a value" in check_overrides(["trainer.max_epochs.x=1"])
    assert check_overrides(["arch.knobs.anything=1", "+sweep.space.optim.lr=[1]", "hydra.run.dir=x", "data=mnist"]) is None
    assert check_key("sweep.pruner.kind") is None and "sweep.pruner has" in check_key("sweep.pruner.kindd")


def test_unknown_key_in_the_composed_config_fails(compose):
    with pytest.raises(ConfigCompositionException, match="sise"):
        compose("data.sise=32")


def test_misspelt_option_lists_the_options(compose):
    with pytest.raises(MissingConfigException) as e:
        compose("data=cifr10")
    assert "cifar10" in str(e.value) and "fashion_mnist" in str(e.value)
    with pytest.raises(MissingConfigException, match="ablate_skip"):
        compose("experiment=ablate_skp")


def test_wrong_type_names_the_key(compose):
    with pytest.raises(ConfigCompositionException) as e:
        compose("sweep.n_trials=many")
    cause = e.value.__cause__
    assert isinstance(cause, (ValidationError, ConfigKeyError)) and "sweep.n_trials" in str(cause)


@pytest.mark.parametrize("override,message", [
    ("arch.knobs.skip=none", "arch.knobs.skip: skip is the knob under study; its values are experiment.values"),
    ("arch.knobs.skp=none", "unknown knob 'skp'; did you mean skip"),
    ("arch.knobs.width=-2", "width=-2 is not allowed"),
    ("sweep.sampler=tpee", "sweep.sampler must be one of ['grid', 'random', 'tpe', 'nsga2', 'evolution'], got 'tpee'"),
    ("sweep.objectives=[val/accuracy]", "unknown objective 'val/accuracy'; allowed: ['val/acc'"),
    ("sweep.pruner.kind=mean", "sweep.pruner.kind must be one of ['none', 'median', 'hyperband']"),
    ("logger.mode=sometimes", "logger.mode must be one of ['offline', 'online', 'disabled']"),
    ("experiment.seeds=[]", "experiment.seeds must list at least one seed"),
    ("experiment.keep=macs", "experiment.keep must be one of ['flops', 'params']"),
    ("experiment.baseline='skip=maybe'", "experiment.baseline: 'skip=maybe' is not an arm; arms: ['skip=identity', 'skip=none']"),
    ("sweep.space={lr: [0.1]}", "sweep.space.lr: a parameter is 'arch', 'seed' or starts with one of"),
    ("sweep.space={optim.learning_rate: [0.1]}", "sweep.space.optim.learning_rate: optim has no field 'learning_rate'; allowed:"),
    ("sweep.space={knobs.skip: [none, always]}", "sweep.space.knobs.skip=always: skip='always' is not allowed"),
    ("sweep.options.n_startup=3", "sweep.options.n_startup: not an option of the grid sampler; allowed: none"),
    ("optim.optimizer=adam", "optim.optimizer must be one of ['sgd', 'adamw'], got 'adam'"),
    ("sweep.workers=0", "sweep.workers must be an int >= 1 or 'auto'"),
])
def test_bad_values_fail_before_anything_trains(compose, override, message):
    with pytest.raises(ValueError) as e:
        make_plan(compose("experiment=ablate_skip", override), data_shape=DIGITS)
    assert message in str(e.value)


def test_knob_errors_name_the_arm(compose):
    with pytest.raises(ValueError, match=r"arm 'skip=sideways': skip='sideways' is not allowed"):
        make_plan(compose("experiment=ablate_skip", "experiment.values=[identity, sideways]"), data_shape=DIGITS)
    with pytest.raises(ValueError, match=r"arm 'vgg11': skip='sometimes' is not allowed; allowed: none \| identity"):
        make_plan(compose("arch=vgg11", "arch.knobs.skip=sometimes"), data_shape=DIGITS)


def test_named_arms_and_several_bases(compose):
    cfg = compose("experiment=ablate_skip", "experiment.bases=[resnet18, resnet34]", "experiment.baseline=null",
                  "experiment.arms={plain_vgg: {arch: vgg11, knobs: {width: 0.125}}}")
    arms = experiment_arms(to_config(cfg))
    assert [a.name for a in arms] == ["resnet18 skip=identity", "resnet18 skip=none", "resnet34 skip=identity",
                                      "resnet34 skip=none", "plain_vgg"]
    assert arms[-1].arch == "vgg11" and arms[-1].knobs == {"width": 0.125}  # arch.knobs width=0.25 overridden
    assert arms[1].knobs == {"width": 0.25, "skip": "none"}


# --- the command line ---------------------------------------------------------------------------------


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "NASPLAY_CONF_DIR": str(CONF_DIR)}
    return subprocess.run([sys.executable, "-m", "nasplay", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_help_is_readable(tmp_path):
    r = _cli("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for part in ("python -m nasplay: run an experiment", "== Config groups", "experiment: ablate_", "ablate_skip",
                 "sweep: evolution, grid, nsga2, random, tpe", "arch.name, arch.knobs.KNOB", "Examples:", "debug=smoke"):
        assert part in out
    assert max(len(line) for line in out.splitlines() if not line.startswith(("arch:", "experiment:"))) <= 130
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


def test_the_commands_python_m_nasplay_points_at_are_nasplays():
    import argparse

    from nasplay.cli import build_parser
    from nasplay.cli.errors import COMMANDS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)


def test_cli_errors_exit_2_with_the_reason(tmp_path):
    r = _cli("experiment=ablate_skip", "trainer.max_epoch=3", cwd=tmp_path)
    assert r.returncode == 2 and "unknown key 'trainer.max_epoch' (did you mean max_epochs" in r.stderr
    r = _cli("arch=resnet18", "arch.knobs.skip=sometimes", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "error: arm 'resnet18': skip='sometimes' is not allowed; allowed: none | identity | projection | scaled" in r.stderr
    assert "Traceback" not in r.stderr
    # a command of `nasplay` typed after `python -m nasplay`: said once, with the command that runs it
    r = _cli("replay", "table.json", "--seeds", "5", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("error:") == 1
    assert "'replay' is not an override (KEY=VALUE or GROUP=OPTION): `nasplay replay ...` runs that command" in r.stderr
    r = _cli("experiment", "ablate_skip", cwd=tmp_path)  # not a command: the override it looks like
    assert r.returncode == 2 and "write KEY=VALUE (did you mean experiment=ablate_skip?)" in r.stderr
    r = _cli("--version", cwd=tmp_path)
    assert r.returncode == 0 and (r.stdout + r.stderr).count("Hydra") == 1
    r = _cli("experiment=ablate_skip", "--bogus", cwd=tmp_path)  # argparse's refusal, printed by Hydra once
    assert r.returncode == 2 and r.stderr.count("unrecognized arguments: --bogus") == 1
    assert list(tmp_path.iterdir()) == []


def test_arms_crossed_with_a_search_space(compose):
    """Several arms and a space: every trial picks an arm and a point of the space (grid: all combinations)."""
    import optuna

    from nasplay.sweep.trial import suggest

    space = "sweep.space={optim.lr: [0.1, 0.01], knobs.width: [0.25, 0.5]}"
    plan = make_plan(compose("experiment=ablate_skip", space), data_shape=DIGITS)
    assert plan.grid == {"arm": ["skip=identity", "skip=none"], "optim.lr": [0.1, 0.01], "knobs.width": [0.25, 0.5],
                         "seed": [0, 1, 2, 3, 4]}
    plan = make_plan(compose("experiment=ablate_skip", "sweep=random", space), data_shape=DIGITS)
    assert plan.grid is None
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    specs = [suggest(study.ask(), plan) for _ in range(8)]
    assert {s.arm.split()[0] for s in specs} == {"skip=identity", "skip=none"}
    for s in specs:
        assert s.knobs["skip"] == s.arm.split()[0].split("=")[1] and s.knobs["width"] in (0.25, 0.5)
        assert s.overrides["optim"]["lr"] in (0.1, 0.01) and s.seed in (0, 1, 2, 3, 4)
        assert s.arm in ("skip=identity", "skip=none")  # sampled: a trial belongs to its arm's population


def test_a_study_made_before_a_setting_existed_resumes_at_its_default(compose, tmp_path):
    """A key absent from a study's stored identity (added to nasplay since) counts as its default, not as a change."""
    from nasplay.sweep.loop import check_identity

    class Stored:  # what an Optuna study keeps: user attrs
        def __init__(self, attrs):
            self.user_attrs = attrs

        def set_user_attr(self, k, v):
            self.user_attrs[k] = v

    plan = make_plan(compose("experiment=ablate_skip", f"runs_dir={tmp_path}"), data_shape=DIGITS)
    old = json.loads(json.dumps(plan.identity))
    del old["data"]["clutter_noise"], old["trainer"]["threads"]
    check_identity(Stored({"nasplay_config": old}), plan)  # the defaults: resumes
    changed = make_plan(compose("experiment=ablate_skip", f"runs_dir={tmp_path}", "trainer.threads=2"), data_shape=DIGITS)
    with pytest.raises(ValueError, match=r"exists with a different config \(trainer.threads: None -> 2\)"):
        check_identity(Stored({"nasplay_config": old}), changed)


def test_sampler_pruner_and_tracker_are_built_from_target_nodes(compose, tmp_path):
    """The config's names (sweep=tpe, sweep.pruner.kind=median, logger=csv) are _target_ nodes built by
    hydra.utils.instantiate, with the config's values as arguments."""
    import optuna

    from nasplay.sweep.config import PRUNER_TARGETS, SAMPLER_TARGETS
    from nasplay.sweep.samplers import AskTellGridSampler, make_pruner, make_sampler
    from nasplay.track.config import TRACKER_TARGETS
    from nasplay.track.tracker import CsvTracker, make_tracker

    c = to_config(compose("sweep=tpe", "sweep.pruner.kind=median", "sweep.pruner.n_startup_trials=7", "sweep.seed=3",
                          "sweep.space={optim.lr: [0.1, 0.01]}", "sweep.options.n_ei_candidates=5", "logger=csv"))
    sampler, pruner = make_sampler(c.sweep), make_pruner(c.sweep)
    assert type(sampler) is optuna.samplers.TPESampler and sampler._n_ei_candidates == 5
    assert type(pruner) is optuna.pruners.MedianPruner and pruner._n_startup_trials == 7
    assert isinstance(make_tracker(c.logger, tmp_path), CsvTracker)
    grid = to_config(compose("sweep=grid"))
    assert type(make_sampler(grid.sweep, {"arm": ["a", "b"], "seed": [0]})) is AskTellGridSampler
    assert SAMPLER_TARGETS.keys() == set(OPTIONS["sweep"]) and PRUNER_TARGETS.keys() == {"none", "median", "hyperband"}
    assert TRACKER_TARGETS.keys() == set(OPTIONS["logger"])
