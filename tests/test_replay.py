"""The tabulated space and searchers replayed on it (issue 21): a small constructed table with known numbers, the
table written from a study's files, and the real subspace's size."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from nasplay.report.replay import Table, p_beats, render, replay, replay_run, table_importances, table_summary
from nasplay.sweep.table import Subspace, combo_key, table_from_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parents[1]
XS, YS = [0, 1, 2], [0, 1, 2, 3]
REFUSED = (2, 3)


def _acc(x: int, y: int) -> float:
    return 0.5 + 0.1 * x + 0.01 * y  # x matters ten times more than y; (2, 2) is the best architecture left


def _table() -> dict:
    """One base 'b', knobs x and y: 12 combinations, (2, 3) refused by the knobs, 11 architectures with known accuracies
    (validation = test, the same for both seeds) and train time 1 + x + y seconds."""
    combos, archs = {}, []
    for x in XS:
        for y in YS:
            key = combo_key("b", {"x": x, "y": y})
            if (x, y) == REFUSED:
                combos[key] = None
                continue
            h = f"h{x}{y}"
            combos[key] = h
            r = {"val_acc": [0.1, _acc(x, y)], "test_acc": _acc(x, y), "train_time": 1.0 + x + y}
            archs.append({"hash": h, "arch": "b", "arm": f"b x={x} y={y}", "knobs": {"x": x, "y": y}, "labels": {"x": x, "y": y},
                          "params": 1, "flops": 1, "seeds": {"0": r, "1": dict(r)}})
    return {"space": {"bases": ["b"], "knobs": {"b": {"x": XS, "y": YS}}, "combos": combos}, "architectures": archs}


class Oracle(optuna.samplers.BaseSampler):
    """A searcher that knows the best architecture and proposes it."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, dist):
        return {"arch": "b", "b.x": 2, "b.y": 2}[name]


def test_random_search_regret_is_what_the_table_says():
    table = Table(_table())
    assert table.best == pytest.approx(_acc(2, 2)) and len(table.results) == 11
    n, runs = 3, 300
    finals, refused = [], 0
    for s in range(runs):
        r = replay_run(table, "random", s, n)
        assert len(r["regret"]) == n and np.all(np.diff(r["regret"]) <= 0)  # the incumbent only gets better
        finals.append(r["regret"][-1])
        refused += r["refused"]
    # Random search picks uniformly among the 11 architectures (a refused proposal is asked again, free): the
    # expected best of n draws with replacement is sum_k v_(k) [(k/K)^n - ((k-1)/K)^n].
    v = np.sort([_acc(x, y) for x in XS for y in YS if (x, y) != REFUSED])
    k = np.arange(1, len(v) + 1)
    expected = table.best - float(np.sum(v * ((k / len(v)) ** n - ((k - 1) / len(v)) ** n)))
    assert expected == pytest.approx(0.0487, abs=1e-4)
    assert np.mean(finals) == pytest.approx(expected, abs=4 * np.std(finals) / np.sqrt(runs))
    assert refused / (runs * n) == pytest.approx(1 / 11, abs=0.04)  # 1 of 12 proposals is refused: 1/11 per trained


def test_a_searcher_that_knows_the_best_finds_it_and_beats_random():
    table = Table(_table())
    rep = replay(table, ["random"], seeds=40, trials=3, extra={"oracle": lambda seed: Oracle()})
    o, r = rep["searchers"]["oracle"], rep["searchers"]["random"]
    assert o["final_regret"]["mean"] == 0 and o["found_best"] == 1.0 and o["by_trials"]["median"] == [0.0, 0.0, 0.0]
    assert o["refused_per_run"] == 0
    # its cost is the best architecture's train time (5 s) per trial
    assert o["by_cost"]["median"][-1] == 0.0 and max(rep["searchers"]["oracle"]["by_cost"]["x"]) >= 15 - 1e-9
    # P(oracle beats random) = 1 - P(random also found the best) / 2 (ties count half)
    p = o["p_beats_random"]
    assert p["p"] == pytest.approx(1 - r["found_best"] / 2) and p["lo"] <= p["p"] <= p["hi"] <= 1
    assert 0 < r["final_regret"]["mean"] and r["p_beats_random"] is None
    assert p_beats(np.array([0.0, 0.1]), np.array([0.1]))["p"] == pytest.approx(0.75)


@pytest.mark.parametrize("searcher", ["tpe", "nsga2", "evolution"])
def test_every_searcher_replays(searcher):
    table = Table(_table())
    r = replay_run(table, searcher, 0, 25)
    assert len(r["cost"]) == 25 and np.all(r["regret"] >= 0) and np.all(np.diff(r["cost"]) > 0)
    assert r["regret"][-1] < 0.05  # 25 trials on 11 architectures: near the best


