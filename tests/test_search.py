"""Search of the classics' space (issue 15): conditional sampling, budgets, importances, searchers compared.

Sampling tests ask Optuna for trials without training; the report tests build study folders by hand;
one slow test runs ``experiment=search_classic`` end to end at a tiny budget.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from nasplay.complexity import resolve
from nasplay.sweep.conditional import allowed, base_knobs, data_shape_of, knob_of
from nasplay.sweep.plan import make_plan
from nasplay.sweep.trial import TrialRunner, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)
BASES = "[lenet5, vgg16, resnet50, xception]"  # four of the ten keep the tests quick: plain, residual, grouped, separable


def _plan(compose, tmp_path, *extra):
    return make_plan(compose("experiment=search_classic", f"runs_dir={tmp_path}", "logger=none",
                             f"sweep.space={{arch: {BASES}}}", *extra))


def test_conditional_sampling_takes_only_what_each_base_accepts(compose, tmp_path):
    from nasplay import apply
    from nasplay.complexity import complexity

    plan = _plan(compose, tmp_path)
    plan.study_dir.mkdir(parents=True)
    c, shape = plan.cfg, data_shape_of(plan)
    table = allowed(c, shape)
    # Derived from the knobs' refusals: LeNet-5 has no bottleneck blocks, VGG-16 no 5x5 to stack, Xception no skip to scale.
    assert "cardinality" not in table["lenet5"]["knobs"] and "cardinality" in table["resnet50"]["knobs"]
    with pytest.raises(ValueError, match="cardinality"):
        apply(resolve("lenet5", {}, shape), cardinality=8)
    assert "stacked" not in table["vgg16"]["knobs"]["factorize"] and "stacked" in table["lenet5"]["knobs"]["factorize"]
    # ResNet-50's one 7x7 is its stem, a 3x3 at this input: one stacked 3x3 is the same network, so not offered
    assert "stacked" not in table["resnet50"]["knobs"]["factorize"] and "asymmetric" in table["resnet50"]["knobs"]["factorize"]
    assert table["xception"]["defaults"]["separable"] == "on" and table["resnet50"]["defaults"]["skip"] == "identity"
    assert "branches" not in table["resnet50"]["knobs"]  # one path already: the knob does not apply

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_bases, flipped, refused = set(), 0, 0
    for _ in range(30):
        trial = study.ask()
        spec = suggest(trial, plan)
        base = trial.params["arch"]
        seen_bases.add(base)
        assert spec.arch == base and trial.user_attrs["arch"] == base
        sampled = {knob_of(p)[1]: v for p, v in trial.params.items() if p != "arch"}
        assert all(knob_of(p)[0] == base for p in trial.params if p != "arch")  # per-base names, only the base's own
        assert set(sampled) == set(table[base]["knobs"])  # every knob the base accepts, and no other
        for knob, v in sampled.items():
            assert v in table[base]["knobs"][knob]
            resolve(base, {**table[base]["own"], knob: v}, shape)  # each value alone is accepted by apply
        own = table[base]["own"]
        assert own == base_knobs(c, base)  # the classics' knobs: vgg16's norm=batch, lenet5 none
        assert spec.knobs == {**own, **{k: v for k, v in sampled.items() if v != table[base]["defaults"].get(k)}}
        flipped += any(v != table[base]["defaults"].get(k) for k, v in sampled.items())
        why = trial.user_attrs.get("refused")
        if why and why.startswith("knobs:"):  # a combination the knobs refuse
            refused += 1
            with pytest.raises(ValueError):
                resolve(base, spec.knobs, shape)
        elif why:  # over the budget: it builds, and its FLOPs are over experiment.max_flops
            refused += 1
            g = resolve(base, spec.knobs, shape)
            assert complexity(g, num_classes=10).flops == trial.user_attrs["flops"] > c.experiment.max_flops
        else:  # what trains is exactly the genome whose complexity was checked
            g = resolve(base, spec.knobs, shape)
            assert g.hash == trial.user_attrs["genome_hash"] and trial.user_attrs["flops"] <= c.experiment.max_flops
        study.tell(trial, 0.5)
    assert seen_bases == {"lenet5", "vgg16", "resnet50", "xception"} and flipped >= 20
    assert refused < 30
    space = json.loads((plan.study_dir / "space.json").read_text())
    assert space["bases"]["resnet50"]["knobs"]["cardinality"] == [1, 8, 32]


def test_refused_samples_never_train(compose, tmp_path, monkeypatch):
    import nasplay.train.fit as fit_mod

    def trained(*a, **k):
        raise AssertionError("a refused sample reached training")

    monkeypatch.setattr(fit_mod, "fit", trained)
    plan = _plan(compose, tmp_path, "experiment.max_flops=1000")  # every network is over this
    plan.study_dir.mkdir(parents=True)
    from nasplay.track.tracker import make_tracker

    runner = TrialRunner(plan, make_tracker(plan.cfg.logger, plan.study_dir))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    # A combination the knobs refuse (cardinality needs the bottlenecks that bottleneck=off removes), within budget.
    study.enqueue_trial({"arch": "resnet50", "resnet50.bottleneck": "off", "resnet50.cardinality": 8})
    for i in range(4):
        trial = study.ask()
        spec = suggest(trial, plan)
        why = trial.user_attrs["refused"]
        assert why.startswith("knobs: cardinality=8") if i == 0 else why.startswith("flops ") and "> experiment.max_flops 1,000" in why
        out = runner.run(trial, spec)
        assert out.state == "FAIL" and out.fail_reason.startswith("Refused: ") and out.values is None
        assert not (plan.study_dir / "genomes").exists()  # nothing was even built for training


def _write_study(path: Path, rows: list[dict], sampler: str = "random", objectives=("val/acc",)) -> Path:
    path.mkdir(parents=True)
    cols = sorted({k for r in rows for k in r}, key=lambda k: (k != "number", k))
    with open(path / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(rows)
    (path / "config.yaml").write_text(json.dumps({"sweep": {"sampler": sampler, "objectives": list(objectives)},
                                                  "trainer": {"max_epochs": 2}}))
    return path


def test_importances_map_per_base_parameters_back_to_knobs(tmp_path):
    from nasplay.report.search import NA, importances, knob_table

    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        base = ["resnet50", "vgg16"][i % 2]
        skip = ["none", "identity"][(i // 2) % 2]
        norm = str(rng.choice(["batch", "none"]))
        r = {"number": i, "state": "COMPLETE", "arm": f"{base} x", "arch": base, "param.arch": base,
             f"param.{base}.skip": skip, f"param.{base}.norm": norm,
             "val/acc": (0.9 if skip == "identity" else 0.3) + rng.normal(0, 0.01)}
        if base == "resnet50":
            r["param.resnet50.cardinality"] = int(rng.choice([1, 32]))
        rows.append(r)
    names, table = knob_table(rows)
    assert names == ["arch", "skip", "norm", "cardinality"]
    assert table[1]["cardinality"] == NA and table[0]["cardinality"] in ("1", "32") and table[0]["skip"] == "none"
    imp = importances(rows, "val/acc", seeds=3, bootstrap=5, splits=3)
    for kind in ("fanova", "mdi"):
        t = imp["evaluators"][kind]["importance"]
        assert imp["evaluators"][kind]["ranking"][0] == "skip"
        assert t["skip"]["mean"] > 0.8 and abs(sum(v["mean"] for v in t.values()) - 1) < 1e-6
        assert 0.5 < t["skip"]["boot_lo"] <= t["skip"]["boot_hi"] <= 1 + 1e-9 and t["norm"]["mean"] < 0.1
        assert imp["evaluators"][kind]["boot_top_agreement"] == 1.0
    curve = imp["stability"]["curve"]
    assert curve[-1]["per_half"] == 24 and curve[-1]["rho_mean"] > 0.5 and imp["n_trials"] == 48


def test_anytime_curves_over_seeds(tmp_path):
    from nasplay.report.search import anytime

    vals = {"random": [[0.1, 0.5, 0.3, 0.6], [0.2, 0.2, 0.4, 0.4], [0.3, 0.1, 0.1, 0.9]],
            "tpe": [[0.5, 0.6, 0.7, 0.8], [0.4, 0.9, 0.1, 0.2], [0.6, 0.6, 0.6, 0.95]]}
    dirs = []
    for who, runs in vals.items():
        for s, v in enumerate(runs):
            rows = [{"number": 0, "state": "COMPLETE", "arm": "classic vgg16", "arch": "vgg16", "val/acc": 0.99, "flops": 5,
                     "duration_s": 1}]  # a classic beside the search: not the searcher's
            rows += [{"number": i + 1, "state": "COMPLETE", "arm": f"t{i}", "arch": "vgg16", "val/acc": x, "flops": 10 * (i + 1),
                      "epochs": 2, "duration_s": 1.5} for i, x in enumerate(v)]
            rows.append({"number": 9, "state": "FAIL", "arm": "t9", "arch": "vgg16", "fail_reason": "Refused: flops", "flops": 1e9})
            dirs.append(_write_study(tmp_path / who / f"s{s}", rows, who))
    res = anytime(dirs, tmp_path / "cmp")
    r = res["searchers"]["random"]
    best = np.maximum.accumulate(np.array(vals["random"]), axis=1)
    assert np.allclose(r["by_trials"]["median"], np.median(best, axis=0))
    assert np.allclose(r["by_trials"]["q25"], np.percentile(best, 25, axis=0))
    assert all(np.diff(r["by_trials"]["median"]) >= 0) and r["trials"] == [4, 4, 4]
    assert r["final_median"] == pytest.approx(0.6)
    t = res["searchers"]["tpe"]
    assert t["final_median"] == pytest.approx(0.9)
    # tpe's finals 0.8, 0.9, 0.95 against random's 0.6, 0.4, 0.9: 7 wins, 1 tie, 1 loss of 9 pairs.
    assert t["p_beats_random"] == pytest.approx(7.5 / 9)
    # Compute: FLOPs x epochs summed, 20 + 40 + 60 + 80 = 200 at the end; the last grid point sees every run's final.
    assert r["by_compute"]["x"][-1] == pytest.approx(200) and r["by_compute"]["median"][-1] == pytest.approx(0.6)
    assert r["by_wall"]["x"][-1] == pytest.approx(6.0)
    md = (tmp_path / "cmp" / "anytime.md").read_text()
    assert "| tpe | 3 | 4, 4, 4 | 1, 1, 1 | 90.00 | [85.00, 92.50] | 0.83 |" in md
    assert (tmp_path / "cmp" / "anytime.png").stat().st_size > 5000

    from nasplay.cli import main

    out = io.StringIO()
    import contextlib
    with contextlib.redirect_stdout(out):
        assert main(["report", *map(str, dirs), "--anytime", "--out", str(tmp_path / "cli"), "--no-figures"]) == 0
    assert "| random | 3 |" in out.getvalue() and (tmp_path / "cli" / "anytime.json").exists()


@pytest.mark.slow
def test_search_classic_end_to_end(compose, tmp_path, one_thread):
    from rich.console import Console

    from nasplay.experiment import run_experiment
    from nasplay.report.load import read_csv

    cfg = compose("experiment=search_classic", f"runs_dir={tmp_path}", "logger=none", "progress=false",
                  f"sweep.space={{arch: {BASES}}}", "experiment.classics=null",
                  "sweep=random", "sweep.pruner.kind=none", "sweep.n_trials=6", "data.limit=320", "trainer.max_epochs=1",
                  "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.test=false", "experiment.max_flops=6000000.0")
    buf = io.StringIO()
    result = run_experiment(cfg, console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert result.counts["COMPLETE"] == 6, text
    rows = read_csv(Path(result.study_dir) / "results.csv")
    trained = [r for r in rows if r["state"] == "COMPLETE" and not r["arm"].startswith("classic ")]
    assert len(rows) == 6 and not [r for r in rows if r["state"] == "FAIL"]  # a refused proposal is not a trial
    assert len({r["arch"] for r in trained}) >= 2
    assert all(float(r["flops"]) <= 6e6 for r in trained)
    d = Path(result.study_dir)
    from nasplay.sweep.conditional import read_refusals

    refused = (read_refusals(d) or {"refusals": []})["refusals"]
    assert all(r["reason"] and r["arch"] for r in refused)
    rep = json.loads((d / "search.json").read_text())
    assert rep["searched"] == 6 and rep["refusals"]["n"] == len(refused) and rep["front"]
    assert rep["refusals"]["as_trials"] == 0 and rep["refusals"]["trained"] == 6
    # No classics trained beside it: each front point is compared with its base rebuilt from space.json (its own knobs).
    for p in rep["front"]:
        assert p["summary"].startswith(f"the search took {p['arch']}") and (d / p["diagram"]).stat().st_size > 5000
        assert bool(p["diff"]) == (p["arm"] != p["arch"])
    assert set(rep["importance"]["evaluators"]) == {"fanova", "mdi"}
    md = (d / "search.md").read_text()
    assert "## Pareto front" in md and "**Stability.**" in md and "search.md" in (d / "report.md").read_text()
