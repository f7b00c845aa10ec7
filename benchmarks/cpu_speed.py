"""CPU training throughput with ``trainer.channels_last`` off and on, same run, interleaved.

Trains the main job's network (ResNet-18 at width 1/4) through nasplay's own trial path (``fit``,
``conf/trainer/cpu.yaml``'s settings: CPU, 32-bit, deterministic; validation and test off) on the
16 x 16 digits and on the 32 x 32 cluttered digits, with channels-last off and on, at 1 and 2 torch
threads. Each run is one untimed warm-up epoch and ``--epochs`` timed ones of ``--steps`` batches; the
two settings alternate in ABBA order within every repeat (whatever favours the first run of a pair
favours each equally), and the ratio on / off is taken per repeat and as the median. What is computed
is the same either way (channels-last changes the memory layout, not the arithmetic).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/cpu_speed.py [--repeats 4] [--steps 20] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads distort timings on a shared CPU


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--data", nargs="+", default=["digits:16", "clutter:32"], help="NAME:SIZE pairs")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=4, help="ABBA repeats of each setting (default 4)")
    p.add_argument("--steps", type=int, default=20, help="batches per epoch (default 20)")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per run, after one warm-up epoch (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args()

    import torch

    from nasplay.space.knobs import apply
    from nasplay.space.zoo import get_genome
    from nasplay.train.config import DataConfig, OptimConfig, TrainerConfig
    from nasplay.train.data import make_datamodule

    print(f"{a.arch} width {a.width}, batch {a.batch_size}, {a.steps} steps x {a.epochs} timed epochs per run, "
          f"{a.repeats} ABBA repeats; torch {torch.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for spec in a.data:
        name, size = spec.split(":")
        n = a.steps * a.batch_size
        dm = make_datamodule(DataConfig(name=name, size=int(size), batch_size=a.batch_size, limit=n,
                                        clutter_train=n, clutter_val=0, clutter_test=0))
        genome = apply(get_genome(a.arch), width=a.width, input=dm.input).replace(classes=dm.num_classes)
        for threads in a.threads:
            torch.set_num_threads(threads)
            speed: dict[bool, list[float]] = {False: [], True: []}
            for r in range(a.repeats):
                for cl in (False, True) if r % 2 == 0 else (True, False):
                    tcfg = TrainerConfig(accelerator="cpu", max_epochs=a.epochs + 1, channels_last=cl, deterministic=True,
                                         limit_val_batches=0, test=False)
                    speed[cl].append(run(genome, dm, tcfg, OptimConfig(), seed=r))
                print(f"  {dm.name} {dm.input} threads {threads} repeat {r}: off {speed[False][-1]:7.1f} img/s  "
                      f"on {speed[True][-1]:7.1f} img/s  ratio {speed[True][-1] / speed[False][-1]:.3f}", flush=True)
            ratios = [on / off for on, off in zip(speed[True], speed[False])]
            rows.append((f"{dm.name} {dm.input}", threads, statistics.median(speed[False]), statistics.median(speed[True]),
                         statistics.median(ratios), min(ratios), max(ratios)))
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    print("| data | threads | off img/s | on img/s | ratio on/off (median) | per-repeat ratios |")
    print("|---|---:|---:|---:|---:|---|")
    for d, t, off, on, med, lo, hi in rows:
        print(f"| {d} | {t} | {off:.0f} | {on:.0f} | **{med:.3f}** | {lo:.2f} - {hi:.2f} |")


def run(genome, dm, tcfg, optim, seed: int) -> float:
    """Training images per second (wall clock) over the epochs after the first."""
    import lightning.pytorch as pl

    from nasplay.train.fit import fit

    t = {"t0": 0.0, "seconds": 0.0, "images": 0}

    class Timer(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            t["t0"] = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch > 0:
                t["seconds"] += time.perf_counter() - t["t0"]
                t["images"] += dm.num_train

    fit(genome, dm, tcfg, optim, seed=seed, callbacks=[Timer()])
    return t["images"] / t["seconds"]


if __name__ == "__main__":
    main()
