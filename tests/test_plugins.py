"""Your own innovation: the vocabulary registries, their public API, and a plugin package installed for real.

``tests/plugins/nasplay_mish`` is an outside package (a pyproject with a ``nasplay.plugins`` entry point) that
registers the Mish activation and a "3x3 conv + squeeze-and-excitation" block (the ``conv_se`` knob). It is installed
with pip into a folder of its own, put on ``PYTHONPATH`` of fresh processes, and found there by importlib.metadata.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import nasplay
from nasplay.space import registry
from nasplay.space.genome import ACTIVATIONS, CONV_NORMS, Genome
from nasplay.space.knobs.tree import KnobError

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugins" / "nasplay_mish"
CLI = ("-c", "import sys; from nasplay.cli import main; sys.exit(main(sys.argv[1:]))")  # the `nasplay` command
SMALL = ("arch.knobs.width=0.125", "data.limit=200", "data.batch_size=32", "trainer.max_epochs=1",
         "trainer.limit_train_batches=3", "trainer.limit_val_batches=2", "logger=none", "progress=false")


def install(src: Path, target: Path) -> Path:
    """``pip install`` a package (copied first: a build writes into its folder) into ``target``, no index, no deps."""
    work = target.parent / f"{src.name}-src"
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(work)], check=True, capture_output=True, text=True, timeout=300)
    return target


def env_with(*paths: Path, **extra: str) -> dict[str, str]:
    """This tree first (the nasplay under test), then the installed plugin folders."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *map(str, paths)]), "OMP_NUM_THREADS": "1",
            "WANDB_MODE": "offline", **extra}


def run(args: list[str], env: dict[str, str], cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mish_site(tmp_path_factory) -> Path:
    return install(PLUGIN, tmp_path_factory.mktemp("mish") / "site")


# --- the registries and the public API, in this process -------------------------------------------------------------
@pytest.fixture
def scratch():
    """Entries registered by a test are removed after it (the registries are process-wide)."""
    added: list[tuple[str, str]] = []
    yield added
    for kind, name in added:
        registry.KINDS[kind].remove(name)


def test_a_registered_activation_and_norm_are_valid_everywhere_a_builtin_one_is(scratch) -> None:
    import torch

    nasplay.register_activation("softsign_t", torch.nn.Softsign, label="softsign")
    nasplay.register_norm("group2", lambda c: torch.nn.GroupNorm(2, c), label="GroupNorm")
    scratch += [("activation", "softsign_t"), ("norm", "group2")]
    assert "softsign_t" in ACTIVATIONS and "group2" in CONV_NORMS  # the genome's live views
    assert "softsign_t" in nasplay.knobs()["activation"].values.split(" | ")
    g = nasplay.apply("resnet18", activation="softsign_t", norm="group2", width=0.25, input="1x16")
    convs = [op for st in g.stages for b in st.blocks for br in b.branches for op in br.ops]
    assert {op.norm for op in convs} == {"group2"} and "softsign_t" in {op.act for op in convs}
    net = nasplay.build(g, num_classes=10)
    assert sum(isinstance(m, torch.nn.Softsign) for m in net.modules()) == 17
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in net.modules()) == 20
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    assert Genome.from_yaml(g.to_yaml()) == g
    from nasplay.draw.labels import op_label

    assert op_label([convs[0]]).endswith("softsign, GroupNorm")


def test_registries_refuse_duplicates_and_name_what_is_allowed(scratch) -> None:
    with pytest.raises(ValueError, match="activation 'relu' is already registered"):
        nasplay.register_activation("relu", "torch.nn:ReLU")
    with pytest.raises(ValueError, match="knob 'skip' is already registered"):
        nasplay.register_knob("skip", lambda g, v: g)
    with pytest.raises(ValueError, match="factory must be callable"):
        nasplay.register_activation("x1", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"act: 'mish' is not allowed; allowed: none, relu, .*scaled_tanh"):
        nasplay.validate(nasplay.get_genome("resnet18").replace(stem=(nasplay.Block((nasplay.Branch((nasplay.Conv(8, act="mish"),)),)),)))
    with pytest.raises(KnobError, match="unknown knob 'conv_se'"):
        nasplay.apply("resnet18", conv_se="on")


