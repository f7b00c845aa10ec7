"""scripts/device_check.sh: the GPU check runs whole on the CPU (--dry-run) and writes its summary; its parts
(time limits, the budget, the install's refusals, the failures' tracebacks) behave as the GPU run needs."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["install", "environment", "pytest_gpu", "lvr_main", "lvr_resnet50", "workers_1", "workers_2", "study"]


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "scripts" / "device_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_dry_run_writes_the_summary_of_every_step_in_under_three_minutes(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    start = time.monotonic()
    r = subprocess.run(["bash", "scripts/device_check.sh", "--dry-run", str(out), "--work", str(work)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    seconds = time.monotonic() - start
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert seconds < 180, f"the dry run took {seconds:.0f} s"
    s = json.loads((out / "summary.json").read_text())
    assert s["mode"].startswith("dry-run") and s["finished"] and s["ok"] and s["failed"] == []
    assert [x["name"] for x in s["steps"]] == STEPS
    for x in s["steps"]:
        assert x["status"] == "passed" and x["error"] is None, x
        assert 0 <= x["seconds"] <= x["limit_s"]
    step = {x["name"]: x["figures"] for x in s["steps"]}
    # the GPU test is selected by -m 'gpu or cuda' and skips here (on the device a skip is a failure)
    assert step["pytest_gpu"]["tests"] == {"tests.test_ddp::test_gpu_workers_are_pinned_and_train_bf16_channels_last": "skipped"}
    assert step["environment"]["cuda_available"] is False and step["environment"]["nasplay"].startswith(str(ROOT))
    for k in ("lvr_main", "lvr_resnet50"):
        f = step[k]
        assert f["device"] == "cpu" and f["num_train"] == 96 and len(f["ratios"]) == 2
        assert f["ratio"] == pytest.approx(f["lightning_img_s"] / f["raw_img_s"]) and f["ratio"] > 0
    assert (step["lvr_main"]["arch"], step["lvr_resnet50"]["arch"]) == ("resnet18", "resnet50")
    for n in (1, 2):
        f = step[f"workers_{n}"]
        assert f["workers"] == n and f["trials"] == 2 * n and f["images_per_s"] > 0 and f["steady_s"] > 0
    assert step["workers_1"]["speedup_vs_1"] == 1.0
    study = step["study"]
    assert study["trials"] == {"total": 6, "COMPLETE": 6} and sorted(study["arms"]) == ["skip=identity", "skip=none"]
    assert all(a["n"] == 3 for a in study["arms"].values())  # the check's three seeds (the experiment has five)
    assert s["figures"]["lvr_main_ratio"] == round(step["lvr_main"]["ratio"], 3)
    assert set(s["figures"]["workers"]) == {"1", "2"}

    # what comes back from the device tool: at most 8 plain files with plain names, the summary in markdown too
    files = sorted(p.name for p in out.iterdir())
    assert files == ["details.tar.gz", "device_check.log", "study_report.md", "summary.json", "summary.md"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)
    md = (out / "summary.md").read_text()
    assert "all steps passed" in md and all(f"| {n} | passed |" in md for n in STEPS)
    with tarfile.open(out / "details.tar.gz") as tar:
        names = tar.getnames()
    assert all(f"logs/{n}.log" in names for n in STEPS if n != "install")
    assert "logs/pytest_gpu.xml" in names and any(n.endswith("device-check/report.json") for n in names)
    assert "device check PASSED" in r.stdout


def test_a_step_over_its_limit_is_killed_with_its_children_and_the_summary_says_so(dc, tmp_path):
    c = dc.Check(tmp_path / "out", tmp_path / "work", dry=True, budget=60)
    pidfile = tmp_path / "child.pid"
    rec = c.step("hang", "a hang", ["bash", "-c", f"sleep 60 & echo $! > {pidfile}; echo started; wait"], limit=2)
    assert rec["status"] == "failed" and rec["error"].startswith("timed out after 2 s") and "started" in rec["error"]
    assert rec["seconds"] < 15
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["failed"] == ["hang"] and not s["ok"]
    assert "### hang" in (tmp_path / "out" / "summary.md").read_text()


def test_a_step_whose_figures_fail_keeps_the_traceback_and_a_spent_budget_runs_nothing(dc, tmp_path):
    c = dc.Check(tmp_path / "out", tmp_path / "work", dry=True, budget=30)

    def parse(rec, logfile, sampler):
        return {"x": 1 / 0}

    rec = c.step("broken", "figures that fail", [sys.executable, "-c", "print('fine')"], limit=20, parse=parse)
    assert rec["status"] == "failed" and rec["returncode"] == 0
    assert "Traceback" in rec["error"] and "ZeroDivisionError" in rec["error"]
    c.budget = 0
    rec = c.step("late", "after the budget", [sys.executable, "-c", "raise SystemExit(0)"], limit=20)
    assert rec["status"] == "failed" and rec["error"].startswith("not run") and rec["returncode"] is None
    data = c.finish()
    assert data["finished"] and data["failed"] == ["broken", "late"] and not data["ok"]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "ZeroDivisionError" in md and "failed: broken, late" in md


def test_install_says_what_is_missing_and_where_the_wheels_come_from(dc, tmp_path, monkeypatch):
    monkeypatch.setattr(dc, "missing_requirements", lambda: ["optuna>=4", "hydra-core>=1.3"])
    c = dc.Check(tmp_path / "out", tmp_path / "work", dry=True, budget=30)
    c.wheels = tmp_path / "no-wheels"
    dc.step_install(c)
    (rec,) = c.steps
    assert rec["status"] == "failed" and rec["command"] is None  # nothing to install from: pip is not even started
    assert "missing: optuna, hydra-core" in rec["error"] and "scripts/device_check.sh --prepare" in rec["error"]
    assert rec["figures"]["missing_before"] == ["optuna", "hydra-core"]


def test_requirements_are_pyprojects_and_the_carried_ones_leave_out_the_device_image(dc):
    reqs = dc.requirements()
    names = [dc.norm(dc.dist_name(r)) for r in reqs]
    assert {"torch", "lightning", "optuna", "hydra_core", "wandb", "psycopg", "pytest", "pytest_timeout"} <= set(names)
    assert dc.dist_name("psycopg[binary]>=3.1") == "psycopg"
    for name in ("torch", "nvidia_cudnn_cu13", "triton", "lightning", "numpy", "scipy", "matplotlib"):
        assert dc.NOT_CARRIED.match(name), name
    for name in ("optuna", "wandb", "sqlalchemy", "psycopg_binary", "hydra_core", "scikit_learn"):
        assert not dc.NOT_CARRIED.match(name), name
    assert dc.missing_requirements() == []  # this environment has everything (the dry run installs nothing)


def test_gpu_utilisation_is_averaged_over_the_steady_window_and_says_why_when_absent(dc, monkeypatch):
    monkeypatch.setattr(dc.shutil, "which", lambda name: None)  # no driver: no sampling thread, a reason instead
    s = dc.GpuSampler("0")
    assert s.why == "nvidia-smi not found (no GPU driver here)"
    s.samples = [(1.0, 50.0, 100.0), (2.0, 70.0, 300.0), (5.0, 10.0, 50.0)]
    assert s.between(0.5, 3.0) == {"gpu_util_mean": 60.0, "gpu_util_max": 70.0, "gpu_mem_max_mib": 300.0, "gpu_util_samples": 2}
    empty = s.between(10.0, 11.0)
    assert empty["gpu_util_mean"] is None and empty["gpu_util_note"] == s.why


def test_failed_trials_are_quoted_from_the_study_output(dc, tmp_path):
    log = tmp_path / "study.log"
    log.write_text("study 'x' (new)\n" + "".join(
        f"[w0] trial {i:3d} FAIL     skip=none  seed={i}    (0.3 s)  MisconfigurationException: No supported gpu backend found!\n"
        for i in range(7)) + "[w1] trial   7 COMPLETE skip=identity  seed=0  val/acc=0.5\n")
    text = dc._failed_trials(log)
    assert text.count("No supported gpu backend found!") == 5 and text.endswith("... 2 more") and "COMPLETE" not in text
