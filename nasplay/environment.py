"""The environment a study's numbers were made in: versions, commit, hardware, threads and determinism.

Two runs of one config give the same numbers only with the same code, the same libraries, the same kind of
processor and the same thread count (a reduction split across threads rounds differently). :func:`collect`
gathers what decides that, cheaply (package metadata, one ``git rev-parse``, ``/proc/cpuinfo``,
``nvidia-smi`` where there is one; it never imports torch), and :func:`fingerprint` hashes the fields that
change numbers into a short id.

Where it is recorded:

- ``study.json`` (:mod:`nasplay.manifest`): ``environment``, where the study was created, and
  ``environments``, every environment that opened it or ran its trials, by fingerprint (:func:`stamp`,
  :func:`gather`). A resume in another environment goes on, and says in one line what changed.
- each trial: the worker that runs it sets the trial's ``environment`` attribute to its fingerprint, and
  stores its whole environment once as the study attribute ``environment:<fingerprint>`` (:func:`claim`),
  so that workers on other hosts are described too; results.csv has the ``environment`` column.
- ``report.json`` / ``report.md``: :func:`report_block` and :func:`markdown`, with a note when the trials
  ran in more than one environment.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

# The libraries whose versions are recorded (distribution names).
PACKAGES = ("torch", "torchvision", "lightning", "optuna", "hydra-core", "numpy", "scipy")
# Recorded but left out of the fingerprint: whether the tree had uncommitted changes (it says nothing of which),
# and how many GPUs the process sees (a worker pinned to one GPU computes what a process that sees eight does;
# a DDP trial's world size is trainer.devices, in the config).
UNHASHED = ("dirty", "gpus", "fingerprint")
STUDY_ATTR = "environment:"  # + fingerprint: a worker's whole environment, as an Optuna study attribute
TRIAL_ATTR = "environment"  # a trial's fingerprint (Optuna user attribute and results.csv column)
LABELS = {"nasplay": "nasplay", "commit": "commit", "dirty": "uncommitted changes", "python": "Python", "platform": "platform",
          "cpu": "CPU", "gpu": "GPU", "gpus": "GPUs", "threads": "threads", "deterministic": "deterministic",
          "benchmark": "cudnn.benchmark", "matmul_precision": "matmul precision"}
TIMEOUT = 5.0  # seconds for git and nvidia-smi


def collect(*, threads: int | None = None, deterministic: bool | None = None, benchmark: bool | None = None,
            matmul_precision: str | None = None) -> dict[str, Any]:
    """This process's environment with its ``fingerprint``.

    ``threads`` is the intra-op thread count trials use (``trainer.threads``); ``None``: torch's current count
    when torch is imported, else ``OMP_NUM_THREADS``. ``deterministic``, ``benchmark`` and ``matmul_precision``
    are the trainer's determinism settings as configured (``None``: torch's default).
    """
    env = dict(_static())
    env["threads"] = threads if threads is not None else _threads()
    env.update(deterministic=deterministic, benchmark=benchmark, matmul_precision=matmul_precision)
    env["fingerprint"] = fingerprint(env)
    return env


def of_trainer(trainer: Any) -> dict[str, Any]:
    """:func:`collect` with the settings of a trainer config (``TrainerConfig`` or the ``trainer`` node)."""
    return collect(threads=getattr(trainer, "threads", None), deterministic=getattr(trainer, "deterministic", None),
                   benchmark=getattr(trainer, "benchmark", None), matmul_precision=getattr(trainer, "matmul_precision", None))


def fingerprint(env: dict[str, Any]) -> str:
    """8 hex digits of a hash of the fields that change numbers (all but ``UNHASHED``)."""
    kept = {k: v for k, v in env.items() if k not in UNHASHED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field, old, new)`` for every recorded field that differs (the fingerprint itself left out)."""
    keys = [k for k in dict.fromkeys([*old, *new]) if k != "fingerprint"]
    return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def change_text(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``torch 2.5.1 -> 2.6.0, threads 1 -> 2``: what differs between two environments."""
    return ", ".join(f"{LABELS.get(k, k)} {_show(k, a)} -> {_show(k, b)}" for k, a, b in changes(old, new))


# --- the study's record (study.json and the Optuna storage) ------------------------------------------------------------


def stamp(manifest: Any, study_dir: str | os.PathLike, study: Any, trainer: Any) -> str | None:
    """Set ``manifest.environment`` / ``environments`` before the runner writes it; a line when the study was made
    in another environment.

    The creation environment and those already recorded come from the ``study.json`` being replaced; the
    environments of workers elsewhere from the Optuna ``study``'s attributes.
    """
    env = of_trainer(trainer)
    previous = _read(Path(study_dir))
    created = previous.get("environment") if isinstance(previous.get("environment"), dict) else None
    known = dict(previous.get("environments") or {})
    known.update(from_storage(study))
    fresh = not previous or not any(t.state.name != "WAITING" for t in study.get_trials(deepcopy=False))
    # A study made before environments were recorded keeps no creation environment: later resumes compare with the
    # last one recorded.
    reference = created or (list(known.values())[-1] if known else None)
    known.setdefault(env["fingerprint"], env)
    manifest.environment = created or (env if fresh else None)
    manifest.environments = known
    if reference is None or reference.get("fingerprint") == env["fingerprint"]:
        return None
    where = "created" if created else "last run"
    return (f"note: this study was {where} in another environment ({reference.get('fingerprint')} -> {env['fingerprint']}: "
            f"{change_text(reference, env)}); it goes on here, and its report counts the trials of each environment")


def claim(study: Any, env: dict[str, Any]) -> None:
    """Store a worker's environment in the study (once per fingerprint), for every host's study.json and report."""
    key = STUDY_ATTR + env["fingerprint"]
    if key not in study.user_attrs:
        study.set_user_attr(key, env)


def from_storage(study: Any) -> dict[str, dict[str, Any]]:
    """The environments the study's workers stored, by fingerprint."""
    attrs = study.user_attrs if study is not None else {}
    return {k.removeprefix(STUDY_ATTR): v for k, v in attrs.items() if k.startswith(STUDY_ATTR) and isinstance(v, dict)}


def gather(study_dir: str | os.PathLike, study: Any) -> None:
    """Add the environments the workers stored in the study to ``study.json``'s ``environments``."""
    path = Path(study_dir) / "study.json"
    data = _read(Path(study_dir))
    found = from_storage(study)
    known = data.get("environments") or {}
    if not data or all(fp in known for fp in found):
        return
    data["environments"] = {**known, **{fp: e for fp, e in found.items() if fp not in known}}
    tmp = path.with_name(f".study.json.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _read(study_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((study_dir / "study.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- the report ----------------------------------------------------------------------------------------------------------


def report_block(manifest: Any, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """``report.json``'s ``environment``: the trials per environment fingerprint and each environment as recorded.

    ``manifest`` is the study's (study.json; ``None`` without one); ``trials`` the results rows (their
    ``environment`` column).
    """
    created = getattr(manifest, "environment", None)
    environments = getattr(manifest, "environments", None) or {}
    counts: dict[str, int] = {}
    for t in trials:
        fp = t.get(TRIAL_ATTR)
        if fp not in (None, ""):
            counts[str(fp)] = counts.get(str(fp), 0) + 1
    unmarked = len(trials) - sum(counts.values())
    if not counts and created is None:
        return {"recorded": False, "trials": {}, "environments": {}, "several": False}
    shown = list(counts) or [created["fingerprint"]]
    described = {fp: environments.get(fp) or (created if created and created.get("fingerprint") == fp else None) for fp in shown}
    block = {"recorded": True, "created": created, "trials": counts, "unmarked": unmarked,
             "environments": {fp: e for fp, e in described.items() if e is not None},
             "undescribed": [fp for fp, e in described.items() if e is None], "several": len(counts) > 1}
    return block


def note(block: dict[str, Any]) -> str | None:
    """The report's note when the trials ran in more than one environment."""
    if not block.get("several"):
        return None
    counts = block["trials"]
    envs = [block["environments"].get(fp) for fp in counts]
    diff = change_text(envs[0], envs[1]) if len(envs) == 2 and all(envs) else ""
    return (f"the study's trials ran in {len(counts)} environments ({', '.join(f'{fp}: {n} trial(s)' for fp, n in counts.items())})"
            + (f"; they differ in {diff}" if diff else "") + ": see Environment")


def describe(env: dict[str, Any]) -> str:
    """One environment on one line: versions, commit, hardware, threads and determinism."""
    commit = env.get("commit")
    code = f"nasplay {env.get('nasplay')}" + (f" (commit {commit[:10]}{', with uncommitted changes' if env.get('dirty') else ''})"
                                              if commit else " (no git commit)")
    versions = ", ".join(f"{p} {env[p]}" for p in PACKAGES if env.get(p))
    gpu = f"{env.get('gpus')} x {env['gpu']}" if env.get("gpu") else "no GPU"
    det = f"deterministic {_show('deterministic', env.get('deterministic'))}"
    extra = [f"cudnn.benchmark {env['benchmark']}" if env.get("benchmark") is not None else "",
             f"matmul precision {env['matmul_precision']}" if env.get("matmul_precision") else ""]
    return (f"{code}, Python {env.get('python')}, {versions}; {env.get('platform')}, CPU {env.get('cpu')}, {gpu}; "
            f"{env.get('threads') or 'default'} thread(s), " + ", ".join(x for x in (det, *extra) if x))


def markdown(block: dict[str, Any] | None) -> list[str]:
    """report.md's Environment section (lines)."""
    if not block:
        return []
    lines = ["## Environment", ""]
    if not block.get("recorded"):
        return lines + ["Not recorded: the study predates nasplay's record of its environment.", ""]
    counts = block["trials"]
    first: tuple[str, dict[str, Any]] | None = None
    for fp, env in block["environments"].items():
        n = counts.get(fp)
        lines.append(f"- `{fp}`" + (f" ({n} trial(s))" if n is not None else " (where the study was created; no trial records "
                                    "its environment)") + f": {_relative(env, first)}")
        first = first or (fp, env)
    lines += [f"- `{fp}` ({counts.get(fp, 0)} trial(s)): not described here (recorded in the study.json of the host that ran "
              "them)" for fp in block.get("undescribed", [])]
    if block.get("unmarked") and counts:
        lines.append(f"- {block['unmarked']} trial(s) record no environment (run before nasplay recorded it)")
    created = block.get("created")
    if created and created.get("fingerprint") not in block["environments"]:
        lines.append(f"- created in `{created.get('fingerprint')}`: {_relative(created, first)}")
    if block.get("several"):
        lines.append(f"- **the trials ran in {len(counts)} environments**: compare their numbers with that in mind")
    return lines + [""]


def _relative(env: dict[str, Any], first: tuple[str, dict[str, Any]] | None) -> str:
    """``env`` in full, or as the ``first`` environment listed with what differs."""
    return describe(env) if first is None else f"as `{first[0]}` but {change_text(first[1], env) or 'nothing recorded'}"


# --- collecting ----------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    """What does not change during a process: code, libraries, hardware."""
    from importlib import metadata

    import nasplay

    commit, dirty = _git(Path(nasplay.__file__).resolve().parent)
    env: dict[str, Any] = {"nasplay": nasplay.__version__, "commit": commit, "dirty": dirty, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = None
    gpu, gpus = _gpus()
    env.update(platform=f"{platform.system()} {platform.machine()}", cpu=_cpu(), gpu=gpu, gpus=gpus)
    return env


def _git(package: Path) -> tuple[str | None, bool | None]:
    """The commit of the checkout ``package`` lies in, and whether its tracked files differ from it; ``(None, None)``
    outside a git checkout of nasplay (an installed copy, even inside another project's repository)."""
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=TIMEOUT,
                            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})  # workers never contend for the index lock
    try:
        out = run(["git", "-C", str(package), "rev-parse", "--show-toplevel", "HEAD"])
        lines = out.stdout.splitlines()
        if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != package.parent:
            return None, None
        status = run(["git", "-C", lines[0], "status", "--porcelain", "--untracked-files=no"])
    except (OSError, subprocess.SubprocessError):
        return None, None
    return lines[1].strip(), (bool(status.stdout.strip()) if status.returncode == 0 else None)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _gpus() -> tuple[str | None, int]:
    """The GPUs this process may use (``CUDA_VISIBLE_DEVICES`` applied): their name(s) and count, from nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None, 0
    rows = [[c.strip() for c in line.split(",", 2)] for line in out.stdout.splitlines() if line.count(",") >= 2]
    if out.returncode != 0 or not rows:
        return None, 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # indices or UUIDs (a UUID's prefix will do); CUDA stops at the first that names no GPU
        chosen = []
        for w in (v.strip() for v in visible.split(",")):
            row = next((r for r in rows if w and (w == r[0] or (w.startswith("GPU-") and r[1].startswith(w)))), None)
            if row is None:
                break
            chosen.append(row)
        rows = chosen
    names = list(dict.fromkeys(r[2] for r in rows))
    return (" + ".join(names) if names else None), len(rows)


def _threads() -> int | None:
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return int(torch.get_num_threads())
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else None


def _show(key: str, value: Any) -> str:
    if value is None:
        return "default" if key in ("deterministic", "benchmark", "matmul_precision") else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)[:10] if key == "commit" else str(value)
