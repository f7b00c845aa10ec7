"""The GPU check: every GPU path of nasplay measured in one unattended run (``scripts/device_check.sh``).

Steps, each a subprocess with its own time limit (its whole process group is killed when it runs over), in
this order: ``install`` (nasplay's missing dependencies from the carried ``.wheels/``, no network),
``environment``, ``pytest_gpu`` (``pytest -m "gpu or cuda"``), ``lvr_main`` and ``lvr_resnet50`` (Lightning
against a raw loop, ``benchmarks/lightning_vs_raw.py``), ``workers_1`` ... ``workers_8`` (trials sharing one
GPU), ``study`` (``ablate_skip data=clutter data.size=64 trainer=gpu`` at full width). After every step the
summary (``summary.json``, ``summary.md``) is written again, so it exists whatever happens later.

What comes back (at most 8 files, as the device tool returns them) lies in the output folder:
``summary.json``, ``summary.md``, ``device_check.log`` (every step's output in order), ``study_report.md`` and
``details.tar.gz`` (each step's log, the pytest JUnit XML, the benchmarks' JSON, the study's results and report).
The bulk (studies, data, checkpoints) is written to a work folder outside it.

    python scripts/device_check.py [--dry-run] [--out DIR] [--work DIR] [--budget S]
    python scripts/device_check.py --prepare [--python 3.12,3.11] [--wheels DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata as md
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # nasplay from this tree (the workers step reads its studies)
    sys.path.insert(0, str(ROOT))
WHEELS = ROOT / ".wheels"
DEVICE_PYTHON = "3.12"  # the device image's python3 (/work/.library/device/KINDS.md: 3.12.3, seen 2026-11)
# The device image has these (and everything they need): never carried, their wheels are hundreds of MB.
ON_DEVICE = ("torch", "torchvision", "lightning", "scipy", "matplotlib", "numpy")
# Wheels dropped from .wheels even when a carried package pulls them in: the device has them (or they are huge).
NOT_CARRIED = re.compile(r"^(torch|torchvision|torchaudio|torchmetrics|triton|nvidia_.*|lightning|lightning_utilities|"
                         r"pytorch_lightning|numpy|scipy|matplotlib|pillow|fonttools|kiwisolver|contourpy|sympy|networkx|"
                         r"timm|huggingface_hub|hf_xet|safetensors)$")
TEST_TOOLS = ("pytest>=8", "pytest-timeout")  # pyproject's pytest settings name timeout=...
CARRY_LIMIT_MB = 64  # the device tool carries at most 64 MiB of ignored paths in all
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64")
WORKERS = (1, 2, 4, 8)
STEP_LIMITS = {"install": 120, "environment": 60, "pytest_gpu": 150, "lvr_main": 75, "lvr_resnet50": 90,
               "workers": 75, "study": 210}


# --- requirements -------------------------------------------------------------------------------------
def requirements() -> list[str]:
    """nasplay's runtime dependencies (pyproject.toml) and the test tools, as requirement strings."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    deps = re.findall(r'"([^"]+)"', block.group(1)) if block else []
    return deps + list(TEST_TOOLS)


