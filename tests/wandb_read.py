"""Read offline W&B runs back from disk (test tooling): name, config, tags, group, history, summary, git, exit code.

wandb >= 0.2x writes an offline run as one binary transaction log (``run-<id>.wandb``); its own reader
is ``wandb leet inspect --json`` (one JSON record per line), which this module runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class OfflineRun:
    """What an offline run holds."""

    id: str
    project: str
    group: str
    job_type: str
    tags: list[str]
    config: dict[str, Any]
    history: list[dict[str, Any]]  # the logged rows, in order
    summary: dict[str, Any]
    exit_code: int | None
    path: Path = field(default_factory=Path)
    name: str = ""  # the run's display name
    entity: str = ""
    git: dict[str, Any] = field(default_factory=dict)  # {"commit": ..., "remote": ...} as W&B recorded it


def run_files(root: Path) -> list[Path]:
    """The ``run-*.wandb`` logs under ``root`` (a study directory or its ``wandb/``), oldest first."""
    return sorted(Path(root).rglob("offline-run-*/run-*.wandb"))


def read_run(path: Path) -> OfflineRun:
    """Parse one run (its ``.wandb`` file or its directory)."""
    path = Path(path)
    if path.is_dir():
        (path,) = path.glob("run-*.wandb")
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
                         capture_output=True, text=True, check=True, timeout=300)
    run: dict[str, Any] = {}
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    exit_code = None
    for line in out.stdout.splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        kind = rec.get("type")
        if kind == "run":
            run = rec["run"]
            config.update(run.get("config", {}).get("update", {}))
        elif kind == "config":
            config.update(rec["config"].get("update", {}))
        elif kind == "history":
            history.append({k: v for k, v in rec["history"]["item"].items() if not k.startswith("_")})
        elif kind == "summary":
            summary.update({k: v for k, v in rec["summary"].get("update", {}).items() if not k.startswith("_")})
        elif kind == "exit":
            exit_code = int(rec["exit"].get("exit_code", 0))
    config.pop("_wandb", None)
    return OfflineRun(run.get("run_id", ""), run.get("project", ""), run.get("run_group", ""), run.get("job_type", ""),
                      list(run.get("tags", [])), config, history, summary, exit_code, path, run.get("display_name", ""),
                      run.get("entity", ""), dict(run.get("git") or {}))
