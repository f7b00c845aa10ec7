"""Your network out: weights kept beside their trial (``sweep.keep_weights``) and ``nasplay export`` from a real study."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from rich.console import Console

from nasplay.cli import main as cli
from nasplay.cli.export import export
from nasplay.space.zoo import get_genome
from nasplay.sweep import weights

ROOT = Path(__file__).resolve().parents[1]


# --- which trials keep their weights --------------------------------------------------------------------------------
def _keep(tmp_path: Path, how: str, number: int, values: list[float], directions=("maximize",)) -> bool:
    net = torch.nn.Linear(2, 2)
    return weights.keep(tmp_path, how, number, net, get_genome("lenet5_common"), {"values": values,
                        "directions": list(directions)}, list(directions))


def test_best_keeps_only_the_best_trial_and_prunes_as_trials_finish(tmp_path):
    assert _keep(tmp_path, "best", 0, [0.5])
    assert not _keep(tmp_path, "best", 1, [0.3])  # worse than what is kept: never written
    assert not _keep(tmp_path, "best", 2, [0.5])  # as good: the earlier one stays
    assert sorted(weights.kept(tmp_path)) == [0]
    assert _keep(tmp_path, "best", 3, [0.7])  # better: written, and trial 0 removed
    assert sorted(weights.kept(tmp_path)) == [3]
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == [".lock", "trial_3"]
    d = weights.trial_dir(tmp_path, 3)
    assert sorted(p.name for p in d.iterdir()) == ["genome.yaml", "trial.json", "weights.pt"]
    assert set(torch.load(d / "weights.pt", weights_only=True)) == {"weight", "bias"}
    assert _keep(tmp_path / "loss", "best", 0, [0.5], ("minimize",)) and _keep(tmp_path / "loss", "best", 1, [0.2], ("minimize",))
    assert sorted(weights.kept(tmp_path / "loss")) == [1]  # a loss is kept at its lowest


def test_best_of_several_objectives_is_the_front(tmp_path):
    dirs = ("maximize", "minimize")  # accuracy up, FLOPs down
    for n, v in enumerate([[0.5, 10.0], [0.6, 20.0], [0.4, 30.0], [0.7, 15.0]]):
        _keep(tmp_path, "best", n, v, dirs)
    assert sorted(weights.kept(tmp_path)) == [0, 3]  # 1 is beaten by 3, 2 by every other


def test_all_none_and_auto(tmp_path):
    for n, v in enumerate([0.5, 0.3, 0.7]):
        assert _keep(tmp_path / "all", "all", n, [v])
        assert not _keep(tmp_path / "none", "none", n, [v])
    assert sorted(weights.kept(tmp_path / "all")) == [0, 1, 2] and weights.kept(tmp_path / "none") == {}
    assert [weights.resolve_keep("auto", k) for k in ("ablation", "search", "ladder", "design_space")] == \
        ["best", "best", "best", "none"]
    assert weights.resolve_keep("all", "design_space") == "all"


def test_keep_weights_is_checked_and_a_free_key(compose):
    from nasplay.sweep.plan import is_free_key, to_config

    with pytest.raises(ValueError, match=r"sweep.keep_weights must be one of \['auto', 'best', 'all', 'none'\], got 'some'"):
        to_config(compose("sweep.keep_weights=some"))
    assert is_free_key("sweep.keep_weights")  # a study resumes with another value: it changes no trial's numbers
    assert to_config(compose("experiment=edf_skip")).sweep.keep_weights == "none"  # said in its config, as auto would
    assert to_config(compose("experiment=ablate_skip")).sweep.keep_weights == "auto"


# --- a real tiny study, exported ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Two arms x two seeds of LeNet-5 (common) on the digits, every trial's weights kept."""
    from hydra import compose, initialize_config_dir

    from nasplay.experiment import run_experiment
    from nasplay.sweep.config import register_configs

    register_configs()
    runs = tmp_path_factory.mktemp("runs")
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3", job_name="nasplay"):
        cfg = compose("config", overrides=["arch=lenet5_common", "debug=smoke", "logger=none", "sweep.workers=1",
                                           "experiment.name=tiny", "experiment.knob=activation",
                                           "experiment.values=[relu,tanh]", "experiment.seeds=[0,1]",
                                           "sweep.keep_weights=all", f"runs_dir={runs}"])
    threads = torch.get_num_threads()
    result = run_experiment(cfg, console=Console(file=io.StringIO(), width=200))
    torch.set_num_threads(threads)
    assert result.counts["COMPLETE"] == 4
    return Path(result.study_dir)


