"""Trial throughput of ``sweep.workers=2`` over ``sweep.workers=1`` on the same small study, 1 CPU thread per worker.

Each run is the real command (``python -m nasplay ...``) on a fresh study: 8 small LeNet-5 trials on the
embedded digits. Throughput is trials per second between the first trial's start and the last trial's
end, read from the study's storage (the steady state), and also over the whole command (process start,
imports and worker spawning included). Runs alternate 1, 2, 1, 2 ... and the medians are compared.

    python benchmarks/workers.py [--repeats 2] [--trials 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from nasplay.sweep.storage import make_storage

ROOT = Path(__file__).resolve().parents[1]


def run(workers: int, trials: int, root: Path) -> tuple[float, float]:
    """(steady trials/s, whole-command trials/s) of one fresh study."""
    seeds = list(range(trials // 2))
    args = [sys.executable, "-m", "nasplay", "arch=lenet5_common", "data.limit=960", "data.batch_size=32",
            "trainer.max_epochs=3", "trainer.test=false", "sweep=grid", "experiment.knob=activation",
            "experiment.values=[relu, tanh]", f"experiment.seeds={seeds}".replace(" ", ""), "experiment.name=bench",
            "logger=none", "progress=false", f"sweep.workers={workers}", f"runs_dir={root}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}  # 1 thread: the one-worker baseline
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True)
    whole = time.perf_counter() - start
    storage = make_storage(None, root / "bench" / "bench")
    done = [t for t in optuna.load_study(study_name="bench", storage=storage).get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == trials, f"{len(done)} of {trials} trials completed"
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return trials / span, trials / whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--trials", type=int, default=8)
    a = ap.parse_args()
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for w in (1, 2):
                results[w].append(run(w, a.trials, Path(tmp) / f"{w}-{r}"))
                steady, whole = results[w][-1]
                print(f"workers={w} run {r}: {steady:.3f} trials/s steady, {whole:.3f} trials/s whole command", flush=True)
    med = {w: (statistics.median(s for s, _ in v), statistics.median(x for _, x in v)) for w, v in results.items()}
    print(f"cpu cores: {len(os.sched_getaffinity(0))}, trials per run: {a.trials}, repeats: {a.repeats}, "
          f"load average before / after: {load:.1f} / {os.getloadavg()[0]:.1f} (other jobs take cores from the workers)")
    print(f"throughput 2 workers / 1 worker: {med[2][0] / med[1][0]:.2f} steady (target >= 1.8), "
          f"{med[2][1] / med[1][1]:.2f} whole command")


if __name__ == "__main__":
    main()
