"""CPU training throughput with ``trainer.channels_last`` off and on, same run, interleaved.

Trains the main job's network (ResNet-18 at width 1/4) through nasplay's own trial path (``fit``,
``conf/trainer/cpu.yaml``'s settings: CPU, 32-bit, deterministic; validation and test off) on the
16 x 16 digits and on the 32 x 32 cluttered digits, with channels-last off and on, at 1 and 2 torch
threads. Each run is one untimed warm-up epoch and ``--epochs`` timed ones of ``--steps`` batches; the
two settings alternate in ABBA order within every repeat (whatever favours the first run of a pair
favours each equally), and the ratio on / off is taken per repeat and as the median, of images per
second of elapsed time (wall) and of this process's CPU time (cpu). On a shared, loaded machine the
wall clock swings with the other jobs; the CPU clock counts only this process's work (with 2 threads it
sums both, so it shows the work per image, not the speed-up of the second thread). What is computed is
the same either way (channels-last changes the memory layout, not the arithmetic).

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
            speed: dict[tuple[bool, str], list[float]] = {(cl, c): [] for cl in (False, True) for c in ("wall", "cpu")}
            for r in range(a.repeats):
                for cl in (False, True) if r % 2 == 0 else (True, False):
                    tcfg = TrainerConfig(accelerator="cpu", max_epochs=a.epochs + 1, channels_last=cl, deterministic=True,
                                         limit_val_batches=0, test=False)
                    for c, v in run(genome, dm, tcfg, OptimConfig(), seed=r).items():
                        speed[cl, c].append(v)
                print(f"  {dm.name} {dm.input} threads {threads} repeat {r}: wall off {speed[False, 'wall'][-1]:6.1f} "
                      f"on {speed[True, 'wall'][-1]:6.1f} img/s ({speed[True, 'wall'][-1] / speed[False, 'wall'][-1]:.3f}); "
                      f"cpu off {speed[False, 'cpu'][-1]:6.1f} on {speed[True, 'cpu'][-1]:6.1f} "
                      f"({speed[True, 'cpu'][-1] / speed[False, 'cpu'][-1]:.3f})", flush=True)
            row = [f"{dm.name} {dm.input}", threads]
            for c in ("wall", "cpu"):
                ratios = [on / off for on, off in zip(speed[True, c], speed[False, c])]
                row += [statistics.median(speed[False, c]), statistics.median(speed[True, c]), statistics.median(ratios),
                        min(ratios), max(ratios)]
            rows.append(row)
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    print("| data | threads | wall: off / on img/s | wall ratio on/off (median; per repeat) "
          "| cpu: off / on img/s | cpu ratio on/off (median; per repeat) |")
    print("|---|---:|---:|---:|---:|---:|")
    for d, t, *v in rows:
        print(f"| {d} | {t} | {v[0]:.0f} / {v[1]:.0f} | **{v[2]:.3f}** ({v[3]:.2f} - {v[4]:.2f}) "
              f"| {v[5]:.0f} / {v[6]:.0f} | **{v[7]:.3f}** ({v[8]:.2f} - {v[9]:.2f}) |")


def run(genome, dm, tcfg, optim, seed: int) -> dict[str, float]:
    """Training images per second of wall and of CPU time over the epochs after the first."""
    import lightning.pytorch as pl

    from nasplay.train.fit import fit

    t = {"wall0": 0.0, "cpu0": 0.0, "wall": 0.0, "cpu": 0.0, "images": 0}

    class Timer(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            t["wall0"], t["cpu0"] = time.perf_counter(), time.process_time()

        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch > 0:
                t["wall"] += time.perf_counter() - t["wall0"]
                t["cpu"] += time.process_time() - t["cpu0"]
                t["images"] += dm.num_train

    fit(genome, dm, tcfg, optim, seed=seed, callbacks=[Timer()])
    return {"wall": t["images"] / t["wall"], "cpu": t["images"] / t["cpu"]}


if __name__ == "__main__":
    main()