def test_kept_weights_are_the_trained_network(study):
    """The kept weights give the trial's own test accuracy on its test split: they are what trained, as it ended."""
    import optuna

    from nasplay.nn.build import build
    from nasplay.space.genome import Genome
    from nasplay.sweep.storage import make_storage
    from nasplay.train.config import DataConfig
    from nasplay.train.data import make_datamodule

    trials = optuna.load_study(study_name="tiny-smoke", storage=make_storage(None, study)).get_trials()
    assert sorted(weights.kept(study)) == [t.number for t in trials]
    dm = make_datamodule(DataConfig(limit=256))
    test = dm.splits()["test"]
    for t in trials:
        d = weights.trial_dir(study, t.number)
        net = build(Genome.from_yaml((d / "genome.yaml").read_text())).eval()
        net.load_state_dict(torch.load(d / "weights.pt", weights_only=True))
        with torch.no_grad():
            acc = (net(test.x).argmax(1) == test.y).float().mean().item()
        meta = json.loads((d / "trial.json").read_text())
        assert acc == pytest.approx(t.user_attrs["metrics"]["test/acc"], abs=1e-6)
        assert meta["values"] == [t.value] and meta["arm"] == t.user_attrs["arm"] and meta["seed"] == t.user_attrs["seed"]
        assert meta["input"]["channels"] == 1 and meta["input"]["size"] == 16 and len(meta["input"]["mean"]) == 1


def test_export_state_dict_loads_in_a_plain_script(study, tmp_path):
    out = export(study, trial="best", fmt="state_dict", out=tmp_path / "net")
    meta = json.loads((out / "trial.json").read_text())
    best = max(weights.kept(study).items(), key=lambda kv: (kv[1]["values"][0], -kv[0]))[0]
    assert meta["trial"] == best and sorted(p.name for p in out.iterdir()) == ["genome.yaml", "trial.json", "weights.pt"]
    script = (f"import torch, nasplay\nfrom pathlib import Path\n"
              f"net = nasplay.build(nasplay.Genome.from_yaml(Path({str(out / 'genome.yaml')!r}).read_text())).eval()\n"
              f"net.load_state_dict(torch.load({str(out / 'weights.pt')!r}, weights_only=True))\n"
              f"x = torch.linspace(-1, 1, 256).view(1, 1, 16, 16)\n"
              f"print(net(x).argmax(1).item(), float(net(x).sum()))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    from nasplay.cli.export import _network

    net, _ = _network(weights.trial_dir(study, best), meta)
    with torch.no_grad():
        y = net(torch.linspace(-1, 1, 256).view(1, 1, 16, 16))
    cls, total = r.stdout.split()
    assert int(cls) == y.argmax(1).item() and float(total) == pytest.approx(float(y.sum()), rel=1e-6)


def test_export_torchscript_and_onnx(study, tmp_path):
    out = export(study, trial=2, fmt="torchscript", out=tmp_path / "ts")
    assert json.loads((out / "trial.json").read_text())["trial"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export, and still works
        scripted = torch.jit.load(str(out / "model.torchscript.pt"))
    from nasplay.cli.export import _network

    net, x = _network(weights.trial_dir(study, 2), {})
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'nasplay[onnx]'")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed: pip install 'nasplay[onnx]'")
    notes: list[str] = []
    out = export(study, trial=2, fmt="onnx", out=tmp_path / "onnx", notes=notes)
    model = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["images"] and [o.name for o in model.graph.output] == ["logits"]
    assert "outputs" in notes[0] and "equal the network's" in notes[0]  # compared, not only checked
    from onnx.reference import ReferenceEvaluator

    (y,) = ReferenceEvaluator(model).run(None, {"images": x[:1].numpy()})  # one image: the batch is dynamic
    torch.testing.assert_close(torch.from_numpy(y), net(x[:1]).detach(), rtol=1e-4, atol=1e-5)


def test_export_errors_are_one_line(study, tmp_path, monkeypatch, capsys):
    assert cli(["export", str(study), "--trial", "99"]) == 2
    assert "error: --trial 99: its weights were not kept (sweep.keep_weights=all: every finished trial); trials with " \
           "weights: [0, 1, 2, 3]" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli(["export", str(tmp_path / "empty")]) == 2
    assert "no trial kept its weights" in capsys.readouterr().err
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    assert cli(["export", str(study), "--format", "onnx"]) == 2
    assert "--format onnx needs the onnx extra (onnxscript missing): pip install 'nasplay[onnx]'" in capsys.readouterr().err
    assert cli(["export", str(study), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "weights.pt, genome.yaml, trial.json; input 1x16x16" in out and "nasplay.build(nasplay.Genome.from_yaml(" in out