def dist_name(req: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", req).group(0)


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def missing_requirements() -> list[str]:
    out = []
    for req in requirements():
        try:
            md.version(dist_name(req))
        except md.PackageNotFoundError:
            out.append(req)
    return out


def wheel_dist(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return norm(name), version


# --- --prepare: the wheels the device needs, fetched here ----------------------------------------------
def prepare(dest: Path, versions: list[str]) -> int:
    """Fetch the wheels of nasplay's dependencies (but torch & co.) for linux x86_64 and ``versions`` of Python."""
    local = f"{sys.version_info.major}.{sys.version_info.minor}"
    carried = [r for r in requirements() if norm(dist_name(r)) not in {norm(n) for n in ON_DEVICE}]
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):  # a fresh set: no stale versions from an earlier prepare
        old.unlink()
    print(f"preparing {dest}: {len(carried)} requirements for python {', '.join(versions)} on linux x86_64 "
          f"(torch, torchvision, lightning, numpy, scipy, matplotlib are the device's own and are not carried)", flush=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # 1. resolve and build here (the local python): sdist-only packages (hydra's antlr4 runtime) become wheels
    if subprocess.run([*pip, "wheel", "-q", "--wheel-dir", str(dest), *carried]).returncode:
        print("prepare FAILED: pip wheel could not resolve or build the requirements (is PyPI reachable?)")
        return 1
    for w in dest.glob("*.whl"):
        if NOT_CARRIED.match(wheel_dist(w)[0]):
            w.unlink()
    # 2. every platform-specific wheel again for each target python
    problems = []
    for w in sorted(dest.glob("*.whl")):
        if w.name.endswith("-none-any.whl") or "-py3-none-" in w.name or "-abi3-" in w.name:
            continue  # pure python, or one binary for every python 3 (wandb's, abi3)
        name, version = wheel_dist(w)
        for v in versions:
            tag = "cp" + v.replace(".", "")
            if f"-{tag}-" in w.name:
                continue
            cmd = [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--dest", str(dest), "--python-version", v,
                   "--implementation", "cp", "--abi", tag, *(x for p in PLATFORMS for x in ("--platform", p)),
                   f"{name}=={version}"]
            if subprocess.run(cmd).returncode:
                problems.append(f"{name}=={version} has no wheel for python {v} on linux x86_64")
        if local not in versions and f"-cp{local.replace('.', '')}-" in w.name:
            w.unlink()  # the local python's binary wheel was only a means to resolve
    wheels = sorted(dest.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    manifest = {"pythons": versions, "platform": "linux x86_64", "requirements": carried,
                "wheels": {w.name: round(w.stat().st_size / 2**20, 2) for w in wheels}, "total_mib": round(size, 1),
                "prepared": dt.datetime.now().isoformat(timespec="seconds"), "problems": problems}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    big = [f"{n} ({m:.1f} MiB)" for n, m in manifest["wheels"].items() if m > 5]
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {dest}; the largest: {', '.join(big) or 'none over 5 MiB'}")
    for p in problems:
        print(f"MISSING: {p}")
    tree = _tree_mib()
    if tree is not None:
        print(f"with the working tree ({tree:.1f} MiB tracked) the device tool carries {size + tree:.1f} of its {CARRY_LIMIT_MB} MiB")
    if size > 0.75 * CARRY_LIMIT_MB:
        print(f"TOO BIG: {size:.1f} MiB leaves little of the {CARRY_LIMIT_MB} MiB that the device tool carries; "
              f"prepare for fewer python versions (--python {DEVICE_PYTHON})")
        return 1
    print(f"carry it with the run: carry=['{dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}']")
    return 1 if problems else 0


def _tree_mib() -> float | None:
    """Size of the files git tracks (what travels with the tree, besides the carried folders)."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file()) / 2**20


# --- running the steps ----------------------------------------------------------------------------------
class Check:
    def __init__(self, out: Path, work: Path, dry: bool, budget: float):
        self.out, self.work, self.dry, self.budget = out, work, dry, budget
        self.start = time.monotonic()
        self.started = dt.datetime.now().isoformat(timespec="seconds")
        self.steps: list[dict] = []
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "device_check.log", "w")  # noqa: SIM115 - open for the whole run
        self.py = sys.executable
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                    "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_WAIT_POLICY": "PASSIVE",
                    "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        if dry:
            self.env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")  # the CPU, even on a machine with a GPU

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def step(self, name: str, title: str, cmd: list[str] | None, limit: float, parse=None, env: dict | None = None,
             during=None, parse_failed: bool = False) -> dict:
        """Run ``cmd`` (or only ``parse`` when ``cmd`` is None) under its limit; record and summarise.

        ``parse(rec, logfile, sampler)`` returns the step's figures (and may set ``rec["error"]``); it runs after a
        command that exited 0, or after any exit with ``parse_failed``."""
        rec = {"name": name, "title": title, "status": "failed", "seconds": 0.0, "limit_s": limit,
               "command": " ".join(cmd) if cmd else None, "returncode": None, "figures": {}, "error": None,
               "log": f"logs/{name}.log"}
        self.steps.append(rec)
        room = self.left() - 5  # seconds for the summary after the last step
        limit = rec["limit_s"] = round(min(limit, room), 1)
        if room < 5:
            rec["error"] = f"not run: the check's budget of {self.budget:.0f} s was spent by the steps before it"
            self.say(f"[{name}] NOT RUN: out of time")
            self.write_summary()
            return rec
        self.say(f"[{name}] {title} (limit {limit:.0f} s)" + (f"\n  $ {rec['command']}" if cmd else ""))
        logfile = self.logs / f"{name}.log"
        t0 = time.monotonic()
        sampler = during() if during else None
        try:
            if cmd:
                with open(logfile, "w") as f:
                    proc = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env, stdout=f, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # its own process group: a timeout ends its workers too
                    try:
                        rec["returncode"] = proc.wait(timeout=limit)
                    except subprocess.TimeoutExpired:
                        _kill_group(proc)
                        rec["error"] = f"timed out after {limit:.0f} s (its process group was killed)\n" + _tail(logfile)
            rec["seconds"] = round(time.monotonic() - t0, 1)
            if sampler:
                sampler.stop()
            if rec["error"] is None:
                if cmd and rec["returncode"] != 0:
                    rec["error"] = f"exit code {rec['returncode']}\n" + _tail(logfile)
                if parse and (rec["error"] is None or parse_failed):
                    rec["figures"] = parse(rec, logfile, sampler) or {}
                if rec["error"] is None:
                    rec["status"] = "passed"
        except Exception:  # noqa: BLE001 - a step's failure is recorded, the check goes on
            rec["error"] = (rec["error"] + "\n" if rec["error"] else "") + traceback.format_exc()
            if sampler:
                sampler.stop()
        rec["seconds"] = round(time.monotonic() - t0, 1)
        if logfile.exists():
            self.log.write(logfile.read_text(errors="replace"))
        self.say(f"[{name}] {rec['status'].upper()} in {rec['seconds']:.1f} s"
                 + (f": {json.dumps(rec['figures'], default=str)[:400]}" if rec["figures"] else "")
                 + (f"\n{_indent(rec['error'])}" if rec["error"] else ""))
        self.write_summary()
        return rec

    # --- the summary ------------------------------------------------------------------------------------
    def write_summary(self, final: bool = False) -> dict:
        env = next((s["figures"] for s in self.steps if s["name"] == "environment"), {})
        failed = [s["name"] for s in self.steps if s["status"] != "passed"]
        data = {"mode": "dry-run (CPU, tiny sizes)" if self.dry else "device", "started": self.started,
                "wall_s": round(time.monotonic() - self.start, 1), "budget_s": self.budget, "finished": final,
                "ok": final and not failed, "failed": failed, "gpu": env.get("gpu"), "figures": headline(self.steps),
                "steps": self.steps}
        (self.out / "summary.json").write_text(json.dumps(data, indent=1, default=str))
        (self.out / "summary.md").write_text(markdown(data))
        return data

    def finish(self) -> dict:
        data = self.write_summary(final=True)
        self.log.close()
        with tarfile.open(self.out / "details.tar.gz", "w:gz") as tar:
            for p in sorted(self.work.rglob("*")):
                rel = p.relative_to(self.work)
                keep = rel.parts[0] in ("logs", "json") or p.name in (
                    "report.md", "report.json", "results.csv", "curves.csv", "study.json", "config.yaml") or (
                    rel.parts[0] == "study" and p.suffix in (".png", ".svg"))
                if p.is_file() and keep and p.stat().st_size < 4 * 2**20:
                    tar.add(p, arcname=str(rel))
        return data


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _failed_trials(logfile: Path, most: int = 5) -> str:
    """The first failed trials' lines of a study's output (each names its exception)."""
    lines = [x.strip() for x in logfile.read_text(errors="replace").splitlines() if re.search(r"\btrial +\d+ FAIL\b", x)]
    return "\n".join(lines[:most]) + (f"\n... {len(lines) - most} more" if len(lines) > most else "")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


class GpuSampler:
    """GPU utilisation (%) and memory (MiB) every half second through nvidia-smi, while a step runs."""

    def __init__(self, index: str = "0"):
        self.samples: list[tuple[float, float, float]] = []
        self.why = None
        self._stop = threading.Event()
        self.cmd = ["nvidia-smi", "-i", index, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        if shutil.which("nvidia-smi") is None:
            self.why = "nvidia-smi not found (no GPU driver here)"
            return
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = subprocess.run(self.cmd, capture_output=True, text=True, timeout=5)
                util, mem = (float(x) for x in r.stdout.strip().splitlines()[0].split(","))
                self.samples.append((time.time(), util, mem))
            except Exception as e:  # noqa: BLE001 - a missed sample is not a failure of the step
                self.why = f"nvidia-smi: {e}"
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()

    def between(self, t0: float, t1: float) -> dict:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if not inside:
            return {"gpu_util_mean": None, "gpu_util_samples": 0, "gpu_util_note": self.why or "no sample in the window"}
        return {"gpu_util_mean": round(sum(s[1] for s in inside) / len(inside), 1), "gpu_util_max": max(s[1] for s in inside),
                "gpu_mem_max_mib": max(s[2] for s in inside), "gpu_util_samples": len(inside)}


# --- the steps -------------------------------------------------------------------------------------------
ENV_PROBE = r"""
import json, os, platform, sys, importlib.metadata as md
out = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
       "cpu_cores": len(os.sched_getaffinity(0))}
import torch
out.update(torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
           cuda_available=torch.cuda.is_available(), gpu_count=torch.cuda.device_count())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), gpu_capability=f"{p.major}.{p.minor}",
               gpu_multiprocessors=p.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported(),
               gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
versions = {}
for name in NAMES:
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
out["versions"] = versions
out["lightning"] = versions.get("lightning")
import nasplay
out["nasplay"] = nasplay.__file__
print("ENV_JSON " + json.dumps(out))
"""


def run_check(out: Path, work: Path, dry: bool, budget: float, wheels: Path = WHEELS) -> int:
    c = Check(out, work, dry, budget)
    c.wheels = wheels
    c.say(f"device check, {'DRY RUN on the CPU at tiny sizes' if dry else 'on the GPU'}: output {out}, work {work}, "
          f"budget {budget:.0f} s, python {sys.executable}")
    step_install(c)
    env = step_environment(c)
    step_pytest(c, env)
    step_lightning_vs_raw(c)
    step_workers(c, env)
    step_study(c)
    data = c.finish()
    c_md = (out / "summary.md").read_text()
    print("\n" + c_md)
    print(f"device check {'PASSED' if data['ok'] else 'FAILED: ' + ', '.join(data['failed'])} in {data['wall_s']:.0f} s; "
          f"summary: {out / 'summary.json'}")
    return 0 if data["ok"] else 1


def step_install(c: Check) -> None:
    wheels = c.wheels
    missing = missing_requirements()
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    cmd, why = None, None
    if missing:
        c.say(f"missing: {', '.join(missing)}")
        if not wheels.is_dir() or not any(wheels.glob("*.whl")):
            why = (f"missing: {', '.join(dist_name(r) for r in missing)}; and there is no {wheels} to install them from. "
                   f"Run `bash scripts/device_check.sh --prepare` on a machine with PyPI and carry .wheels with the tree")
        else:
            # only the missing ones: naming torch & co. again would have pip re-resolve what the image already holds
            cmd = [c.py, "-m", "pip", "install", "--disable-pip-version-check", "--no-index", "--find-links", str(wheels),
                   "--no-warn-script-location", *missing]
    manifest = json.loads((wheels / "manifest.json").read_text()) if (wheels / "manifest.json").exists() else {}
    if cmd and manifest.get("pythons") and here not in manifest["pythons"]:
        c.say(f"WARNING: {wheels} was prepared for python {manifest['pythons']}, this is {here}: its binary wheels may not "
              f"install (prepare with --python {here})")

    def parse(rec, logfile, _):
        if why:
            rec["error"] = why
        text = logfile.read_text(errors="replace") if cmd and logfile.exists() else ""
        done = re.findall(r"Successfully installed (.*)", text)
        nothing = re.findall(r"No matching distribution found for (\S+)", text)
        if nothing:
            rec["error"] = f"no wheel in {wheels} for: {', '.join(nothing)} (prepare again, for python {here})\n{rec['error'] or ''}"
        still = missing_requirements()
        if still and not why:
            rec["error"] = (rec["error"] or "") + f"\nstill missing after the install: {', '.join(still)}"
        absent = [n for n in ON_DEVICE if _version(n) is None]
        if absent:
            rec["error"] = (rec["error"] or "") + f"\nnot installed, and never carried (the device image should have them): {absent}"
        return {"missing_before": [dist_name(r) for r in missing], "installed": done[-1].split() if done else [],
                "wheels": {k: manifest.get(k) for k in ("pythons", "total_mib", "prepared")} if manifest else None,
                "pip": _version("pip")}

    title = (f"install {len(missing)} missing dependencies from {wheels.name}/ (no network)" if missing
             else "nasplay's dependencies: all present, nothing to install")
    # only the carried folder counts: no index, and no pip configuration's find-links or index either
    env = {k: v for k, v in c.env.items() if k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")}
    c.step("install", title, cmd, STEP_LIMITS["install"], parse=parse, env={**env, "PIP_CONFIG_FILE": os.devnull})
    importlib.invalidate_caches()


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def step_environment(c: Check) -> dict:
    names = sorted({dist_name(r) for r in requirements()} | {"timm", "torchvision", "psycopg-binary"})

    def parse(rec, logfile, _):
        line = [x for x in logfile.read_text().splitlines() if x.startswith("ENV_JSON ")]
        env = json.loads(line[-1][len("ENV_JSON "):])
        if not c.dry and not env.get("cuda_available"):
            rec["error"] = "no GPU: torch.cuda.is_available() is False (the GPU steps will fail; --dry-run is the CPU check)"
        missing = [n for n, v in env["versions"].items() if v is None and n != "timm"]
        if missing:
            rec["error"] = (rec["error"] or "") + f"\nmissing packages: {', '.join(missing)}"
        if not str(env.get("nasplay", "")).startswith(str(ROOT)):
            rec["error"] = (rec["error"] or "") + f"\nnasplay is imported from {env.get('nasplay')}, not this tree {ROOT}"
        if shutil.which("nvidia-smi"):
            r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20)
            env["nvidia_smi"] = r.stdout.strip() or r.stderr.strip()
        return env

    probe = c.work / "env_probe.py"
    probe.write_text(ENV_PROBE.replace("NAMES", repr(names)))
    rec = c.step("environment", "python, torch, CUDA, GPU, Lightning and every dependency's version",
                 [c.py, str(probe)], STEP_LIMITS["environment"], parse=parse)
    return rec["figures"]


def step_pytest(c: Check, env: dict) -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                   if re.search(r"pytest\.mark\.(gpu|cuda)\b", p.read_text()))
    xml = c.work / "logs" / "pytest_gpu.xml"

    def parse(rec, logfile, _):
        if not xml.exists():
            rec["error"] = rec["error"] or "pytest wrote no JUnit XML"
            return {}
        suite = ET.parse(xml).getroot()
        suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
        results, failures = {}, []
        for case in suite.iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            skip = case.find("skipped")
            results[name] = "failed" if bad is not None else "skipped" if skip is not None else "passed"
            if bad is not None:
                failures.append(f"{name}: {bad.get('message', '')}\n{(bad.text or '')[-3000:]}")
            elif skip is not None and not c.dry:  # on a GPU machine a GPU test that skips did not run: a failure
                failures.append(f"{name} SKIPPED on the GPU machine: {skip.get('message', '')}")
        counts = {k: sum(v == k for v in results.values()) for k in ("passed", "failed", "skipped")}
        if rec["returncode"] == 5 or not results:
            rec["error"] = "no test selected by -m 'gpu or cuda' (are the GPU tests marked?)"
        elif failures:
            rec["error"] = "\n\n".join(failures)
        return {**counts, "tests": results, "files": files}

    c.step("pytest_gpu", "the tests that skip without a GPU (pytest -m 'gpu or cuda')",
           [c.py, "-m", "pytest", "-m", "gpu or cuda", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={xml}", *files],
           STEP_LIMITS["pytest_gpu"], parse=parse, parse_failed=True)


def step_lightning_vs_raw(c: Check) -> None:
    (c.work / "json").mkdir(exist_ok=True)
    if c.dry:
        common = ["--data", "clutter", "--size", "16", "--train", "96", "--batch-size", "32", "--epochs", "2", "--repeats", "2",
                  "--device", "cpu", "--threads", "1"]
        nets = {"lvr_main": ("resnet18", "width=0.25"), "lvr_resnet50": ("resnet50", "width=0.25")}
    else:
        common = ["--data", "clutter", "--size", "64", "--batch-size", "64", "--epochs", "3", "--repeats", "4",
                  "--device", "cuda", "--precision", "bf16-mixed", "--channels-last"]
        nets = {"lvr_main": ("resnet18", "width=0.25"), "lvr_resnet50": ("resnet50", "width=1.0")}
    train = {"lvr_main": "4000", "lvr_resnet50": "3000"}
    for name, (arch, knobs) in nets.items():
        out = c.work / "json" / f"{name}.json"

        def parse(rec, logfile, _, out=out):
            d = json.loads(out.read_text())
            return {k: d[k] for k in ("arch", "knobs", "size", "device", "precision", "channels_last", "num_train",
                                      "lightning_img_s", "raw_img_s", "ratio", "ratios", "gpu")}

        cmd = [c.py, "benchmarks/lightning_vs_raw.py", "--arch", arch, "--knobs", knobs, *common,
               *([] if c.dry else ["--train", train[name]]), "--json", str(out)]
        c.step(name, f"Lightning / raw loop: {arch} {knobs} on {'16' if c.dry else '64'}-px clutter", cmd,
               STEP_LIMITS[name], parse=parse)


def step_workers(c: Check, env: dict) -> None:
    counts = (1, 2) if c.dry else WORKERS
    data = (["data.size=16", "data.clutter_train=96", "data.clutter_val=32", "trainer=cpu", "trainer.max_epochs=1"] if c.dry
            else ["data.size=64", "data.clutter_train=4000", "data.clutter_val=500", "trainer=gpu", "trainer.max_epochs=4"])
    env_vars = dict(c.env)
    if not c.dry:  # every worker on the first GPU: sweep.workers=N wraps round the visible GPUs
        env_vars["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
    for n in counts:
        trials = max(2, 2 * n)
        runs = c.work / "workers" / str(n)
        cmd = [c.py, "-m", "nasplay", "arch=resnet18", "arch.knobs.width=0.25", "data=clutter", *data, "data.clutter_test=0",
               "data.clutter_cache=true", f"data.root={c.work / 'data'}", "trainer.test=false", "sweep=grid",
               "experiment.name=workers", "experiment.knob=skip", "experiment.values=[identity]",
               f"experiment.seeds=[{','.join(map(str, range(trials)))}]", "sweep.pruner.kind=none", f"sweep.workers={n}",
               "logger=none", "progress=false", f"runs_dir={runs}"]

        def parse(rec, logfile, sampler, runs=runs, n=n, trials=trials):
            import optuna

            from nasplay.sweep.storage import make_storage

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(study_name="workers", storage=make_storage(None, runs / "workers" / "workers"))
            done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
            if len(done) != trials:
                rec["error"] = f"{len(done)} of {trials} trials completed\n" + _failed_trials(logfile)
            if not done:
                return {}
            t0 = min(t.datetime_start for t in done).timestamp()
            t1 = max(t.datetime_complete for t in done).timestamp()
            batch = 64  # conf/data/clutter.yaml
            images = sum(t.user_attrs["metrics"]["steps"] * batch for t in done)
            fig = {"workers": n, "trials": len(done), "steady_s": round(t1 - t0, 2), "images_per_s": round(images / (t1 - t0), 1),
                   "trials_per_s": round(len(done) / (t1 - t0), 3), "command_s": rec["seconds"],
                   "trial_imgs_per_s_median": sorted(t.user_attrs["metrics"]["imgs_per_sec"] for t in done)[len(done) // 2]}
            fig.update(sampler.between(t0, t1) if sampler else {"gpu_util_mean": None, "gpu_util_note": "CPU dry run"})
            return fig

        index = env_vars.get("CUDA_VISIBLE_DEVICES", "0")
        c.step(f"workers_{n}", f"{n} worker(s) on one {'CPU' if c.dry else 'GPU'}: the main job's network, {trials} trials",
               cmd, STEP_LIMITS["workers"], parse=parse, env=env_vars, during=None if c.dry else (lambda i=index: GpuSampler(i)))
    base = next((s["figures"].get("images_per_s") for s in c.steps if s["name"] == "workers_1" and s["figures"]), None)
    for s in c.steps:
        if s["name"].startswith("workers_") and base and s["figures"].get("images_per_s"):
            s["figures"]["speedup_vs_1"] = round(s["figures"]["images_per_s"] / base, 2)
    c.write_summary()


def step_study(c: Check) -> None:
    runs = c.work / "study"
    size = (["data.size=16", "trainer=cpu", "debug=smoke", "arch.knobs.width=0.25", "data.clutter_train=128",
             "data.clutter_val=32", "data.clutter_test=64", "sweep.workers=1"] if c.dry  # the workers steps spawn workers
            else ["data.size=64", "trainer=gpu", "arch.knobs.width=1.0"])
    # three seeds, not the experiment's five: a check of the GPU path and its speed within the device's budget, no verdict
    cmd = [c.py, "-m", "nasplay", "experiment=ablate_skip", "data=clutter", *size, "experiment.seeds=[0,1,2]", "logger=csv",
           "progress=false", "study=device-check", f"runs_dir={runs}"]

    def parse(rec, logfile, _):
        reports = sorted(runs.rglob("report.json"))
        if not reports:
            rec["error"] = (rec["error"] or "") + "the study wrote no report.json"
            return {}
        r = json.loads(reports[0].read_text())
        shutil.copy(reports[0].with_name("report.md"), c.out / "study_report.md")
        arms = {a["arm"]: {k: a.get(k) for k in ("n", "mean", "ci_low", "ci_high")} for a in r.get("arms", [])}
        comps = {x["arm"]: {"diff": None if x.get("mean") is None or x.get("mean_baseline") is None
                            else x["mean"] - x["mean_baseline"], "p": (x.get("welch") or {}).get("p"),
                            "verdict": x.get("verdict") or x.get("outcome")} for x in r.get("comparisons", [])}
        if r.get("trials", {}).get("COMPLETE") != r.get("trials", {}).get("total"):
            rec["error"] = f"not every trial completed: {r.get('trials')}\n" + _failed_trials(logfile)
        return {"wall_s": rec["seconds"], "wall_minutes": r.get("wall_minutes"), "trials": r.get("trials"),
                "metric": r.get("metric"), "arms": arms, "comparisons": comps, "command": " ".join(cmd[2:]),
                "secondary": {m: {x["arm"]: {"mean": x["mean"], "mean_baseline": x["mean_baseline"]} for x in v}
                              for m, v in (r.get("secondary") or {}).items()}}

    c.step("study", "a real study: ablate_skip on 64-px clutter at full width, 3 seeds" if not c.dry
           else "a real study: ablate_skip debug=smoke on 16-px clutter", cmd, STEP_LIMITS["study"], parse=parse)


# --- the summary's figures ----------------------------------------------------------------------------------
def headline(steps: list[dict]) -> dict:
    f = {s["name"]: s["figures"] for s in steps}
    env = f.get("environment", {})
    out = {"gpu": env.get("gpu"), "gpu_memory_gib": env.get("gpu_memory_gib"), "torch": env.get("torch"),
           "cuda": env.get("cuda"), "lightning": env.get("lightning"), "python": env.get("python"),
           "installed": f.get("install", {}).get("installed")}
    if "pytest_gpu" in f:
        out["pytest_gpu"] = {k: f["pytest_gpu"].get(k) for k in ("passed", "failed", "skipped")}
    for k in ("lvr_main", "lvr_resnet50"):
        if f.get(k):
            out[f"{k}_ratio"] = round(f[k]["ratio"], 3)
            out[f"{k}_img_s"] = {"lightning": round(f[k]["lightning_img_s"], 1), "raw": round(f[k]["raw_img_s"], 1)}
    w = {s["name"].split("_")[1]: s["figures"] for s in steps if s["name"].startswith("workers_") and s["figures"]}
    if w:
        out["workers"] = {n: {k: v.get(k) for k in ("images_per_s", "trials_per_s", "speedup_vs_1", "gpu_util_mean",
                                                     "gpu_mem_max_mib")} for n, v in w.items()}
    if f.get("study"):
        out["study_wall_s"] = f["study"].get("wall_s")
        out["study_arms"] = f["study"].get("arms")
    return out


def markdown(d: dict) -> str:
    f = d["figures"]
    lines = [f"# nasplay device check: {d['mode']}", "",
             f"Started {d['started']}, {d['wall_s']:.0f} s of a {d['budget_s']:.0f} s budget; "
             + ("**all steps passed**." if d["ok"] else f"**failed: {', '.join(d['failed']) or 'unfinished'}**."), "",
             f"GPU: {f.get('gpu') or 'none'} ({f.get('gpu_memory_gib') or '-'} GiB); python {f.get('python')}, torch {f.get('torch')}, "
             f"CUDA {f.get('cuda')}, Lightning {f.get('lightning')}; "
             f"installed from wheels: {', '.join(f.get('installed') or []) or 'nothing'}.",
             "", "| step | status | seconds (limit) | figures |", "|---|---|---:|---|"]
    for s in d["steps"]:
        figs = {k: v for k, v in s["figures"].items() if k not in ("tests", "versions", "ratios", "arms", "comparisons",
                                                                      "secondary", "command", "gpus")}
        text = ", ".join(f"{k} {_fmt(v)}" for k, v in figs.items())
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds']:.1f} ({s['limit_s']:.0f}) | {text[:600]} |")
    if f.get("workers"):
        lines += ["", "Trials sharing one device (the main job's network on clutter):", "",
                  "| workers | images/s | trials/s | speed-up vs 1 | GPU util % (mean) | GPU memory MiB (max) |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for n, v in f["workers"].items():
            lines.append(f"| {n} | {_fmt(v['images_per_s'])} | {_fmt(v['trials_per_s'])} | {_fmt(v.get('speedup_vs_1'))} | "
                         f"{_fmt(v.get('gpu_util_mean'))} | {_fmt(v.get('gpu_mem_max_mib'))} |")
    if f.get("study_arms"):
        lines += ["", f"Study ({f.get('study_wall_s')} s): " + "; ".join(
            f"{a}: {_fmt(v['mean'])} [{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}] n={v['n']}" for a, v in f["study_arms"].items())]
    bad = [s for s in d["steps"] if s["error"]]
    if bad:
        lines += ["", "## Failures", ""]
        for s in bad:
            lines += [f"### {s['name']}", "", "```", s["error"].strip()[-6000:], "```", ""]
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "-"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepare", action="store_true", help="fetch the wheels the device needs (here, with PyPI)")
    p.add_argument("--python", default="", help=f"with --prepare: python versions to fetch for, comma-separated (default "
                                                f"{DEVICE_PYTHON}, the device's)")
    p.add_argument("--wheels", default=str(WHEELS), help="the wheels' folder (default .wheels/)")
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes")
    p.add_argument("--out", default="", help="output folder (default $OUT, else runs/device_check/<time>)")
    p.add_argument("--work", default="", help="work folder for studies and data (default: a fresh temporary folder)")
    p.add_argument("--budget", type=float, default=0, help="seconds for the whole check (default 470; dry run 170)")
    a = p.parse_args(argv)
    if a.prepare:
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        versions = [v.strip() for v in a.python.split(",") if v.strip()] or [DEVICE_PYTHON]
        if here not in versions:
            print(f"note: this python is {here}; the wheels are for {', '.join(versions)} (add --python {here},... to try them here)")
        return prepare(Path(a.wheels).resolve(), versions)
    out = Path(a.out or os.environ.get("OUT") or ROOT / "runs" / "device_check" / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="nasplay-device-check-"))
    return run_check(out.resolve(), work.resolve(), a.dry_run, a.budget or (170 if a.dry_run else 470), Path(a.wheels).resolve())


if __name__ == "__main__":
    sys.exit(main())
