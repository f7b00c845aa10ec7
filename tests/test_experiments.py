"""Every experiment of conf/experiment/ composes and runs end to end under debug=smoke, in-process, with the
real parts (Hydra configs, Optuna journal storage, Lightning on the embedded digits), and leaves its report.

The smoke budget (one short epoch per trial; here two batches and two seeds) checks the plumbing, not the
effects; sampled studies run fewer trials than their default (``SMOKE_TRIALS``) to keep the set within minutes.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import shlex
from pathlib import Path

import pytest
import torch
from rich.console import Console

from nasplay.experiment import run_experiment as run_study
from nasplay.report.load import load_study
from nasplay.sweep.plan import make_plan, to_config
from nasplay.sweep.results import read_csv

CONF = Path(__file__).resolve().parents[1] / "conf" / "experiment"
EXPERIMENTS = sorted(p.stem for p in CONF.glob("*.yaml"))
# Sampled studies: trials under test (search_pareto: its ten classic networks and two searched ones).
SMOKE_TRIALS = {"search_pareto": 12, "search_classic": 12}
SMOKE_PAIRS = {"edf_skip": 4}  # paired design spaces: architectures, each trained under every arm
# The figures each kind of study must produce (PNG and SVG).
FIGURES = {"ablation": ("effects", "learning_curves", "pareto"), "ladder": ("effects", "learning_curves", "pareto"),
           "design_space": ("edf", "learning_curves", "pareto"), "search": ("learning_curves", "pareto")}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def run(cfg):
    buf = io.StringIO()
    result = run_study(cfg, console=Console(file=buf, width=200))
    return result, buf.getvalue()


def test_every_innovation_has_an_experiment():
    need = {"ablate_skip", "ablate_depth", "ablate_factorization", "ablate_cardinality", "ablate_separable",
            "ablate_activation", "ablate_batchnorm", "ablate_pooling", "ablate_gap", "ablate_aux", "ablate_bottleneck",
            "ablate_branches", "ladder", "edf_skip", "search_pareto"}
    assert need <= set(EXPERIMENTS)


def header(name: str) -> str:
    """The comment lines that open an experiment file (after ``# @package _global_``)."""
    lines = (CONF / f"{name}.yaml").read_text().splitlines()
    return "\n".join(line for line in itertools.takewhile(lambda x: x.startswith("#"), lines[1:]))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_header_commands_run_and_the_time_is_stated(compose, name, tmp_path):
    """The header gives the expected time as a number of minutes, and commands (the default, a CIFAR-10 / GPU
    variant) that compose into a config the schema accepts, for this experiment."""
    text = header(name)
    assert re.search(r"\b\d+(\.\d+)? minutes\b", text), f"{name}: the header states no time in minutes"
    commands = [shlex.split(line.lstrip("#"), comments=True) for line in text.splitlines()
                if line.lstrip("# ").startswith("python -m nasplay")]
    assert [f"experiment={name}"] in [c[3:] for c in commands], f"{name}: the header lacks the plain command"
    assert any("data=cifar10" in c for c in commands), f"{name}: the header lacks a CIFAR-10 variant"
    for c in commands:
        assert c[:3] == ["python", "-m", "nasplay"]
        cfg = to_config(compose(*c[3:], f"runs_dir={tmp_path}"))
        assert cfg.experiment.name == name, c
        if "data=cifar10" in c:
            assert cfg.data.name == "cifar10", c


HELD = sorted(n for n in EXPERIMENTS if "\n  keep: flops" in (CONF / f"{n}.yaml").read_text()
              or "\n  keep: params" in (CONF / f"{n}.yaml").read_text())


@pytest.mark.parametrize("name", HELD)
def test_equal_compute_holds_for_the_networks_as_trained(compose, name, tmp_path):
    """keep=flops|params is measured on each arm exactly as it trains (the data's classes and input): every arm
    is within tol of the baseline, and study.json records what each arm has."""
    from nasplay.complexity import complexity, measure

    plan = make_plan(compose(f"experiment={name}", f"runs_dir={tmp_path}"))
    keep, tol = plan.cfg.experiment.keep, plan.cfg.experiment.tol
    manifest = plan.manifest()
    arms = {a.name: a for a in manifest.arms}
    base = arms[manifest.baseline]
    assert manifest.keep == keep
    for name_, a in arms.items():
        g = plan.genomes[name_]
        cx = complexity(g)
        assert g.classes == 10 and (g.input.channels, g.input.size) == (1, 16)  # the digits, as trained
        assert (a.params, a.flops) == (cx.params, cx.flops)
        held = measure(g, keep) / measure(plan.genomes[base.name], keep)
        assert abs(held - 1) <= tol, (name_, held)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_defaults(compose, name):
    """The default budget: >= 3 seeds, the embedded data, every arm's network valid (checked by make_plan)."""
    plan = make_plan(compose(f"experiment={name}"))
    c = plan.cfg
    assert c.experiment.name == name and c.data.name == "digits" and len(c.experiment.seeds) >= 3
    assert c.trainer.max_epochs <= 8
    if c.sweep.sampler == "grid":
        assert len(plan.arms) >= 2 and plan.cfg.experiment.baseline in [a.name for a in plan.arms]
    else:
        assert c.sweep.space and c.sweep.n_trials
    if c.experiment.keep:
        assert c.experiment.keep in ("flops", "params")


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_under_smoke(compose, tmp_path, name):
    # debug=smoke made smaller still: two seeds (a CI needs two), two training batches of 32, one validation
    # batch, no test pass (the report then compares val/acc_best).
    overrides = [f"experiment={name}", "debug=smoke", "logger=none", f"runs_dir={tmp_path}", "progress=false",
                 "experiment.seeds=[0,1]", "data.limit=128", "data.batch_size=32", "data.eval_batch_size=64",
                 "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.test=false"]
    if name in SMOKE_TRIALS:
        overrides.append(f"sweep.n_trials={SMOKE_TRIALS[name]}")
    if name in SMOKE_PAIRS:
        overrides.append(f"experiment.pairs={SMOKE_PAIRS[name]}")
    cfg = compose(*overrides)
    plan = make_plan(cfg)
    result, text = run(cfg)
    assert f"study '{name}-smoke' (new)" in text  # queued classics (search_pareto) do not make a new study look resumed
    c = plan.cfg
    from nasplay.sweep.loop import grid_points

    # a grid: arms x seeds, and the tuning trials (experiment.tune), every budget, or every sampled pair
    expected = len(grid_points(plan)) if c.sweep.sampler == "grid" else c.sweep.n_trials
    assert result.counts["COMPLETE"] + result.counts["PRUNED"] == expected, text
    # A conditional search's refused samples (knob combinations, over experiment.max_flops) fail before they train.
    refused = [r for r in read_csv(Path(result.study_dir) / "results.csv") if r["state"] == "FAIL"]
    assert result.counts["FAIL"] == len(refused) and all(str(r["fail_reason"]).startswith("Refused: ") for r in refused), text
    assert not refused or c.experiment.conditional

    study_dir = Path(result.study_dir)
    assert study_dir == tmp_path / name / f"{name}-smoke"
    rows = [r for r in read_csv(study_dir / "results.csv") if r["state"] != "FAIL"]
    assert len(rows) == expected
    arms = {r["arm"] for r in rows}
    if c.sweep.sampler == "grid":
        assert arms == {a.name for a in plan.arms}
        compared = [r for r in rows if r.get("stage", "") != "tune"]
        per_arm = sorted(c.experiment.seeds * len(plan.budgets))
        assert c.experiment.pairs or all(sorted(int(r["seed"]) for r in compared if r["arm"] == a.name) == per_arm for a in plan.arms)
        if c.experiment.pairs:  # every sampled architecture under every arm
            assert sorted((r["pair"], r["arm"]) for r in rows) == sorted((str(i), a.name) for i in range(c.experiment.pairs)
                                                                         for a in plan.arms)
    if plan.classics:  # each classic network once, complete (never pruned), before the searched ones
        classic = [r for r in rows if r["arm"].startswith("classic ")]
        assert sorted(r["arm"] for r in classic) == sorted(a.name for a in plan.classics)
        assert all(r["state"] == "COMPLETE" for r in classic)
        assert [int(r["number"]) for r in classic] == list(range(len(plan.classics)))
    if name == "edf_skip":
        assert {r["skip"] for r in rows} <= {"identity", "none"} and all(r["param.knobs.width"] for r in rows)

    # The end-of-study report, written by the runner.
    assert f"report: {study_dir / 'report.md'}" in text
    report = json.loads((study_dir / "report.json").read_text())
    md = (study_dir / "report.md").read_text()
    assert report["trials"]["total"] == expected + len(refused) and len(md) > 200
    if c.experiment.conditional:  # the search report: front, diffs, importances
        search = (study_dir / "search.md").read_text()
        assert "## Pareto front" in search and "## Which innovation matters" in search
    kind = load_study(study_dir).kind
    assert report["kind"] == kind == (c.experiment.kind or ("ablation" if name.startswith("ablate") else kind))
    means = [c_ for c_ in [*report["comparisons"], *(r for rs in report["secondary"].values() for r in rs)]
             if c_.get("kind", "means") == "means"]
    for fig in FIGURES[kind]:
        if fig == "effects" and kind == "ablation" and not means:
            # a time-to-target primary no seed reached in a smoke run (censored), with no accuracy to draw (no test pass)
            assert report["comparisons"] and all(c_["kind"] == "censored" for c_ in report["comparisons"])
            continue
        assert fig in report["figures"], (fig, report["figures"])
        for f in report["figures"][fig]:
            assert (study_dir / f).stat().st_size > 1000, f
    if kind in ("ablation", "ladder"):
        assert len(report["comparisons"]) == len(plan.arms) - 1
        assert all(c_["verdict"] for c_ in report["comparisons"])
    if kind == "design_space":
        assert [p["arm"] for p in report["design_space"]["populations"]] == [a.name for a in plan.arms]
        assert report["design_space"]["tests"][0]["ks"]["statistic"] is not None


@pytest.mark.slow
def test_report_goes_to_wandb_and_failures_do_not_sink_the_study(compose, tmp_path, monkeypatch):
    """With the wandb logger the report is a W&B run of its own; a report that raises is printed, the study stands."""
    from wandb_read import read_run

    base = ["experiment=ablate_batchnorm", "debug=smoke", "experiment.seeds=[0,1,2]", "experiment.tune=null", "data.limit=128",
            "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "progress=false", f"runs_dir={tmp_path}"]
    result, text = run(compose(*base, "logger=wandb"))
    assert result.counts["COMPLETE"] == 6 and "report: W&B run" in text
    runs = sorted((Path(result.study_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 7  # six trials and the report
    jobs = [read_run(r).job_type for r in runs]
    assert jobs.count("report") == 1
    report_run = runs[jobs.index("report")]
    assert (report_run / "files" / "report.md").read_text() == (Path(result.study_dir) / "report.md").read_text()

    import nasplay.experiment as experiment_mod

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(experiment_mod, "write_report", broken)
    result, text = run(compose(*base, "logger=none", "study=broken"))
    assert result.counts["COMPLETE"] == 6
    assert "report failed (RuntimeError: disk full); write it with: nasplay report" in text


def test_space_file_and_classics_are_checked(compose, tmp_path):
    with pytest.raises(ValueError, match=r"experiment.space: no search space 'nope'.*resnet_small"):
        make_plan(compose("experiment=edf_skip", "experiment.space=nope"))
    with pytest.raises(ValueError, match=r"sweep.space.knobs.skip: skip is the knob under study"):
        make_plan(compose("experiment=edf_skip", "sweep.space={knobs.skip: [none]}"))
    with pytest.raises(ValueError, match=r"experiment.classics.vgg16: .*width"):
        make_plan(compose("experiment=search_pareto", "experiment.classics={vgg16: {knobs: {width: -1}}}"))
    with pytest.raises(ValueError, match=r"experiment.classics are trained beside a sampled search"):
        make_plan(compose("experiment=search_pareto", "sweep=grid"))
    plan = make_plan(compose("experiment=search_pareto", "sweep.space={knobs.width: [0.25]}"))
    assert plan.cfg.sweep.space["knobs.width"] == [0.25] and "knobs.depth" in plan.cfg.sweep.space  # given entries win


def test_branches_knob():
    from nasplay import apply, build, complexity, get_genome
    from nasplay.space.shapes import walk

    g = apply("inception_v1", branches="single", input="1x32")
    multi = apply("inception_v1", input="1x32")
    # Every Inception module became one path with the module's output width: every block outputs the same shape.
    assert all(len(b.branches) == 1 for st in g.stages for b in st.blocks)
    assert sum(len(b.branches) > 1 for st in multi.stages for b in st.blocks) == 9
    assert walk(g).blocks == walk(multi).blocks
    net = build(g, 10).eval()
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    same = apply("inception_v1", branches="single", keep="flops", input="1x32")
    ref = complexity(apply("inception_v1", input="1x32")).flops
    assert abs(complexity(same).flops - ref) / ref <= 0.02
    assert apply("inception_v1", branches="multi").hash == get_genome("inception_v1").hash
    with pytest.raises(ValueError, match=r"branches='single' has no meaning on vgg16"):
        apply("vgg16", branches="single")
    with pytest.raises(ValueError, match=r"branches='multi' has no meaning on resnet18"):
        apply("resnet18", branches="multi")


def test_cardinality_uses_resnext_templates_with_only_grouped_widths_resolved(compose, tmp_path):
    """ablate_cardinality re-solves only the grouped convs' channels per group (keep_by=group_width): every layer
    outside the grouped blocks' inner convs is the baseline's, every arm keeps >= 4 channels per group, and the
    templates come out as ResNeXt's Table 3 scaled to width 3/8 (1x24d, 2x15d, 4x9d, 8x5d)."""
    from nasplay.complexity import measure
    from nasplay.space.genome import Conv
    from nasplay.space.knobs.tree import iter_ops

    plan = make_plan(compose("experiment=ablate_cardinality", f"runs_dir={tmp_path}"))
    arms = {a.name: a for a in plan.manifest().arms}
    assert [arms[f"cardinality={c}"].grouping for c in (1, 2, 4, 8)] == ["1x24d", "2x15d", "4x9d", "8x5d"]

    def convs(g):
        return {s.path: op for op, s in iter_ops(g) if isinstance(op, Conv)}

    base = convs(plan.genomes["cardinality=1"])
    for name, g in plan.genomes.items():
        assert abs(measure(g, "flops") / measure(plan.genomes["cardinality=1"], "flops") - 1) <= 0.05, name
        ops = convs(g)
        assert ops.keys() == base.keys()
        for path, op in ops.items():
            block = path.rsplit(".ops[", 1)[0]
            grouped = ops.get(f"{block}.ops[1]")
            if grouped is not None and grouped.groups > 1 and path.endswith((".ops[0]", ".ops[1]")):
                assert op.out == grouped.out and grouped.out // grouped.groups >= 4, (name, path)  # the inner widths
            else:  # everything else (stem, each bottleneck's 1x1 expand, shortcuts) is the baseline's
                assert (op.out, op.groups) == (base[path].out, base[path].groups), (name, path)


def test_keep_by_refuses_what_it_cannot_hold_and_few_channels_per_group(compose, tmp_path):
    """32 groups at width 3/8 would be 32x1d: refused before any training, naming the closest value; and holding
    compute by the uniform width never leaves a grouped conv under 4 channels per group."""
    with pytest.raises(ValueError, match=r"arm 'cardinality=32'.*group_width.*closest: .* at group_width=1"):
        make_plan(compose("experiment=ablate_cardinality", "experiment.values=[1,32]", f"runs_dir={tmp_path}"))
    with pytest.raises(ValueError, match=r"32 groups of \d channel\(s\) \(fewer than 4"):
        make_plan(compose("experiment=ablate_cardinality", "experiment.values=[1,32]", "experiment.keep_by=null",
                          "arch.knobs.width=0.25", f"runs_dir={tmp_path}"))
    with pytest.raises(ValueError, match=r"experiment.keep_by must be one of \['group_width'\]"):
        make_plan(compose("experiment=ablate_cardinality", "experiment.keep_by=width", f"runs_dir={tmp_path}"))
    with pytest.raises(ValueError, match=r"experiment.keep_by=group_width .*set experiment.keep"):
        make_plan(compose("experiment=ablate_cardinality", "experiment.keep=null", f"runs_dir={tmp_path}"))


def test_keep_by_finds_the_papers_templates_at_full_size():
    """At full width and depth (the GPU line's network, 32 px CIFAR) solving channels per group to ResNet-50's FLOPs
    gives ResNeXt's own templates: 2x40d, 4x24d, 8x13d (the paper: 8x14d) and 32x4d."""
    from nasplay.complexity import resolve
    from nasplay.space.knobs.wiring import grouping

    base = {"depth": [3, 4, 6, 3]}
    got = [grouping(resolve("resnet50", {**base, "cardinality": c}, (3, 32, 10), keep="flops", tol=0.05,
                                   base=base, keep_by="group_width")) for c in (1, 2, 4, 8, 32)]
    assert got == [(1, 64), (2, 40), (4, 24), (8, 13), (32, 4)]
