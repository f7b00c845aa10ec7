"""Per-arm tuning (experiment.tune) and several training budgets (experiment.budgets) in one study.

Tuning trials run first on seeds the comparison does not use; each arm's comparison trials then train with
the value that arm's tuning chose (best mean validation accuracy); with budgets the comparison repeats at
each multiple of trainer.max_epochs. All of it is ordinary trials of one study: parallel, resumable.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from nasplay.sweep.results import read_csv
from nasplay.sweep.runner import run_study
from nasplay.sweep.storage import make_storage

STUDY = ("arch=lenet5_common", "data.limit=320", "data.batch_size=32", "trainer.max_epochs=1", "sweep=grid",
         "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0]",
         "experiment.name=tuned", "logger=none", "progress=false",
         "experiment.tune={optim.lr: [0.002, 0.1]}", "experiment.tune_seeds=[7]", "experiment.budgets=[1, 2]")


@pytest.mark.slow
def test_each_arm_is_tuned_on_its_own_seeds_then_compared_at_every_budget(compose, tmp_path):
    cfg = compose(*STUDY, f"runs_dir={tmp_path}", "sweep.workers=2")
    buf = io.StringIO()
    result = run_study(cfg, console=Console(file=buf, width=200))
    assert result.complete and result.counts["COMPLETE"] == 8, buf.getvalue()
    study_dir = Path(result.study_dir)
    trials = optuna.load_study(study_name="tuned", storage=make_storage(None, study_dir)).get_trials()

    tune = [t for t in trials if t.params["stage"] == "tune"]
    final = [t for t in trials if t.params["stage"] == "final"]
    assert Counter((t.params["arm"], t.params["optim.lr"], t.params["seed"]) for t in tune) == Counter(
        {(a, lr, 7): 1 for a in ("activation=relu", "activation=tanh") for lr in (0.002, 0.1)})
    assert Counter((t.params["arm"], t.params["budget"], t.params["seed"]) for t in final) == Counter(
        {(a, b, 0): 1 for a in ("activation=relu", "activation=tanh") for b in (1.0, 2.0)})
    assert all(t.params["budget"] == 1.0 for t in tune)  # tuning runs at the first budget

    scores = defaultdict(dict)
    for t in tune:
        scores[t.params["arm"]][t.params["optim.lr"]] = t.value  # the objective: validation accuracy
    for t in final:
        arm = t.params["arm"]
        best = max(scores[arm], key=lambda lr: scores[arm][lr])
        assert t.user_attrs["tuned"] == {"optim.lr": best}
        last_tune = max(x.datetime_complete for x in tune if x.params["arm"] == arm)
        assert t.datetime_start >= last_tune  # an arm is compared only once its tuning is done
        assert t.user_attrs["metrics"]["epochs"] == t.params["budget"]  # budget 2 = twice trainer.max_epochs

    rows = read_csv(study_dir / "results.csv")
    assert {r["stage"] for r in rows} == {"tune", "final"}
    by_number = {int(r["number"]): r for r in rows}
    for t in final:
        r = by_number[t.number]
        assert float(r["tuned.optim.lr"]) == t.user_attrs["tuned"]["optim.lr"] and float(r["budget"]) == t.params["budget"]
    for t in tune:
        assert float(by_number[t.number]["param.optim.lr"]) == t.params["optim.lr"] and by_number[t.number]["tuned.optim.lr"] == ""

    again = run_study(compose(*STUDY, f"runs_dir={tmp_path}"), console=Console(file=io.StringIO(), width=200))
    assert again.ran == 0 and again.complete  # resumed: nothing to add

    # The report: the comparison at the largest budget, every budget's effect, each arm's tuning and its choice.
    import json

    from nasplay.report.write import write_report

    text = write_report(study_dir, diagrams=False)[0].read_text()
    report = json.loads((study_dir / "report.json").read_text())
    assert report["budget"] == 2.0 and [a["n"] for a in report["arms"]] == [1, 1]  # the tuning trials are not arms' seeds
    assert [(b["budget"], b["epochs"]) for b in report["budgets"]] == [(1.0, 1.0), (2.0, 2.0)]
    assert all(len(b["comparisons"]) == 1 and b["comparisons"][0]["arm"] == "activation=tanh" for b in report["budgets"])
    for arm, d in report["tuning"]["arms"].items():
        best = max(scores[arm], key=lambda lr: scores[arm][lr])
        assert d["chosen"] == {"optim.lr": best}
        assert {r["setting"]["optim.lr"]: r["mean"] for r in d["curve"]} == pytest.approx(scores[arm])
    assert "### Per-arm tuning" in text and "### Effect against the budget" in text and "budget x2" in text
    assert (study_dir / "budgets.png").exists() and (study_dir / "tuning.png").exists()


@pytest.mark.parametrize("bad, message", [
    ("experiment.tune_seeds=[0]", "experiment.tune_seeds must be seeds the comparison does not use"),
    ("experiment.tune={optim.lrr: [0.1]}", "experiment.tune.optim.lrr: optim has no field 'lrr'"),
    ("experiment.tune={model.lr: [0.1]}", "experiment.tune.model.lr: a tuned setting is optim.*, trainer.* or data.*"),
    ("experiment.budgets=[1, 0]", "experiment.budgets: each budget is a positive multiple"),
    ("sweep=tpe", "experiment.tune, experiment.budgets and experiment.pairs run a grid"),
])
def test_bad_tuning_settings_are_named_before_anything_trains(compose, tmp_path, bad, message):
    from nasplay.sweep.plan import make_plan

    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")):
        make_plan(compose(*STUDY, f"runs_dir={tmp_path}", bad))
    assert not (tmp_path / "tuned").exists()


def test_an_experiment_that_tunes_by_default_turns_it_off_with_null(compose, tmp_path):
    from nasplay.sweep.loop import grid_points
    from nasplay.sweep.plan import make_plan

    tuned = make_plan(compose("experiment=ablate_batchnorm", f"runs_dir={tmp_path}"), data_shape=(1, 16, 10))
    # the tuning stage: 2 arms x 3 rates x 2 seeds; then the study: 2 arms x 5 seeds
    assert tuned.cfg.experiment.tune == {"optim.lr": [0.0167, 0.05, 0.15]} and len(grid_points(tuned)) == 2 * 3 * 2 + 2 * 5
    plain = make_plan(compose("experiment=ablate_batchnorm", "experiment.tune=null", f"runs_dir={tmp_path}"), data_shape=(1, 16, 10))
    assert plain.cfg.experiment.tune == {} and "stage" not in plain.grid and len(grid_points(plain)) == 2 * 5


def _tuning_study(rows):
    """An Optuna study holding finished tuning trials: (arm, lr, validation value, epochs_to_target or None)."""
    from optuna.distributions import CategoricalDistribution

    study = optuna.create_study(direction="maximize")
    for arm, lr, val, epochs in rows:
        study.add_trial(optuna.trial.create_trial(
            params={"arm": arm, "stage": "tune", "optim.lr": lr},
            distributions={"arm": CategoricalDistribution(["activation=relu", "activation=tanh"]),
                           "stage": CategoricalDistribution(["tune", "final"]), "optim.lr": CategoricalDistribution([0.002, 0.1])},
            value=val, user_attrs={"metrics": {"val/acc": val, "epochs_to_target": float("nan") if epochs is None else epochs}}))
    return study


def test_tune_on_judges_the_settings_by_the_claimed_criterion_not_the_final_accuracy(compose, tmp_path):
    """Krizhevsky et al. tuned each network's rate "to make training as fast as possible": with
    experiment.tune_on=epochs_to_target the setting whose seeds all reach the target soonest wins, whatever the final
    validation accuracy says; a setting with a seed that never got there loses to one whose seeds all did."""
    from nasplay.sweep.plan import make_plan
    from nasplay.sweep.trial import tuned_values

    rows = [("activation=relu", 0.002, 0.95, 3.0), ("activation=relu", 0.002, 0.93, None),  # higher accuracy, 1 of 2 reach
            ("activation=relu", 0.1, 0.80, 5.0), ("activation=relu", 0.1, 0.82, 6.0),  # both reach
            ("activation=tanh", 0.002, 0.70, 4.0), ("activation=tanh", 0.002, 0.71, 2.0),  # both reach, sooner (3.0)
            ("activation=tanh", 0.1, 0.90, 5.0), ("activation=tanh", 0.1, 0.91, 4.0)]  # both reach later (4.5), more accurate
    study = _tuning_study(rows)
    by_acc = make_plan(compose(*STUDY, f"runs_dir={tmp_path}", "experiment.tune_seeds=[7, 8]"))
    by_time = make_plan(compose(*STUDY, f"runs_dir={tmp_path}", "experiment.tune_seeds=[7, 8]", "experiment.tune_on=epochs_to_target",
                                "trainer.target_train_error=0.25"))
    assert tuned_values(study, by_acc, "activation=relu") == {"optim.lr": 0.002}
    assert tuned_values(study, by_acc, "activation=tanh") == {"optim.lr": 0.1}
    assert tuned_values(study, by_time, "activation=relu") == {"optim.lr": 0.1}
    assert tuned_values(study, by_time, "activation=tanh") == {"optim.lr": 0.002}
    # no seed of any setting reaches the target: the validation objective decides among equals
    none = _tuning_study([("activation=relu", 0.002, 0.5, None), ("activation=relu", 0.1, 0.6, None)])
    assert tuned_values(none, by_time, "activation=relu") == {"optim.lr": 0.1}


def test_tune_on_names_the_allowed_measures(compose, tmp_path):
    from nasplay.sweep.plan import make_plan

    with pytest.raises(ValueError, match=r"experiment.tune_on must be one of \['val/acc'.*'epochs_to_target'.*got 'test/acc'"):
        make_plan(compose(*STUDY, f"runs_dir={tmp_path}", "experiment.tune_on=test/acc"))
    assert not (tmp_path / "tuned").exists()


def test_tune_on_without_a_tuning_or_a_target_is_refused_before_anything_trains(compose, tmp_path):
    from nasplay.sweep.plan import make_plan

    with pytest.raises(ValueError, match=r"experiment.tune_on=epochs_to_target needs trainer.target_train_error"):
        make_plan(compose(*STUDY, f"runs_dir={tmp_path}", "experiment.tune_on=epochs_to_target"))
    with pytest.raises(ValueError, match=r"experiment.tune_on=val/loss: nothing is tuned"):
        make_plan(compose(*STUDY, f"runs_dir={tmp_path}", "experiment.tune=null", "experiment.tune_on=val/loss"))
    plan = make_plan(compose(*STUDY, f"runs_dir={tmp_path}", "experiment.tune_on=steps_to_target", "trainer.target_val_acc=0.5"))
    assert plan.cfg.experiment.tune_on == "steps_to_target"
    assert not (tmp_path / "tuned").exists()


def test_a_tuning_trial_that_failed_before_training_does_not_count_against_its_setting(compose, tmp_path):
    """A setup failure (missing data) is retried; the retry, not the failure, stands for that setting."""
    from optuna.distributions import CategoricalDistribution

    from nasplay.sweep.plan import make_plan
    from nasplay.sweep.trial import tuned_values

    study = _tuning_study([("activation=relu", 0.002, 0.6, None), ("activation=relu", 0.1, 0.9, None)])
    study.add_trial(optuna.trial.create_trial(
        params={"arm": "activation=relu", "stage": "tune", "optim.lr": 0.1},
        distributions={"arm": CategoricalDistribution(["activation=relu", "activation=tanh"]),
                       "stage": CategoricalDistribution(["tune", "final"]), "optim.lr": CategoricalDistribution([0.002, 0.1])},
        state=optuna.trial.TrialState.FAIL, user_attrs={"setup_error": True}))
    plan = make_plan(compose(*STUDY, f"runs_dir={tmp_path}"))
    assert tuned_values(study, plan, "activation=relu") == {"optim.lr": 0.1}
    study.add_trial(optuna.trial.create_trial(  # a failure for good (it trained and diverged) counts as the worst
        params={"arm": "activation=relu", "stage": "tune", "optim.lr": 0.1},
        distributions={"arm": CategoricalDistribution(["activation=relu", "activation=tanh"]),
                       "stage": CategoricalDistribution(["tune", "final"]), "optim.lr": CategoricalDistribution([0.002, 0.1])},
        state=optuna.trial.TrialState.FAIL))
    assert tuned_values(study, plan, "activation=relu") == {"optim.lr": 0.002}