def test_a_registered_knob_applies_after_the_builtin_ones_and_before_the_input(scratch) -> None:
    seen = []

    def widen_head(g: Genome, value: str) -> Genome:
        seen.append((g.input.size, g.name))
        return g if value == "off" else g.replace(bn_eps=1e-3)

    nasplay.register_knob("eps3", widen_head, help="BatchNorm epsilon 1e-3")
    scratch.append(("knob", "eps3"))
    assert nasplay.knobs()["eps3"].values == "on | off" and "eps3" in str(nasplay.knobs())
    g = nasplay.apply("resnet18", eps3="yes", skip="none", input="1x16")
    assert g.bn_eps == 1e-3 and g.input.size == 16 and g.name == "resnet18+skip=none+eps3=on+input=1x16"
    assert seen == [(224, "resnet18+skip=none")]  # after skip, before the input knob
    with pytest.raises(KnobError, match=r"eps3='maybe' is not allowed; allowed: on \| off"):
        nasplay.apply("resnet18", eps3="maybe")
    nasplay.register_knob("broken_knob", lambda g, v: "not a genome")
    scratch.append(("knob", "broken_knob"))
    with pytest.raises(KnobError, match="returned str, not a Genome"):
        nasplay.apply("resnet18", broken_knob="on")


def test_se_is_public() -> None:
    import torch

    from nasplay.nn import SE

    assert nasplay.SE(squeeze=4).op == "se"
    se = SE(16, 4, "relu")
    assert se(torch.ones(1, 16, 3, 3)).shape == (1, 16, 3, 3)


def test_several_bases_each_compare_with_their_own_baseline(compose, tmp_path) -> None:
    """experiment.bases with a knob: a family per base; study.json records each arm's baseline."""
    from nasplay.sweep.plan import make_plan

    plan = make_plan(compose("arch=resnet18", "experiment.bases=[resnet18, vgg11]", "experiment.knob=activation",
                             "experiment.values=[tanh, relu]", "experiment.baseline=relu", "arch.knobs.width=0.125",
                             f"runs_dir={tmp_path}"), data_shape=(1, 16, 10))
    assert plan.baselines == {"resnet18 activation=tanh": "resnet18 activation=relu",
                              "resnet18 activation=relu": "resnet18 activation=relu",
                              "vgg11 activation=tanh": "vgg11 activation=relu", "vgg11 activation=relu": "vgg11 activation=relu"}
    assert plan.manifest().baselines == plan.baselines and plan.manifest().baseline == "resnet18 activation=relu"
    with pytest.raises(ValueError, match=r"experiment.baseline: 'gelu' is not a value of activation.*\['tanh', 'relu'\]"):
        make_plan(compose("arch=resnet18", "experiment.bases=[resnet18, vgg11]", "experiment.knob=activation",
                          "experiment.values=[tanh, relu]", "experiment.baseline=gelu", f"runs_dir={tmp_path}"),
                  data_shape=(1, 16, 10))
    one = make_plan(compose("arch=resnet18", "experiment.knob=activation", "experiment.values=[tanh, relu]",
                            "arch.knobs.width=0.125", f"runs_dir={tmp_path}"), data_shape=(1, 16, 10))
    assert one.baselines == {} and one.manifest().baseline == "activation=tanh"


def test_arch_takes_a_genome_file(compose, tmp_path) -> None:
    from nasplay.__main__ import genome_file_args
    from nasplay.sweep.plan import make_plan

    path = tmp_path / "my_net.yaml"
    path.write_text(nasplay.apply("vgg11", width=0.125).to_yaml())
    args = genome_file_args([f"arch={path}", "arch=vgg11", "arch.name=x"])
    assert args == [f"arch.name={path.resolve()}", "arch=vgg11", "arch.name=x"]
    plan = make_plan(compose(args[0], "experiment.knob=skip", "experiment.values=[none, identity]", f"runs_dir={tmp_path}"),
                     data_shape=(1, 16, 10))
    assert plan.cfg.experiment.name == "my_net" and plan.study_dir == tmp_path / "my_net" / "my_net"
    assert [a.name for a in plan.arms] == ["skip=none", "skip=identity"] and plan.arms[0].arch == str(path.resolve())
    assert plan.genomes["skip=identity"].stages[0].blocks[0].skip != "none"
    bad = tmp_path / "bad.yaml"
    bad.write_text("stem: [1, 2\n")
    with pytest.raises(ValueError, match="bad.yaml: not a genome file"):
        make_plan(compose(f"arch.name={bad}", f"runs_dir={tmp_path}"), data_shape=(1, 16, 10))