def test_importances_over_the_whole_table_find_the_knob_that_matters():
    rep = table_importances(Table(_table()), seeds=2, bootstrap=3, splits=3)
    fa = rep["evaluators"]["fanova"]
    assert fa["ranking"][0] == "x" and fa["importance"]["x"]["mean"] > 0.8
    assert rep["n_trials"] == 11 and rep["stability"]["curve"]


def test_the_table_summary_says_how_noisy_the_table_is_and_what_an_exhaustive_search_finds():
    doc = _table()
    t = table_summary(Table(doc), draws=400)
    assert t["architectures"] == 11 and t["trainings"] == 22 and t["trained"] == 11  # all above 15% (test size unknown)
    assert t["seed_agreement"]["spearman"] == pytest.approx(1.0) and t["seed_agreement"]["mean_abs_diff"] == 0
    assert t["exhaustive"] == {"mean_regret": 0.0, "found_best": 1.0, "draws": 400}  # validation = test, seeds equal
    assert t["best"]["arm"] == "b x=2 y=2" and t["bases"]["b"]["best"] == pytest.approx(_acc(2, 2))
    # One seed of the best architecture sees 0 on validation: an exhaustive search keeps it when it draws the other
    # seed (half the draws) and otherwise keeps the runner-up, (2, 1), 0.01 below.
    best = next(a for a in doc["architectures"] if a["hash"] == "h22")
    best["seeds"]["1"] = {**best["seeds"]["1"], "val_acc": [0.1, 0.0]}
    ex = table_summary(Table(doc), draws=2_000)["exhaustive"]
    assert ex["found_best"] == pytest.approx(0.5, abs=0.05)
    assert ex["mean_regret"] == pytest.approx(0.5 * (_acc(2, 2) - _acc(2, 1)), abs=0.0006)
    # Seeds that disagree: seed 1's test accuracies reversed
    for a in doc["architectures"]:
        x, y = a["labels"]["x"], a["labels"]["y"]
        a["seeds"]["1"] = {**a["seeds"]["1"], "test_acc": 1.5 - _acc(x, y)}
    a = table_summary(Table(doc), draws=10)["seed_agreement"]
    assert a["spearman"] == pytest.approx(-1.0) and a["kendall"] == pytest.approx(-1.0)
    md = render({"table_best": 0.7, "architectures": 11, "seeds": 1, "trials": 1, "searchers": {},
                 "table": table_summary(Table(_table()), draws=10)})
    assert "## The table" in md and "Spearman 1.00" in md and "| b | 11 | 11 | 72.0 | b x=2 y=2 |" in md


def test_replay_command(tmp_path):
    from nasplay.cli import main

    path = tmp_path / "table.json"
    path.write_text(json.dumps(_table()))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(path), "--searchers", "random,evolution", "--seeds", "3", "--trials", "4",
                     "--no-figures", "--no-importance", "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "replay.md").read_text()
    assert "| random |" in md and "| evolution |" in md and "## The table" in md
    assert json.loads((tmp_path / "r" / "replay.json").read_text())["seeds"] == 3
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["replay", str(path), "--searchers", "bayes", "--seeds", "1"]) == 2
    assert "unknown searcher 'bayes'" in err.getvalue()


def test_the_table_is_written_from_the_study(tmp_path):
    sub = Subspace(["b"], {"b": {"x": [0, 1]}}, {"b": {}})
    for x in (0, 1):
        sub.combos[combo_key("b", {"x": x})] = f"h{x}"
        sub.architectures[f"h{x}"] = {"arch": "b", "knobs": {"x": x}, "labels": {"x": x}, "arm": f"b x={x}", "params": 10, "flops": 20}
    d = tmp_path / "study"
    d.mkdir()
    (d / "results.csv").write_text("number,state,arm,seed,test/acc,train_time,duration_s\n"
                                   "0,COMPLETE,b x=0,0,0.7,3.5,4\n1,COMPLETE,b x=0,1,0.8,3.0,4\n2,FAIL,b x=1,0,,,1\n")
    (d / "curves.csv").write_text("trial,epoch,step,metric,value\n0,0,5,val/acc,0.5\n0,1,10,val/acc,0.6\n0,1,10,val/loss,1.0\n"
                                  "1,0,5,val/acc,0.55\n1,1,10,val/acc,0.65\n")
    doc = table_from_study(d, sub, {"command": "x", "budget": {"epochs": 2}})
    a0, a1 = doc["architectures"]
    assert a0["seeds"] == {"0": {"val_acc": [0.5, 0.6], "test_acc": 0.7, "train_time": 3.5, "completed": ""},
                           "1": {"val_acc": [0.55, 0.65], "test_acc": 0.8, "train_time": 3.0, "completed": ""}}
    assert a1["seeds"] == {} and doc["budget"] == {"epochs": 2} and a0["flops"] == 20
    t = Table(doc)  # only the trained architecture counts; the other is 'not in the table'
    assert t.best == pytest.approx(0.75) and t.lookup("b", {"x": 1}) is None and t.lookup("b", {"x": 0}) == "h0"


