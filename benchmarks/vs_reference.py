"""Our networks' forward + backward time / the reference implementation's, on the same input.

For every zoo network that torchvision or timm implements, the reference is built (random weights),
our network is made from it with ``nasplay.from_reference`` (so both hold the same weights and compute
the same values), and one training step's forward + backward (sum of the logits and aux logits as the
loss) is timed on the same batch in train mode. Steps are interleaved in pairs (reference then ours, then
ours then reference, ...) after warm-up, so drift in the machine's load hits both sides; the ratio is the
median over pairs of ours / reference. Target: <= 1.03 for each network (same operations, same speed).

Both the wall-clock time and the process's CPU time are measured. On a machine shared with other jobs the
CPU-time ratio is the steadier one (time slices lost to other processes do not count), so it decides;
on an idle machine the two agree.

    python benchmarks/vs_reference.py                          # CPU, 2 threads, batch 2, native sizes
    python benchmarks/vs_reference.py --size 160 --repeats 15 resnet50 inception_v3
    python benchmarks/vs_reference.py --device cuda --batch 32 --threads 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads distort timings on a shared CPU

TARGET = 1.03


def _tensors(out):
    """The tensors of a (nested) tuple of outputs: (logits, aux) or torchvision's named tuples."""
    import torch

    for o in out:
        if isinstance(o, torch.Tensor):
            yield o
        elif o is not None:
            yield from _tensors(o)


def step_time(model, x, device: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for one forward + backward."""
    import torch

    model.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    out = model(x)
    outs = [out] if isinstance(out, torch.Tensor) else [*_tensors(out)]
    sum(o.sum() for o in outs).backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - c


def bench(name: str, a: argparse.Namespace) -> dict[str, float]:
    """Median wall / CPU milliseconds of each side and the median pair ratios, for one network."""
    import torch

    from nasplay.reference import from_reference, reference_model
    from nasplay.space.zoo import get_genome

    size = a.size or get_genome(name).input.size
    torch.manual_seed(0)
    ref = reference_model(name)
    ours = from_reference(name, ref)
    ref, ours = ref.to(a.device).train(), ours.to(a.device).train()
    if a.channels_last:
        ref, ours = ref.to(memory_format=torch.channels_last), ours.to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, 3, size, size, device=a.device)
    if a.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for _ in range(a.warmup):
        step_time(ref, x, a.device)
        step_time(ours, x, a.device)
    times: dict[str, list[tuple[float, float]]] = {"ref": [], "ours": []}
    for r in range(a.repeats):
        order = (("ref", ref), ("ours", ours)) if r % 2 == 0 else (("ours", ours), ("ref", ref))
        for key, model in order:
            times[key].append(step_time(model, x, a.device))
    out = {"size": size}
    for i, clock in enumerate(("wall", "cpu")):
        for key in ("ref", "ours"):
            out[f"{key}_{clock}_ms"] = 1e3 * statistics.median(t[i] for t in times[key])
        out[f"{clock}_ratio"] = statistics.median(o[i] / r[i] for o, r in zip(times["ours"], times["ref"]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="zoo names (default: every network with a reference)")
    p.add_argument("--batch", type=int, default=2, help="images per step (default 2)")
    p.add_argument("--size", type=int, default=0, help="image size (default: each network's native size)")
    p.add_argument("--repeats", type=int, default=11, help="timed steps of each side, interleaved (default 11)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each side first (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2; 0 leaves torch's default)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()

    import torch

    from nasplay.space.zoo import entry, list_genomes

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    names = a.names or [n for n in list_genomes() if entry(n).reference]
    print(f"forward+backward, train mode, batch {a.batch}, {a.device}, threads {torch.get_num_threads()}, "
          f"{a.repeats} interleaved pairs after {a.warmup} warm-up; torch {torch.__version__}")
    print("ms: medians per step; ratios: median over pairs of ours / reference; the CPU ratio decides "
          f"(target <= {TARGET})")
    print(f"{'network':<20} {'reference':<27} {'size':>4} {'ref wall':>9} {'ours wall':>9} {'wall':>6} "
          f"{'ref cpu':>9} {'ours cpu':>9} {'cpu':>6}")
    worst = 0.0
    for name in names:
        b = bench(name, a)
        ratio = b["cpu_ratio"] if a.device == "cpu" else b["wall_ratio"]
        worst = max(worst, ratio)
        print(f"{name:<20} {entry(name).reference:<27} {b['size']:>4} {b['ref_wall_ms']:>9.1f} {b['ours_wall_ms']:>9.1f} "
              f"{b['wall_ratio']:>6.3f} {b['ref_cpu_ms']:>9.1f} {b['ours_cpu_ms']:>9.1f} {b['cpu_ratio']:>6.3f}  "
              f"{'ok' if ratio <= TARGET else 'SLOWER'}", flush=True)
    print(f"worst ratio {worst:.3f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
