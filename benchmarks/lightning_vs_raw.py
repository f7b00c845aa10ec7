"""Lightning training throughput / a raw PyTorch loop on the same network, data and optimizer.

Both sides train the same genome (built from the same seed) on the same in-memory batches
(:class:`~nasplay.train.loader.InMemoryLoader`, same order) with the same SGD and per-step cosine
schedule for the same number of steps. The Lightning side is nasplay's own trial path, ``fit``
(validation and test switched off so only training steps are timed); the raw side is the textbook
loop (zero_grad, forward, loss, backward, step, schedule). The first epoch of each run is warm-up
and is not timed; runs alternate (Lightning, raw, raw, Lightning, ...) so drift in the machine's load
hits both; the ratio is of the median images/second. Target: >= 0.95.

    python benchmarks/lightning_vs_raw.py                       # CPU, the main job's network on digits
    python benchmarks/lightning_vs_raw.py --device cuda --precision bf16-mixed --channels-last --size 32
    python benchmarks/lightning_vs_raw.py --arch resnet50 --knobs width=1.0 --data clutter --size 64 --train 4000 \
        --device cuda --precision bf16-mixed --channels-last --json lvr.json     # as scripts/device_check.sh runs it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads distort timings on a shared CPU
CLOCK = time.perf_counter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18", help="zoo name (default: resnet18, as in experiment=ablate_skip)")
    p.add_argument("--knobs", default="width=0.25", help="comma-separated knob=value pairs (default: width=0.25)")
    p.add_argument("--data", default="digits", choices=["digits", "clutter"], help="the embedded digits or the cluttered digits")
    p.add_argument("--size", type=int, default=16, help="image size (default 16; clutter's canvas must be >= 8)")
    p.add_argument("--train", type=int, default=0, help="training images (0: the dataset's own; clutter composes this many)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4, help="epochs per run, the first one untimed (default 4)")
    p.add_argument("--repeats", type=int, default=6, help="runs of each side, interleaved (default 6)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: elapsed time; cpu: this process's CPU time, steadier on a loaded shared machine "
                        "(use with --threads 1; meaningless on a GPU)")
    p.add_argument("--json", default="", help="also write the figures to this JSON file")
    a = p.parse_args()
    global CLOCK
    CLOCK = time.process_time if a.clock == "cpu" else time.perf_counter

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from nasplay.space.knobs import apply
    from nasplay.space.zoo import get_genome
    from nasplay.train.config import DataConfig, OptimConfig, TrainerConfig
    from nasplay.train.data import make_datamodule

    extra = {}
    if a.data == "clutter":  # validation and test are off: compose only what trains
        extra = {"clutter_val": 0, "clutter_test": 0, **({"clutter_train": a.train} if a.train else {})}
    elif a.train:
        extra = {"limit": a.train}
    dm = make_datamodule(DataConfig(name=a.data, size=a.size, batch_size=a.batch_size, **extra))
    knobs = dict(kv.split("=", 1) for kv in a.knobs.split(",") if kv)
    genome = apply(get_genome(a.arch), **knobs, input=dm.input).replace(classes=dm.num_classes)
    optim = OptimConfig()
    tcfg = TrainerConfig(accelerator="gpu" if a.device == "cuda" else "cpu", max_epochs=a.epochs, precision=a.precision,
                         channels_last=a.channels_last, deterministic=False, limit_val_batches=0, test=False)
    steps = len(dm.train_dataloader()) * (a.epochs - 1)
    print(f"{a.arch} {a.knobs} on {a.data} {dm.input}, batch {a.batch_size}, {a.device} {a.precision}"
          f"{' channels_last' if a.channels_last else ''}, threads {torch.get_num_threads()}, {a.clock} clock: "
          f"{steps} timed steps x {a.repeats} repeats")

    light, raw = [], []
    for r in range(a.repeats):
        # ABBA order: whatever favours the first (or second) run of a pair favours each side equally
        for side in ("lightning", "raw") if r % 2 == 0 else ("raw", "lightning"):
            if side == "lightning":
                light.append(run_lightning(genome, dm, tcfg, optim, seed=r))
            else:
                raw.append(run_raw(genome, dm, tcfg, optim, seed=r, device=a.device))
        print(f"  repeat {r}: lightning {light[-1]:8.1f} img/s   raw {raw[-1]:8.1f} img/s   ratio {light[-1] / raw[-1]:.3f}")
    ml, mr = statistics.median(light), statistics.median(raw)
    print(f"median: lightning {ml:.1f} img/s, raw {mr:.1f} img/s")
    print(f"ratio lightning/raw = {ml / mr:.3f}  (target >= 0.95)")
    if a.json:
        import lightning

        figures = {"arch": a.arch, "knobs": a.knobs, "data": a.data, "size": a.size, "num_train": dm.num_train,
                   "batch_size": a.batch_size, "device": a.device, "precision": a.precision, "channels_last": a.channels_last,
                   "clock": a.clock, "timed_steps": steps, "repeats": a.repeats, "lightning_img_s": ml, "raw_img_s": mr,
                   "ratio": ml / mr, "ratios": [x / y for x, y in zip(light, raw)], "torch": torch.__version__,
                   "lightning": lightning.__version__,
                   "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None}
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)


class _Timer:
    """Images and seconds of every training epoch after the first (synchronised on a GPU)."""

    def __init__(self):
        import lightning.pytorch as pl

        timer = self

        class Cb(pl.Callback):
            def on_train_epoch_start(self, trainer, module):
                _sync(module.device)
                timer.t0 = CLOCK()

            def on_train_epoch_end(self, trainer, module):
                _sync(module.device)
                if trainer.current_epoch > 0:
                    timer.seconds += CLOCK() - timer.t0
                    timer.images += trainer.datamodule.num_train

        self.callback, self.seconds, self.images, self.t0 = Cb(), 0.0, 0, 0.0


def run_lightning(genome, dm, tcfg, optim, seed: int) -> float:
    from nasplay.train.fit import fit

    timer = _Timer()
    fit(genome, dm, tcfg, optim, seed=seed, callbacks=[timer.callback])
    return timer.images / timer.seconds


def run_raw(genome, dm, tcfg, optim, seed: int, device: str) -> float:
    import torch
    import torch.nn.functional as F

    from nasplay.nn.build import build
    from nasplay.train.loader import InMemoryLoader
    from nasplay.train.optim import make_optimizer, make_scheduler, param_groups

    torch.manual_seed(seed)
    dev = torch.device(device)
    net = build(genome, dm.num_classes).to(dev)
    fmt = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    train = dm.splits()["train"]
    x, y = train.x.to(dev, memory_format=fmt), train.y.to(dev)
    epoch = {"e": 0}
    loader = InMemoryLoader(x, y, dm.batch_size, shuffle=True, seed=seed, epoch=lambda: epoch["e"])
    opt = make_optimizer(optim)(param_groups(net, optim.weight_decay))
    sched = make_scheduler(optim)(opt, len(loader) * tcfg.max_epochs, len(loader))
    bf16 = tcfg.precision == "bf16-mixed"
    seconds, images = 0.0, 0
    net.train()
    for e in range(tcfg.max_epochs):
        epoch["e"] = e
        _sync(dev)
        t0 = CLOCK()
        for xb, yb in loader:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        _sync(dev)
        if e > 0:
            seconds += CLOCK() - t0
            images += len(x)
    return images / seconds


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