def test_a_table_built_across_runs_adds_up_and_missing_names_what_it_lacks(tmp_path):
    """A second build run (in a fresh clone, say) starts from the committed table: its results stay, the new study
    adds what it trained and replaces what it trained again; ``missing`` names the architectures still short a seed."""
    from nasplay.sweep.table import missing

    sub = Subspace(["b"], {"b": {"x": [0, 1, 2]}}, {"b": {}})
    for x in (0, 1, 2):
        sub.combos[combo_key("b", {"x": x})] = f"h{x}"
        sub.architectures[f"h{x}"] = {"arch": "b", "knobs": {"x": x}, "labels": {"x": x}, "arm": f"b x={x}", "params": 1, "flops": 1}
    assert missing(sub, None, [0, 1]) == ["h0", "h1", "h2"]
    first = tmp_path / "first"
    first.mkdir()
    (first / "results.csv").write_text("number,state,arm,seed,test/acc,train_time\n0,COMPLETE,b x=0,0,0.7,3\n"
                                       "1,COMPLETE,b x=0,1,0.8,3\n2,COMPLETE,b x=1,0,0.5,2\n")
    committed = table_from_study(first, sub, {"budget": {}})
    assert missing(sub, committed, [0, 1]) == ["h1", "h2"]  # h1 has seed 0 only
    second = tmp_path / "second"  # the run that went on: h1 trained again (both seeds), h2 for the first time
    second.mkdir()
    (second / "results.csv").write_text("number,state,arm,seed,test/acc,train_time\n0,COMPLETE,b x=1,0,0.55,2\n"
                                        "1,COMPLETE,b x=1,1,0.6,2\n2,COMPLETE,b x=2,0,0.9,4\n3,FAIL,b x=2,1,,\n")
    doc = table_from_study([second], sub, {"budget": {}}, prior=committed)
    tests = {a["hash"]: {s: r["test_acc"] for s, r in a["seeds"].items()} for a in doc["architectures"]}
    assert tests == {"h0": {"0": 0.7, "1": 0.8}, "h1": {"0": 0.55, "1": 0.6}, "h2": {"0": 0.9}}
    assert missing(sub, doc, [0, 1]) == ["h2"] and missing(sub, doc, [0]) == []
    # the later measurement of a seed stands, whichever study or file holds it; a row whose genome is not its arm's
    # architecture now is left out; an earlier table with an architecture the subspace lacks is refused
    third = tmp_path / "third"
    third.mkdir()
    (third / "results.csv").write_text("number,state,arm,seed,test/acc,train_time,genome_hash,datetime_complete\n"
                                       "0,COMPLETE,b x=2,1,0.95,4,h2,2026-12-06T23:00:00\n"
                                       "1,COMPLETE,b x=0,0,0.1,3,other,2026-12-06T23:01:00\n")
    fourth = tmp_path / "fourth"
    fourth.mkdir()
    (fourth / "results.csv").write_text("number,state,arm,seed,test/acc,train_time,genome_hash,datetime_complete\n"
                                        "0,COMPLETE,b x=2,1,0.85,4,h2,2026-12-06T22:00:00\n")
    for order in ([third, fourth], [fourth, third]):
        later = table_from_study(order, sub, {"budget": {}}, prior=doc)
        tests = {a["hash"]: {s: r["test_acc"] for s, r in a["seeds"].items()} for a in later["architectures"]}
        assert tests == {"h0": {"0": 0.7, "1": 0.8}, "h1": {"0": 0.55, "1": 0.6}, "h2": {"0": 0.9, "1": 0.95}}
    stranger = {"architectures": [*doc["architectures"], {"hash": "gone", "arm": "b x=9", "seeds": {"0": {}}}]}
    with pytest.raises(ValueError, match="architecture gone \\(b x=9\\), which the subspace no longer has"):
        table_from_study([], sub, {"budget": {}}, prior=stranger)