def user_experiment(conf: Path) -> Path:
    """A user's own config folder with an experiment (README "Ablate your own idea")."""
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "ablate_mish.yaml").write_text(textwrap.dedent("""\
        # @package _global_
        experiment:
          name: ablate_mish
          bases: [resnet18, vgg11]
          knob: activation
          values: [relu, mish]
          baseline: relu
        arch:
          knobs:
            width: 0.25
        """))
    return conf


def test_user_experiment_configs_come_from_the_users_folder(tmp_path) -> None:
    """--config-dir (or hydra.searchpath) adds a user's folder of config groups to nasplay's own."""
    conf = user_experiment(tmp_path / "my_conf")
    for flags in (["--config-dir", str(conf)], [f"hydra.searchpath=[file://{conf}]"]):
        p = run(["-m", "nasplay", *flags, "experiment=ablate_mish", "--cfg", "job"], env_with(), cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        cfg = yaml.safe_load(p.stdout)
        assert cfg["experiment"]["bases"] == ["resnet18", "vgg11"] and cfg["experiment"]["values"] == ["relu", "mish"]
        assert cfg["arch"]["knobs"] == {"width": 0.25} and cfg["data"]["name"] == "digits"  # nasplay's own groups still there
    p = run(["-m", "nasplay", "experiment=ablate_mish", "--cfg", "job"], env_with(), cwd=tmp_path)
    assert p.returncode != 0 and "ablate_mish" in p.stderr


# --- a plugin installed for real, in fresh processes -----------------------------------------------------------------
def test_an_installed_plugin_is_found_in_a_fresh_process(mish_site) -> None:
    env = env_with(mish_site)
    p = run(["-c", "import nasplay; print(nasplay.knobs()['activation'].values); print(nasplay.load_plugins())"], env)
    assert p.returncode == 0, p.stderr
    assert "| mish" in p.stdout and "{'mish': 'nasplay_mish'}" in p.stdout
    p = run([*CLI, "describe", "resnet18", "activation=mish", "conv_se=on", "input=1x16", "--json"], env)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["layers"]["se"] == 16 and d["name"] == "resnet18+activation=mish+conv_se=on+input=1x16"
    p = run([*CLI, "knobs"], env)
    assert "conv_se: on | off" in p.stdout and "squeeze-and-excitation" in p.stdout
    p = run([*CLI, "knobs", "vgg11"], env)  # what each value does to a network, the plugin's knob included
    assert [line.split()[:2] for line in p.stdout.splitlines() if "conv_se=" in line] == [["conv_se=on", "changed"],
                                                                                          ["conv_se=off", "same"]]
    p = run([*CLI, "describe", "resnet18", "activation=mish"], env_with())  # without the plugin
    assert p.returncode == 2 and "activation='mish' is not allowed" in p.stderr


def test_a_broken_plugin_is_named_and_stops_every_command(tmp_path, mish_site) -> None:
    pkg = tmp_path / "nasplay_broken"
    (pkg / "nasplay_broken").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "nasplay-broken"
        version = "0.0.1"
        [project.entry-points."nasplay.plugins"]
        broken = "nasplay_broken"
        [tool.setuptools]
        packages = ["nasplay_broken"]
        """))
    (pkg / "nasplay_broken" / "__init__.py").write_text("import nasplay\nnasplay.register_activation('relu', 'torch.nn:ReLU')\n")
    site = install(pkg, tmp_path / "site")
    env = env_with(mish_site, site)
    for args in ([*CLI, "list"], ["-m", "nasplay", "arch=resnet18", f"runs_dir={tmp_path / 'runs'}"]):
        p = run(args, env)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert p.stderr.strip().splitlines()[-1].startswith(
            "error: nasplay plugin 'broken' (nasplay_broken, from nasplay-broken 0.0.1) failed to load: ValueError: "
            "activation 'relu' is already registered"), p.stderr
    assert not (tmp_path / "runs").exists()
    p = run([*CLI, "describe", "resnet18", "activation=mish"], {**env, "NASPLAY_DISABLE_PLUGINS": "broken"})
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
def test_a_two_worker_smoke_study_ablates_the_plugin_on_two_bases(tmp_path, mish_site) -> None:
    """The issue's study: Mish against ReLU on ResNet-18 and VGG-11, two workers, each base against its own baseline;
    then report, describe and draw in fresh processes."""
    env = env_with(mish_site)
    conf = user_experiment(tmp_path / "my_conf")
    p = run(["-m", "nasplay", "--config-dir", str(conf), "experiment=ablate_mish", "experiment.seeds=[0, 1]", "sweep.workers=2",
             *SMALL, f"runs_dir={tmp_path}"], env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 workers" in p.stdout and "[w0] trial" in p.stdout and "[w1] trial" in p.stdout
    study = tmp_path / "ablate_mish" / "ablate_mish"
    manifest = json.loads((study / "study.json").read_text())
    assert manifest["baselines"] == {"resnet18 activation=relu": "resnet18 activation=relu",
                                     "resnet18 activation=mish": "resnet18 activation=relu",
                                     "vgg11 activation=relu": "vgg11 activation=relu", "vgg11 activation=mish": "vgg11 activation=relu"}
    report = json.loads((study / "report.json").read_text())
    assert report["trials"]["COMPLETE"] == 8
    assert {(c["arm"], c["baseline"], c["family"]) for c in report["comparisons"]} == {
        ("resnet18 activation=mish", "resnet18 activation=relu", 1), ("vgg11 activation=mish", "vgg11 activation=relu", 1)}
    md = (study / "report.md").read_text()
    assert "baselines, one per base" in md and "> A smoke run (3 training batches an epoch" in md  # no verdicts on it
    assert all(c["withheld"] == "smoke run" for c in report["comparisons"])

    out = tmp_path / "again"
    p = run([*CLI, "report", str(study), "--out", str(out)], env)
    assert p.returncode == 0, p.stderr
    again = json.loads((out / "report.json").read_text())
    assert [(c["arm"], c["baseline"]) for c in again["comparisons"]] == [(c["arm"], c["baseline"]) for c in report["comparisons"]]
    p = run([*CLI, "describe", "vgg11", "activation=mish", "conv_se=on", "width=0.125", "input=1x16"], env)
    assert p.returncode == 0 and "se 8" in p.stdout, p.stdout + p.stderr
    p = run([*CLI, "draw", "resnet18", "activation=mish", "conv_se=on", "--out", str(tmp_path / "r.svg")], env)
    assert p.returncode == 0, p.stderr
    svg = (tmp_path / "r.svg").read_text()
    assert "Mish" in svg and "SE, " in svg
    p = run([*CLI, "diff", "resnet18", str(_genome_file(tmp_path, env))], env)
    assert p.returncode == 0 and "Mish" in p.stdout, p.stdout + p.stderr


def _genome_file(tmp_path: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "resnet18_mish.yaml"
    p = run(["-c", f"import nasplay; open({str(path)!r}, 'w').write(nasplay.apply('resnet18', activation='mish').to_yaml())"], env)
    assert p.returncode == 0, p.stderr
    return path


@pytest.mark.slow
def test_a_name_registered_only_in_a_wrappers_main_stops_the_workers_and_the_command_fails(tmp_path) -> None:
    """The issue's crash: a wrapper registers an activation in its ``__main__`` and runs a two-worker study. Spawned
    workers cannot import a ``__main__``: each stops naming what it lacks, and the command exits non-zero (was 0)."""
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(textwrap.dedent(f"""\
        import sys
        if __name__ == "__main__":
            import nasplay
            nasplay.register_activation("mish2", "torch.nn:Mish")
            from nasplay.__main__ import main
            main(["arch=resnet18", "experiment.knob=activation", "experiment.values=[relu, mish2]", "experiment.seeds=[0]",
                  "experiment.name=wrapped", "sweep.workers=2", *{list(SMALL)!r}, "runs_dir={tmp_path / 'runs'}"])
        """))
    p = run([str(wrapper)], env_with(), cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "lacks activation 'mish2' (registered by __main__)" in p.stdout
    died = [x for x in p.stdout.splitlines() if x.startswith("error: worker")]  # one line a worker, the cause in it
    assert [x.split(": this process lacks")[0] for x in died] == [f"error: worker {i} died (exit code 1)" for i in (0, 1)], p.stdout
