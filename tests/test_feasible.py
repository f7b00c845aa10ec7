"""The refusal-free ask of a conditional search, regularized evolution and NSGA-II's crossover (issue 21).

Proposals go through the study's real claim (``FeasibleSampler.propose``) on the real search_classic space; the
accuracies are told without training (a fixed function of the genome), so the sampling itself is what is tested.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import optuna
import pytest

from nasplay.complexity import complexity, resolve
from nasplay.sweep.conditional import allowed, data_shape_of, knob_of, read_refusals
from nasplay.sweep.feasible import FeasibleSampler, SpaceEmpty, refusal_records
from nasplay.sweep.loop import open_study
from nasplay.sweep.plan import make_plan
from nasplay.sweep.samplers import make_sampler, worker_seed
from nasplay.sweep.trial import suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)
BASES = "[lenet5, vgg16, resnet50, xception]"


def _plan(compose, tmp_path, *extra):
    return make_plan(compose("experiment=search_classic", f"runs_dir={tmp_path}", "logger=none", "experiment.classics=null",
                             f"sweep.space={{arch: {BASES}}}", *extra))


def _fake(trial, n_objectives: int) -> list[float]:
    """A made-up accuracy fixed by the genome (and its FLOPs as the second objective)."""
    h = int(hashlib.md5(trial.user_attrs["genome_hash"].encode()).hexdigest()[:6], 16) / 0xFFFFFF
    return [0.5 + 0.4 * h, float(trial.user_attrs["flops"])][:n_objectives]


def _run(plan, study, n: int) -> list:
    """Claim ``n`` trials as the loop does (a queued classic first, else a proposal) and tell each a made-up value."""
    out = []
    for _ in range(n):
        waiting = any(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))
        trial = study.ask() if waiting else study.sampler.propose(study)
        spec = suggest(trial, plan)
        assert not trial.user_attrs.get("refused"), trial.user_attrs["refused"]
        if spec.classic:  # the runner measures a classic when it trains it
            g = plan.trial_genome(spec.arm, spec.arch, spec.knobs, data_shape_of(plan), classic=True)
            cx = complexity(g, num_classes=g.classes)
            for k, v in {"genome_hash": g.hash, "flops": int(cx.flops), "params": int(cx.params), "seed": spec.seed}.items():
                trial.set_user_attr(k, v)
        study.tell(trial, _fake(trial, len(plan.cfg.sweep.objectives)))
        out.append(trial.number)
    return out


def test_a_refusal_is_not_a_trial(compose, tmp_path):
    plan = _plan(compose, tmp_path)
    study = open_study(plan)
    assert isinstance(study.sampler, FeasibleSampler)
    c, shape = plan.cfg, data_shape_of(plan)
    _run(plan, study, 14)
    trials = study.get_trials()
    assert len(trials) == 14 and all(t.state.name == "COMPLETE" for t in trials)  # no FAIL: refusals are not trials
    pairs = Counter((t.user_attrs["genome_hash"], t.user_attrs["seed"]) for t in trials)
    assert max(pairs.values()) == 1  # the same genome and seed never twice
    for t in trials:  # what trains is feasible: it builds and is within the budget
        g = resolve(t.params["arch"], t.user_attrs["knobs"], shape)
        assert g.hash == t.user_attrs["genome_hash"] and t.user_attrs["flops"] == complexity(g, num_classes=10).flops
        assert t.user_attrs["flops"] <= c.experiment.max_flops
    records = refusal_records(study)
    assert records, "this space refuses about half of the random proposals: some must have been refused"
    assert sum(t.user_attrs["refused_before"] for t in trials) == len(records)
    for r in records:  # each refusal is what the knobs or the budget say of that proposal
        if r["cause"] == "budget":
            assert r["flops"] > c.experiment.max_flops and r["violation"] == pytest.approx(r["flops"] / c.experiment.max_flops - 1)
        else:
            with pytest.raises(ValueError):
                resolve(r["arch"], r["knobs"], shape)
    doc = read_refusals(plan.study_dir)
    assert [r["reason"] for r in doc["refusals"]] == [r["reason"] for r in records]
    probes = study.sampler._probes()  # measured before the search, shown to the sampler, not trials nor refusals
    assert doc["probes_over_budget"] == len(probes) > 0
    assert all(p[2] > 0 and p[3]["flops"] > c.experiment.max_flops for p in probes)

    from nasplay.report.load import load_study
    from nasplay.report.search import refusals
    from nasplay.sweep.loop import save_results

    save_results(plan, study)
    rep = refusals(load_study(plan.study_dir))
    assert rep["n"] == len(records) and rep["as_trials"] == 0 and rep["trained"] == 14
    assert rep["per_trained"] == pytest.approx(len(records) / 14)


def test_an_empty_space_stops_with_a_clear_error(compose, tmp_path):
    plan = _plan(compose, tmp_path, "experiment.max_flops=1000")  # every network is over this
    study = open_study(plan)
    study.sampler.attempts = 12
    with pytest.raises(SpaceEmpty, match=r"12 proposals in a row were refused .*experiment.max_flops=1000"):
        study.sampler.propose(study)
    assert study.get_trials() == [] and len(refusal_records(study)) == 12  # nothing trained, nothing failed


def test_a_genome_trains_once_per_seed(compose, tmp_path):
    plan = _plan(compose, tmp_path, "experiment.space=null", "sweep.space={arch: [vgg16], knobs.norm: [batch, none]}",
                 "experiment.seeds=[0,1]")
    study = open_study(plan)
    _run(plan, study, 4)  # two networks x two seeds: all there is
    got = sorted((t.params["vgg16.norm"], t.user_attrs["seed"]) for t in study.get_trials())
    assert got == [("batch", 0), ("batch", 1), ("none", 0), ("none", 1)]
    study.sampler.attempts = 30
    with pytest.raises(SpaceEmpty, match="already trained"):
        study.sampler.propose(study)
    assert len(study.get_trials()) == 4 and not refusal_records(study)


def test_workers_sample_with_their_own_seeds(compose):
    assert worker_seed(0, None) == 0 and worker_seed(0, 0) == 0 and worker_seed(3, 2) == 2003 and worker_seed(None, 1) is None
    from omegaconf import OmegaConf

    from nasplay.sweep.config import SweepConfig

    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SweepConfig), compose("sweep=random", "sweep.seed=5").sweep))
    draws = []
    for w in (0, 1):
        s = optuna.create_study(sampler=make_sampler(cfg, worker=w))
        draws.append([s.ask().suggest_float("x", 0, 1) for _ in range(3)])
    assert draws[0] != draws[1]
    alone = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    assert draws[0] == [alone.ask().suggest_float("x", 0, 1) for _ in range(3)]  # worker 0 samples as one process does


@pytest.mark.slow
@pytest.mark.parametrize("line", [(), ("sweep=tpe", "sweep.objectives=[val/acc]")], ids=["nsga2", "tpe"])
def test_search_classic_refuses_few_proposals(compose, tmp_path, line):
    """The configured search_classic (the ten classics, then 30 searched networks) and its TPE line, sampled without
    training: the sampler learns the infeasible region from the refusals and the over-budget classics."""
    plan = make_plan(compose("experiment=search_classic", f"runs_dir={tmp_path}", "logger=none", *line))
    study = open_study(plan)
    _run(plan, study, plan.cfg.sweep.n_trials)
    refused = len(refusal_records(study))
    assert all(t.state.name == "COMPLETE" for t in study.get_trials())
    # random search refuses about 1.4 proposals per trained network here (57 for 40, measured the same way)
    assert refused <= 0.5 * plan.cfg.sweep.n_trials, refused  # at most one refused proposal per two trained networks
    assert read_refusals(plan.study_dir)["probes_over_budget"] > 10  # what TPE learns the dead bases from


# --- regularized evolution ----------------------------------------------------------------------------------


def test_evolution_mutates_one_knob_within_what_the_base_accepts(compose, tmp_path):
    from optuna.distributions import CategoricalDistribution

    from nasplay.sweep.evolution import RegularizedEvolutionSampler
    from nasplay.sweep.space import choices

    plan = make_plan(compose("experiment=search_classic", f"runs_dir={tmp_path}", "logger=none"))  # all ten bases
    shape = data_shape_of(plan)
    table = allowed(plan.cfg, shape)
    sampler = RegularizedEvolutionSampler(population_size=2, sample_size=1, seed=0)
    bases = list(table)
    n = 0
    for base, entry in table.items():
        # the base's own point: every knob at the value that leaves the base as it is
        params = {"arch": base}
        dists = {"arch": CategoricalDistribution(bases)}
        for knob, spec in entry["knobs"].items():
            if entry["defaults"][knob] is None:  # the base's own value is not one of the listed ones
                continue
            labels, back = choices(list(spec))
            params[f"{base}.{knob}"] = next(lab for lab, v in back.items() if v == entry["defaults"][knob])
            dists[f"{base}.{knob}"] = CategoricalDistribution(labels)
        for name, d in dists.items():
            if name == "arch":
                continue
            for _ in range(6):
                v = sampler.mutate(d, params[name])
                assert v != params[name] and v in d.choices  # another value the base accepts
                knob = knob_of(name)[1]
                value = choices(list(entry["knobs"][knob]))[1][v]
                resolve(base, {**entry["own"], knob: value}, shape)  # one knob moved from the base's own point: never refused
                n += 1
        assert sampler.mutate(dists["arch"], base) in set(bases) - {base}
    assert n > 60


def test_evolution_breeds_from_the_study_and_resumes(compose, tmp_path):
    plan = _plan(compose, tmp_path, "sweep=evolution", "sweep.options.population_size=4", "sweep.options.sample_size=2")
    study = open_study(plan)
    inner = study.sampler.inner
    _run(plan, study, 12)
    trials = study.get_trials()
    children = [t for t in trials if "evolution:parent" in t.system_attrs.get("nasplay:proposal", {})]
    assert len(children) >= 6  # once 4 networks had trained, every proposal is a child
    shape = data_shape_of(plan)
    table = allowed(plan.cfg, shape)
    for t in children:
        attrs = t.system_attrs["nasplay:proposal"]
        parent = attrs["evolution:parent_params"]  # (its number is the proposer's scratch study's)
        assert any(p.params == parent and p.number < t.number for p in trials)  # a network that trained before it
        changed = {k for k in set(t.params) | set(parent) if t.params.get(k) != parent.get(k)}
        if t.params["arch"] == parent["arch"]:  # one knob moved, within what the base accepts
            assert changed == {attrs["evolution:mutated"]}
        for name, v in t.params.items():
            if name != "arch":
                assert v in table[t.params["arch"]]["knobs"][knob_of(name)[1]]
    # resume: a new process (a new sampler) sees the same population and breeds from it
    population = [t.params for t in inner.population(study)]
    again = open_study(plan)
    assert [t.params for t in again.sampler.inner.population(again)] == population
    _run(plan, again, 1)
    last = again.get_trials()[-1]
    assert last.system_attrs["nasplay:proposal"]["evolution:parent_params"] in population


@pytest.mark.parametrize("bad, match", [("sweep.options.population_size=1", "population_size must be an int >= 2"),
                                        ("sweep.options.sample_size=11", "sample_size .* at most")])
def test_evolution_sizes_are_checked(compose, tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        _plan(compose, tmp_path, "sweep=evolution", bad)


@pytest.mark.slow
def test_evolution_runs_with_two_workers(compose, tmp_path):
    from rich.console import Console

    from nasplay.sweep.runner import run_study

    cfg = compose("experiment=search_classic", f"runs_dir={tmp_path}", "logger=none", "progress=false", "experiment.classics=null",
                  f"sweep.space={{arch: {BASES}}}", "sweep=evolution", "sweep.options.population_size=2",
                  "sweep.options.sample_size=1", "sweep.n_trials=6", "sweep.workers=2", "data.limit=256",
                  "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.test=false")
    buf = io.StringIO()
    result = run_study(cfg, console=Console(file=buf, width=200))
    assert result.counts["COMPLETE"] == 6 and result.counts["FAIL"] == 0, buf.getvalue()
    from nasplay.sweep.storage import make_storage

    study = optuna.load_study(study_name=result.name, storage=make_storage(None, Path(result.study_dir)))
    trials = study.get_trials()
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers trained
    assert max(Counter((t.user_attrs["genome_hash"], t.user_attrs["seed"]) for t in trials).values()) == 1
    assert any("evolution:parent" in t.system_attrs.get("nasplay:proposal", {}) for t in trials)
    doc = read_refusals(result.study_dir)
    assert doc is None or all(r["reason"] for r in doc["refusals"])
    assert json.loads((Path(result.study_dir) / "space.json").read_text())["bases"]


# --- NSGA-II's crossover on the conditional space ---------------------------------------------------------


def test_nsga2_crosses_over_parents_of_one_base():
    from optuna.distributions import CategoricalDistribution

    from nasplay.sweep.nsga2 import ConditionalNSGAIISampler

    sampler = ConditionalNSGAIISampler(population_size=6, mutation_prob=0.0, crossover_prob=1.0, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    arch = CategoricalDistribution(["a", "b"])
    knob = CategoricalDistribution([0, 1, 2, 3])
    key = ConditionalNSGAIISampler._GENERATION_KEY
    parents = {"a": [(0, 0), (1, 1), (2, 2)], "b": [(3, 3), (0, 1), (1, 0)]}
    for base, values in parents.items():
        for i, (x, y) in enumerate(values):
            study.add_trial(optuna.trial.create_trial(
                params={"arch": base, f"{base}.x": x, f"{base}.y": y},
                distributions={"arch": arch, f"{base}.x": knob, f"{base}.y": knob},
                values=[0.5 + 0.1 * i, 10.0 - i], system_attrs={key: 0}))
    mixed = 0
    for _ in range(40):
        t = study.ask()
        space = sampler.infer_relative_search_space(study, t._cached_frozen_trial)
        assert set(space) == {"arch", "a.x", "a.y", "b.x", "b.y"}  # the union, not the intersection ({arch})
        child = sampler.sample_relative(study, t._cached_frozen_trial, space)
        base = child["arch"]
        assert set(child) == {"arch", f"{base}.x", f"{base}.y"}  # a child of one base, every knob from its parents
        pair = (child[f"{base}.x"], child[f"{base}.y"])
        xs = {x for x, _ in parents[base]}
        ys = {y for _, y in parents[base]}
        assert pair[0] in xs and pair[1] in ys
        mixed += pair not in parents[base]  # crossover mixed two parents
        study.tell(t, state=optuna.trial.TrialState.FAIL)
    assert mixed >= 5