def test_the_build_refuses_a_table_of_another_budget_and_names_its_study_by_what_it_trains(tmp_path):
    spec = importlib.util.spec_from_file_location("tabulate_script", ROOT / "scripts" / "build_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "t.json"
    assert mod.committed(out) is None
    out.write_text(json.dumps({"version": 1, "space": {}, "architectures": [], "budget": {**mod.BUDGET, "trainer.max_epochs": 9}}))
    with pytest.raises(SystemExit, match="another budget"):
        mod.committed(out)
    out.write_text(json.dumps({"version": 0, "space": {}, "architectures": [], "budget": mod.BUDGET}))
    with pytest.raises(SystemExit, match="a table of version 0"):
        mod.committed(out)
    out.write_text(json.dumps({"version": 1, "space": {}, "architectures": [], "budget": mod.BUDGET}))
    assert mod.committed(out)["budget"]["seeds"] == [0, 1]
    a, b = mod.part_name({"p": 1, "q": 2}), mod.part_name({"q": 0, "p": 0})
    assert a == b and a.startswith("table_classic_") and mod.part_name({"p": 1}) != a
    # a build that goes on trains only the seeds the table lacks, each set of seeds as a study of its own
    sub = Subspace(["b"], {"b": {"x": [0, 1, 2]}}, {"b": {}})
    for x in (0, 1, 2):
        sub.architectures[f"h{x}"] = {"arch": "b", "knobs": {"x": x}, "labels": {"x": x}, "arm": f"b x={x}"}
    prior = {"architectures": [{"hash": "h0", "seeds": {"0": {}, "1": {}}}, {"hash": "h1", "seeds": {"0": {}}}]}
    runs = mod.plan_runs(sub, prior)
    assert [(seeds, list(arms)) for seeds, arms, _ in runs] == [([0, 1], ["b x=2"]), ([1], ["b x=1"])]
    assert runs[0][2] == mod.part_name({"b x=2": 0}) and runs[1][2] != mod.part_name({"b x=1": 0})
    assert [(s, list(a)) for s, a, _ in mod.plan_runs(sub, None)] == [([0, 1], ["b x=0", "b x=1", "b x=2"])]
    cfg = mod.study_config(sub, str(tmp_path), 1, ["experiment.seeds=[1]"], arms=runs[1][1])
    assert list(cfg.experiment.seeds) == [1] and list(cfg.experiment.arms) == ["b x=1"]
    # a table of other architectures (the space file or a builder changed since) is not gone on from
    with pytest.raises(SystemExit, match="1 of its genome hashes are not in the subspace now"):
        mod.same_space(sub, {"architectures": [{"hash": "h0"}, {"hash": "h1"}, {"hash": "gone"}]})
    mod.same_space(sub, {"architectures": [{"hash": "h0"}, {"hash": "h1"}, {"hash": "h2"}]})
    # the file keeps one architecture per line (a run's diff names what it added) and reads back as it was
    doc = _table()
    text = mod.dump(doc)
    assert json.loads(text) == json.loads(json.dumps(doc)) and len(text.splitlines()) == len(doc["architectures"]) + 2
    assert all(line.rstrip(",").startswith('{"hash":') for line in text.splitlines()[1:-1])


@pytest.mark.slow
def test_the_tabulated_subspace_has_at_least_300_architectures(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("tabulate_script", ROOT / "scripts" / "build_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["size", "--runs-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    print(text)
    n = int(text.split(" distinct architectures")[0].rsplit(", ", 1)[1])
    assert n >= 300
    sub, shape = mod.subspace(str(tmp_path))
    assert len(sub.architectures) == n and shape == (1, 32, 10)
    from nasplay.sweep.plan import make_plan

    plan = make_plan(mod.study_config(sub, str(tmp_path), 1, []))  # the table's study: one arm per architecture
    assert len(plan.arms) == n and len(plan.genomes) == n
    assert len({g.hash for g in plan.genomes.values()}) == n  # each arm trains its own architecture


def test_the_committed_table_is_complete_and_reads_back():
    """docs/results/table/classic_clutter.json, the table the README's searcher comparison replays: 340 architectures,
    each with seeds 0 and 1 measured at its stated budget (per-epoch validation accuracy, test accuracy, train time)."""
    from nasplay.sweep.table import load_table

    doc = load_table(ROOT / "docs" / "results" / "table" / "classic_clutter.json")
    archs = doc["architectures"]
    assert len(archs) == 340 and len({a["hash"] for a in archs}) == 340 >= 300
    assert doc["trained"] == {"trials": 680, "of": 680} and doc["budget"]["seeds"] == [0, 1]
    for a in archs:
        assert sorted(a["seeds"]) == ["0", "1"], a["arm"]
        for r in a["seeds"].values():
            assert len(r["val_acc"]) == doc["budget"]["trainer.max_epochs"] and 0 <= r["test_acc"] <= 1 and r["train_time"] > 0
    table = Table(doc)
    assert len(table.results) == 340 and table.best == pytest.approx(0.5504, abs=1e-4)
