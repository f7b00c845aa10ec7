"""``sweep.workers=N``: N asynchronous worker processes on one study.

Each worker is a spawned process running the study loop (:func:`nasplay.sweep.loop.run_loop`) on the
shared storage: it claims its next trial under the study lock as soon as it has told the last
one (no batches), so a slow trial holds up nobody. With GPUs each worker is pinned to its own
device(s) through ``CUDA_VISIBLE_DEVICES`` (``trainer.devices=K`` gives each worker K of them); without
GPUs each worker's trials use ``trainer.threads`` CPU threads (by default 1, and ``sweep.workers=auto`` starts one
worker per core). The workers' output comes
back through a queue and is printed here, one line at a time; this process writes the final
``results.csv`` and the summary.

Other hosts join the same study by running the same command with the same RDB ``sweep.storage``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue as queue_mod
import signal
import threading
import time
from typing import Any

from nasplay.sweep.loop import LoopResult
from nasplay.track.secrets import mask_text


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [d.strip() for d in env.split(",") if d.strip()] if env else []
    count = torch.cuda.device_count()
    return names[:count] if names else [str(i) for i in range(count)]


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(c: Any) -> tuple[int, list[str | None]]:
    """How many workers and each one's ``CUDA_VISIBLE_DEVICES`` (``None``: not pinned)."""
    t = c.trainer
    on_gpu = t.accelerator in ("gpu", "cuda", "auto")
    gpus = visible_gpus() if on_gpu else []
    per_trial = t.devices if isinstance(t.devices, int) and t.devices > 0 else (len(gpus) or 1)
    per_trial = max(1, min(per_trial, len(gpus))) if gpus else 1
    n = c.sweep.workers
    if n == "auto":  # one worker per GPU; without GPUs, one per trial's worth of CPU threads
        n = max(1, len(gpus) // per_trial) if gpus else max(1, cpu_cores() // (t.threads or cpu_cores()))
    if not gpus or n == 1:
        return n, [None] * n
    # worker i takes the next per_trial GPUs (wrapping round when there are more workers than GPUs)
    return n, [",".join(gpus[(i * per_trial + j) % len(gpus)] for j in range(per_trial)) for i in range(n)]


def run_workers(cfg: Any, plan: Any, n: int, devices: list[str | None], console: Any,
                callbacks: tuple = ()) -> tuple[LoopResult, list[str]]:
    """Start ``n`` workers on the study, relay their output, wait for them.

    Returns what they did together (trials run, why they stopped, whether the study is complete, failures) and
    one line per worker that died (an error's traceback is in the study's log, ``nasplay.log``)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and CUDA state
    threads = plan.cfg.trainer.threads or max(1, cpu_cores() // n)
    q = ctx.Queue()
    data = _plain(cfg)
    data.setdefault("sweep", {})["workers"] = 1
    # The names plugins (or the caller's own modules) registered here: each worker loads the same or stops saying which.
    from nasplay.space.registry import extensions

    ext = extensions()
    procs = [ctx.Process(target=worker_main, args=(data, i, threads, devices[i], q, callbacks, ext, os.getpid()),
                         name=f"nasplay-worker-{i}") for i in range(n)]
    pinned = ", ".join(f"w{i}: GPU {d}" for i, d in enumerate(devices) if d is not None)
    console.print(f"{n} workers ({pinned or f'{threads} CPU thread(s) each'})", markup=False, highlight=False)
    done: dict[int, LoopResult] = {}
    errors: dict[int, str] = {}
    # Ctrl-C at a terminal reaches the workers too (one process group); a kill -INT of this process alone does
    # not, so it is passed on. Either way this process then waits for every worker to record its trial.
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if not interrupted.is_set():
            interrupted.set()
            for p in procs:
                if p.is_alive():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGINT)

    old = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        for p in procs:
            p.start()
        if interrupted.is_set():  # a Ctrl-C while they were starting: the ones started before it did not get it
            interrupted.clear()
            on_sigint(signal.SIGINT, None)
        _relay(procs, q, console, done, errors)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    interrupted = interrupted.is_set()
    died = []
    for i, p in enumerate(procs):
        p.join(timeout=5)
        if p.exitcode not in (0, None) and not interrupted:
            why = f"signal {-p.exitcode}" if p.exitcode < 0 else f"exit code {p.exitcode}"
            if i in errors:
                died.append(f"worker {i} died ({why}): {errors[i]}")
            else:
                died.append(f"worker {i} died ({why}); a trial it left RUNNING is retried once its heartbeat is "
                            f"older than sweep.heartbeat_grace")
    if interrupted:
        raise KeyboardInterrupt
    results = list(done.values())
    stopped = "; ".join(dict.fromkeys(r.stopped for r in results if r.stopped))
    reasons = [r.fail_reason for r in results if r.fail_reason]
    total = LoopResult(sum(r.ran for r in results), stopped, any(r.complete for r in results),
                       sum(r.failed for r in results), reasons[-1] if reasons else "")
    return total, died


def _relay(procs: list[Any], q: Any, console: Any, done: dict, errors: dict, timeout: float | None = None) -> None:
    end = None if timeout is None else time.monotonic() + timeout

    def take(kind: str, worker: int, payload: Any) -> None:
        if kind == "line":
            console.print(payload, markup=False, highlight=False, soft_wrap=True)
        elif kind == "done":
            done[worker] = LoopResult(*payload)
        elif kind == "error":  # the one line of why it died; the traceback is in the study's log
            errors[worker] = payload

    while True:
        try:
            item = q.get(timeout=0.2)
        except queue_mod.Empty:
            if not any(p.is_alive() for p in procs) or (end is not None and time.monotonic() > end):
                break
            continue
        take(*item)
    while True:  # what the last worker printed before it exited
        try:
            item = q.get_nowait()
        except (queue_mod.Empty, OSError, ValueError):
            break
        take(*item)


class _QueueFile:
    """A text stream for a worker's ``Console`` that sends every complete line to the parent."""

    def __init__(self, q: Any, worker: int):
        self.q, self.worker, self.buf = q, worker, ""

    def write(self, s: str) -> int:
        self.buf += s
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self.q.put(("line", self.worker, mask_text(line)))
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def worker_main(cfg: dict, worker: int, threads: int, device: str | None, q: Any, callbacks: tuple = (),
                extensions: dict | None = None, coordinator: int | None = None) -> None:
    """A worker process: pin it, load the vocabulary its coordinator has (``extensions``: the plugins' names and the
    modules that registered them), then run the study loop until the study needs nothing more.

    An error ends it with one line to the coordinator (:func:`nasplay.sweep.faults.one_line`) and the traceback
    in the study's log. ``coordinator`` is the pid of the process that started it: when that process is gone (killed
    with SIGKILL), the worker is an orphan: it finishes and records the trial it is training, claims no new one, and
    exits (the same command, run again, finishes the study).
    """
    import sys

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    import optuna
    import torch
    from rich.console import Console

    from nasplay.sweep.faults import log_traceback, one_line, study_dir_of
    from nasplay.sweep.loop import open_study, run_loop

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from nasplay.sweep.plan import make_plan

    torch.set_num_threads(threads)
    console = Console(file=_QueueFile(q, worker), width=200, highlight=False, soft_wrap=True, force_terminal=False)
    study_dir = study_dir_of(cfg)
    _log_to_study(study_dir, q, worker)
    try:
        from nasplay.space.registry import import_extensions

        import_extensions(extensions or {})
        plan = make_plan(cfg, check_files=False)  # the command checked the data before it started the workers
        orphaned = _Orphan(coordinator, q) if coordinator is not None else None
        r = run_loop(plan, open_study(plan, worker), console, callbacks, worker=worker, orphaned=orphaned)
        q.put(("done", worker, dataclasses.astuple(r)))
    except KeyboardInterrupt:
        q.put(("line", worker, f"[w{worker}] interrupted"))
        sys.exit(130)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - whatever ends a worker is reported, in one line, not a traceback
        import traceback

        log = log_traceback(study_dir, f"worker {worker} ({os.getpid()}) died: {one_line(e)}", traceback.format_exc())
        q.put(("error", worker, one_line(e) + (f" (traceback in {log})" if log else "")))
        sys.exit(1)  # the command then exits 1 with this line (a finding of the checks, an empty space, included)


class _Orphan:
    """Whether the coordinator that started this worker is gone (this process was handed to another parent)."""

    def __init__(self, coordinator: int, q: Any):
        self.coordinator, self.q = coordinator, q

    def __call__(self) -> str:
        if os.getppid() == self.coordinator:
            return ""
        # Nobody reads the queue any more: exit without waiting for its buffered lines to be read.
        self.q.cancel_join_thread()
        why = (f"the coordinator (pid {self.coordinator}) is gone: this worker claims no new trial and exits; "
               "run the same command again to finish the study")
        logging.getLogger("nasplay").warning(why)
        return why


def _log_to_study(study_dir: Any, q: Any, worker: int) -> None:
    """nasplay's log records of this worker: to the study's log, and its warnings as lines for the console too."""
    class ToConsole(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            q.put(("line", worker, f"[w{worker}] " + mask_text(record.getMessage())))

    log = logging.getLogger("nasplay")
    log.setLevel(logging.INFO)
    log.propagate = False
    console = ToConsole(logging.WARNING)
    log.addHandler(console)
    if study_dir is not None:
        with contextlib.suppress(OSError):
            study_dir.mkdir(parents=True, exist_ok=True)
            f = logging.FileHandler(study_dir / "nasplay.log", delay=True)
            f.setFormatter(logging.Formatter(f"[%(asctime)s][%(name)s][%(levelname)s] - [w{worker}] %(message)s"))
            log.addHandler(f)


def _plain(cfg: Any) -> dict:
    """The composed config as plain data a spawned process can rebuild it from (secrets included: never printed)."""
    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        data = OmegaConf.to_container(cfg, resolve=True)
    elif dataclasses.is_dataclass(cfg):
        data = dataclasses.asdict(cfg)
    else:
        data = dict(cfg)
    data.pop("hydra", None)
    return data
