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
import os
import queue as queue_mod
import signal
import threading
import time
from typing import Any

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
                callbacks: tuple = ()) -> tuple[int, str, bool]:
    """Start ``n`` workers on the study, relay their output, wait for them; (trials run, why stopped, complete)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and CUDA state
    threads = plan.cfg.trainer.threads or max(1, cpu_cores() // n)
    q = ctx.Queue()
    data = _plain(cfg)
    data.setdefault("sweep", {})["workers"] = 1
    # The names plugins (or the caller's own modules) registered here: each worker loads the same or stops saying which.
    from nasplay.space.registry import extensions

    ext = extensions()
    procs = [ctx.Process(target=worker_main, args=(data, i, threads, devices[i], q, callbacks, ext), name=f"nasplay-worker-{i}")
             for i in range(n)]
    pinned = ", ".join(f"w{i}: GPU {d}" for i, d in enumerate(devices) if d is not None)
    console.print(f"{n} workers ({pinned or f'{threads} CPU thread(s) each'})", markup=False, highlight=False)
    done: dict[int, tuple[int, str, bool]] = {}
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
        _relay(procs, q, console, done)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    interrupted = interrupted.is_set()
    died = []
    for i, p in enumerate(procs):
        p.join(timeout=5)
        if p.exitcode not in (0, None) and not interrupted:
            why = f"signal {-p.exitcode}" if p.exitcode < 0 else f"exit code {p.exitcode}"
            died.append(f"worker {i} died ({why})")
            console.print(f"worker {i} died ({why}); a trial it left RUNNING is retried once its heartbeat is "
                          f"older than sweep.heartbeat_grace", markup=False, highlight=False)
    if interrupted:
        raise KeyboardInterrupt
    ran = sum(r for r, _, _ in done.values())
    reasons = list(dict.fromkeys([*(s for _, s, _ in done.values() if s), *died]))
    return ran, "; ".join(reasons), any(c for _, _, c in done.values())


def _relay(procs: list[Any], q: Any, console: Any, done: dict, timeout: float | None = None) -> None:
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            kind, worker, payload = q.get(timeout=0.2)
        except queue_mod.Empty:
            if not any(p.is_alive() for p in procs) or (end is not None and time.monotonic() > end):
                break
            continue
        if kind == "line":
            console.print(payload, markup=False, highlight=False, soft_wrap=True)
        elif kind == "done":
            done[worker] = payload
    while True:  # what the last worker printed before it exited
        try:
            kind, worker, payload = q.get_nowait()
        except (queue_mod.Empty, OSError, ValueError):
            break
        if kind == "line":
            console.print(payload, markup=False, highlight=False, soft_wrap=True)
        elif kind == "done":
            done[worker] = payload


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
                extensions: dict | None = None) -> None:
    """A worker process: pin it, load the vocabulary its coordinator has (``extensions``: the plugins' names and the
    modules that registered them), then run the study loop until the study needs nothing more."""
    import sys

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    import optuna
    import torch
    from rich.console import Console

    from nasplay.sweep.loop import open_study, run_loop

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from nasplay.sweep.plan import make_plan

    torch.set_num_threads(threads)
    console = Console(file=_QueueFile(q, worker), width=200, highlight=False, soft_wrap=True, force_terminal=False)
    try:
        from nasplay.space.registry import import_extensions

        import_extensions(extensions or {})
        plan = make_plan(cfg, check_files=False)  # the command checked the data before it started the workers
        r = run_loop(plan, open_study(plan, worker), console, callbacks, worker=worker)
        q.put(("done", worker, (r.ran, r.stopped, r.complete)))
    except KeyboardInterrupt:
        q.put(("line", worker, f"[w{worker}] interrupted"))
        sys.exit(130)
    except ValueError as e:  # a finding of the checks (an empty space): one line, as the single process says it
        q.put(("line", worker, f"[w{worker}] error: {mask_text(str(e))}"))
        sys.exit(2)
    except Exception:
        import traceback

        q.put(("line", worker, f"[w{worker}] " + mask_text(traceback.format_exc())))
        sys.exit(1)


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
