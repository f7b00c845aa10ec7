"""The environment of a study (nasplay.environment): what is collected and hashed, where it is recorded (study.json,
each trial's results row, the report), and what a resume in another environment says."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from nasplay import environment

ROOT = Path(__file__).resolve().parents[1]


def test_collect_names_the_versions_the_code_and_the_hardware():
    from importlib import metadata

    import nasplay

    env = environment.collect(threads=3, deterministic=True, benchmark=False, matmul_precision="high")
    for name in environment.PACKAGES:
        assert env[name] == metadata.version(name), name
    assert env["nasplay"] == nasplay.__version__ and env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["cpu"] and env["platform"].split()[0] == os.uname().sysname
    assert (env["threads"], env["deterministic"], env["benchmark"], env["matmul_precision"]) == (3, True, False, "high")
    assert env["fingerprint"] == environment.fingerprint(env) and len(env["fingerprint"]) == 8
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0 and Path(nasplay.__file__).resolve().parent == ROOT / "nasplay":
        assert env["commit"] == head.stdout.strip() and isinstance(env["dirty"], bool)
    # torch's default thread count when the trainer sets none (torch is imported here by now or not: either way a number)
    assert isinstance(environment.collect()["threads"], (int, type(None)))


def test_fingerprint_changes_with_what_changes_numbers_only():
    env = environment.collect(threads=1, deterministic=True)
    fp = env["fingerprint"]
    for key, value in (("torch", "0.0.1"), ("threads", 2), ("commit", "0" * 40), ("cpu", "another"), ("gpu", "H100"),
                       ("deterministic", False), ("python", "3.99.0")):
        assert environment.fingerprint({**env, key: value}) != fp, key
    for key, value in (("dirty", not env["dirty"]), ("gpus", 8)):  # recorded, but the same numbers
        assert environment.fingerprint({**env, key: value}) == fp, key
    assert environment.changes(env, {**env, "torch": "9.9", "threads": 4}) == [("torch", env["torch"], "9.9"), ("threads", 1, 4)]
    assert environment.change_text(env, {**env, "torch": "9.9"}) == f"torch {env['torch']} -> 9.9"


def test_collecting_imports_no_torch():
    code = ("import sys, nasplay.environment as e; env = e.collect(); "
            "assert 'torch' not in sys.modules, 'torch imported'; assert env['torch'], env; print(env['fingerprint'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip()) == 8


def test_no_commit_outside_a_checkout_of_nasplay(tmp_path):
    bare = tmp_path / "bare" / "nasplay"
    bare.mkdir(parents=True)
    assert environment._git(bare) == (None, None)
    # An installed copy inside another project's repository is not that project's commit.
    other = tmp_path / "project"
    pkg = other / "venv" / "site-packages" / "nasplay"
    pkg.mkdir(parents=True)
    (other / "README").write_text("x\n")
    git = ["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    assert environment._git(pkg) == (None, None)
    # ... while a checkout of nasplay itself gives its commit, and a changed tracked file makes it dirty.
    (other / "nasplay").mkdir()
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert environment._git((other / "nasplay").resolve()) == (commit, False)
    (other / "README").write_text("y\n")
    assert environment._git((other / "nasplay").resolve()) == (commit, True)


def test_gpus_are_those_the_process_may_use(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0, GPU-aaa, NVIDIA H100 80GB HBM3\\n1, GPU-bbb, NVIDIA H100 80GB HBM3\\n"
                   "2, GPU-ccc, NVIDIA A100-SXM4-40GB\\n'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert environment._gpus() == ("NVIDIA H100 80GB HBM3 + NVIDIA A100-SXM4-40GB", 3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert environment._gpus() == ("NVIDIA H100 80GB HBM3", 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-ccc")
    assert environment._gpus() == ("NVIDIA A100-SXM4-40GB", 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,7,0")  # CUDA ignores what follows an index that names no GPU
    assert environment._gpus() == ("NVIDIA A100-SXM4-40GB", 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert environment._gpus() == (None, 0)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert environment._gpus() == (None, 0)


def _env(**changed):
    env = {**environment.collect(threads=1, deterministic=True), **changed}
    env["fingerprint"] = environment.fingerprint(env)
    return env


def test_report_block_counts_the_trials_of_each_environment():
    a, b = _env(), _env(torch="0.0.1")
    manifest = SimpleNamespace(environment=a, environments={a["fingerprint"]: a, b["fingerprint"]: b})
    rows = [{"environment": a["fingerprint"]}] * 4 + [{"environment": b["fingerprint"]}] * 2
    block = environment.report_block(manifest, rows)
    assert block["several"] and block["trials"] == {a["fingerprint"]: 4, b["fingerprint"]: 2}
    assert block["environments"] == {a["fingerprint"]: a, b["fingerprint"]: b}
    note = environment.note(block)
    assert "ran in 2 environments" in note and f"torch {a['torch']} -> 0.0.1" in note
    text = "\n".join(environment.markdown(block))
    assert "## Environment" in text and f"`{b['fingerprint']}` (2 trial(s)): as `{a['fingerprint']}` but torch" in text
    assert environment.describe(a) in text and "-> 0.0.1" in text
    assert "ran in 2 environments" in text

    one = environment.report_block(manifest, rows[:4])
    assert not one["several"] and environment.note(one) is None and list(one["environments"]) == [a["fingerprint"]]
    # A study from before the record: said so, not guessed.
    old = environment.report_block(None, [{"environment": None}] * 3)
    assert old["recorded"] is False and "Not recorded" in "\n".join(environment.markdown(old))
    # A fingerprint this study.json does not describe (another host's): named as such.
    other = environment.report_block(SimpleNamespace(environment=a, environments={}), [{"environment": "ffffffff"}])
    assert other["undescribed"] == ["ffffffff"] and "not described here" in "\n".join(environment.markdown(other))


def _trainer(threads: int) -> SimpleNamespace:
    return SimpleNamespace(threads=threads, deterministic=True, benchmark=None, matmul_precision=None)


def test_stamp_records_where_a_study_was_made_and_what_changed_since(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    one, two = environment.of_trainer(_trainer(1)), environment.of_trainer(_trainer(2))
    fresh, m = optuna.create_study(), SimpleNamespace()
    assert environment.stamp(m, tmp_path / "new", fresh, _trainer(1)) is None
    assert m.environment == one and m.environments == {one["fingerprint"]: one}

    # A study made before environments were recorded: its trials ran somewhere unknown, so no creation environment ...
    old = optuna.create_study()
    old.tell(old.ask(), 1.0)
    (tmp_path / "study.json").write_text(json.dumps({"experiment": "x"}))
    assert environment.stamp(m, tmp_path, old, _trainer(1)) is None
    assert m.environment is None and m.environments == {one["fingerprint"]: one}
    # ... and the next resume elsewhere compares with the last environment recorded.
    (tmp_path / "study.json").write_text(json.dumps({"environment": None, "environments": m.environments}))
    line = environment.stamp(m, tmp_path, old, _trainer(2))
    assert line.startswith(f"note: this study was last run in another environment ({one['fingerprint']} -> {two['fingerprint']}")
    assert "threads 1 -> 2" in line and "\n" not in line and list(m.environments) == [one["fingerprint"], two["fingerprint"]]

    # A worker's environment, stored in the study by the worker, reaches study.json (another host's too).
    (tmp_path / "study.json").write_text(json.dumps({"environment": one, "environments": {one["fingerprint"]: one}}))
    environment.claim(old, {**two, "cpu": "elsewhere"})
    environment.gather(tmp_path, old)
    recorded = json.loads((tmp_path / "study.json").read_text())
    assert recorded["environment"] == one and recorded["environments"][two["fingerprint"]]["cpu"] == "elsewhere"


# --- end to end: a study records it, a resume elsewhere says so, the report counts the environments ----------------------

TINY = ("arch=lenet5_common", "data.limit=240", "data.batch_size=32", "trainer.max_epochs=1", "sweep=grid",
        "experiment.name=tiny", "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0]",
        "logger=none")


def run(cfg):
    from nasplay.experiment import run_experiment

    buf = io.StringIO()
    result = run_experiment(cfg, console=Console(file=buf, width=300))
    return result, buf.getvalue()


def test_a_resume_in_another_environment_says_what_changed(compose, tmp_path, monkeypatch, one_thread):
    from nasplay.sweep.results import read_csv

    base = (*TINY, f"runs_dir={tmp_path}")
    result, text = run(compose(*base, "sweep.n_trials=1"))
    study_dir = Path(result.study_dir)
    made = json.loads((study_dir / "study.json").read_text())
    env = made["environment"]
    assert env["torch"] and env["optuna"] and env["cpu"] and env["threads"] == 1 and env["deterministic"] is True
    assert made["environments"] == {env["fingerprint"]: env} and "another environment" not in text
    report = json.loads((study_dir / "report.json").read_text())
    assert report["environment"]["trials"] == {env["fingerprint"]: 1} and not report["environment"]["several"]
    assert report["environment"]["environments"][env["fingerprint"]]["torch"] == env["torch"]
    assert "## Environment" in (study_dir / "report.md").read_text()
    assert [r["environment"] for r in read_csv(study_dir / "results.csv")] == [env["fingerprint"]]

    # The study was made with another torch (as its study.json says): the resume goes on and says so in one line.
    made["environment"] = {**env, "torch": "1.0.0"}
    made["environment"]["fingerprint"] = environment.fingerprint(made["environment"])
    (study_dir / "study.json").write_text(json.dumps(made))
    result, text = run(compose(*base))
    lines = [ln for ln in text.splitlines() if "another environment" in ln]
    assert len(lines) == 1 and f"torch 1.0.0 -> {env['torch']}" in lines[0] and "threads" not in lines[0], text
    assert result.ran == 1 and result.complete
    assert json.loads((study_dir / "study.json").read_text())["environment"]["torch"] == "1.0.0"  # where it was created

    # The second arm's trial again under another torch (the collector changed): two environments in the report.
    real = environment._static()
    monkeypatch.setattr(environment, "_static", lambda: {**real, "torch": "9.9.9"})
    result, text = run(compose(*base, "experiment.seeds=[0, 1]"))
    assert result.ran == 2 and "torch 1.0.0 -> 9.9.9" in text
    rows = read_csv(study_dir / "results.csv")
    moved = environment.collect(threads=1, deterministic=True)["fingerprint"]
    assert [r["environment"] for r in rows] == [env["fingerprint"]] * 2 + [moved] * 2
    block = json.loads((study_dir / "report.json").read_text())["environment"]
    assert block["several"] and block["trials"] == {env["fingerprint"]: 2, moved: 2}
    assert block["environments"][moved]["torch"] == "9.9.9"
    notes = json.loads((study_dir / "report.json").read_text())["notes"]
    assert any("ran in 2 environments" in n and f"torch {env['torch']} -> 9.9.9" in n for n in notes), notes
    assert "ran in 2 environments" in (study_dir / "report.md").read_text()
