"""Secrets planted in the environment and in the storage URL never reach a file, a W&B run or the output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocess studies

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "secret-xyz-0123456789abcdef0123456789abcdef01234567"  # 40+ characters, like a real W&B key


def leaks(root: Path, secrets: list[str]) -> list[str]:
    """Files under ``root`` (binary W&B logs included) that hold one of ``secrets``."""
    out = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            out += [f"{p}: {s}" for s in secrets if s.encode() in data]
    return out


def test_api_key_and_database_password_are_never_written_or_printed(tmp_path, postgres_url):
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password and password not in str(tmp_path)
    args = [sys.executable, "-m", "nasplay", "arch=lenet5_common", "data.limit=160", "data.batch_size=32",
            "trainer.max_epochs=1", "sweep=grid", "experiment.knob=activation", "experiment.values=[relu, tanh]",
            "experiment.name=secrets", "logger=wandb", "sweep.workers=1", f"runs_dir={tmp_path}",
            f"sweep.storage='{postgres_url}'"]
    env = {**os.environ, "WANDB_API_KEY": API_KEY, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 complete" in run.stdout and "***" in run.stdout  # the storage URL is shown, masked
    study_dir = tmp_path / "secrets" / "secrets"
    assert len(list(study_dir.glob("wandb/offline-run-*/run-*.wandb"))) >= 2
    assert (study_dir / "config.yaml").exists() and (study_dir / "results.csv").exists()
    for text in (run.stdout, run.stderr):
        assert API_KEY not in text and password not in text
    assert leaks(tmp_path, [API_KEY, password]) == []

    # A wrong password: the error names the storage, masked, and stops before any training.
    bad = postgres_url.replace(f":{password}@", ":wrong-pw-4711@")
    run = subprocess.run([*args[:-1], f"sweep.storage='{bad}'", "study=other"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0 and "sweep.storage" in run.stderr and "***" in run.stderr, run.stderr
    assert "wrong-pw-4711" not in run.stdout + run.stderr
    assert leaks(tmp_path, ["wrong-pw-4711"]) == []


def test_storage_url_from_the_environment_stays_out_of_the_command_and_hydras_printout(tmp_path, compose, monkeypatch):
    """``sweep.storage='${oc.env:NASPLAY_DB}'``: the study uses the URL, ``--cfg job`` and the saved config do not show it."""
    from nasplay.sweep.plan import make_plan

    url = "postgresql://nasplay:pw-in-env-0451@127.0.0.1:9/studies"
    monkeypatch.setenv("NASPLAY_DB", url)
    plan = make_plan(compose("experiment=ablate_skip", "sweep.storage=${oc.env:NASPLAY_DB}", f"runs_dir={tmp_path}"))
    assert plan.cfg.sweep.storage == url  # what the storage is opened with
    assert plan.resolved["sweep"]["storage"] == "postgresql://nasplay:***@127.0.0.1:9/studies"  # what is written and logged
    shown = subprocess.run([sys.executable, "-m", "nasplay", "experiment=ablate_skip", "sweep.storage=${oc.env:NASPLAY_DB}",
                            "--cfg", "job"], cwd=ROOT, env={**os.environ, "NASPLAY_DB": url}, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0 and "storage: ${oc.env:NASPLAY_DB}" in shown.stdout, shown.stderr
    assert "pw-in-env-0451" not in shown.stdout + shown.stderr
