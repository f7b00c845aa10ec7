"""``nasplay export STUDY_DIR [--trial best|N] [--format state_dict|torchscript|onnx] [--out DIR]``: a trained network out.

Reads the weights a study kept (``sweep.keep_weights``, :mod:`nasplay.sweep.weights`) and writes, into ``--out``
(default ``<study dir>/export/trial_<N>/``), the network in the format asked for beside ``genome.yaml`` (the genome it
is: ``nasplay.build`` makes it) and ``trial.json`` (the trial's arm, seed, metrics, and the input it takes: channels,
size, the normalisation of its pixels, class names). Every format is checked after it is written: the exported network
must give the built network's outputs on an image of its input.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

FORMATS = {"state_dict": "weights.pt", "torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
REFERENCE_FLOPS = 200e6  # ONNX's NumPy reference evaluator checks networks up to this many FLOPs an image in seconds

LOAD = {
    "state_dict": '''import torch, nasplay
from pathlib import Path
net = nasplay.build(nasplay.Genome.from_yaml(Path("{out}/genome.yaml").read_text())).eval()
net.load_state_dict(torch.load("{out}/weights.pt", weights_only=True))''',
    "torchscript": '''import torch
net = torch.jit.load("{out}/model.torchscript.pt").eval()      # no nasplay needed''',
    "onnx": '''import onnxruntime                                         # or any ONNX runtime
session = onnxruntime.InferenceSession("{out}/model.onnx")  # input "images": N x C x H x W float32, output "logits"''',
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a study's trained network (weights, TorchScript or ONNX) with its genome",
        description="Write a trained network of a study directory (runs/<experiment>/<study>/) that kept its weights "
                    "(sweep.keep_weights=best, the default, or all): the weights as a state_dict, a TorchScript archive or "
                    "an ONNX model, with genome.yaml (nasplay.build(genome) makes the network the weights load into) and "
                    "trial.json (arm, seed, metrics, the input and its normalisation) beside it.",
        epilog="examples:\n  nasplay export runs/ablate_skip/ablate_skip\n"
               "  nasplay export runs/search_pareto/search_pareto --trial 17 --format onnx --out net/\n"
               "ONNX needs the onnx extra: pip install 'nasplay[onnx]'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study_dir", metavar="STUDY_DIR", help="a study directory (it holds weights/ when weights were kept)")
    p.add_argument("--trial", default="best",
                   help="best (the study's best kept trial by its first objective; default) or a trial number")
    p.add_argument("--format", choices=tuple(FORMATS), default="state_dict", help="what to write (default: state_dict)")
    p.add_argument("--out", default=None, help="the folder to write into (default: <study dir>/export/trial_<N>)")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    notes: list[str] = []
    out = export(args.study_dir, trial=args.trial, fmt=args.format, out=args.out, notes=notes)
    meta = json.loads((out / "trial.json").read_text())
    shown = ", ".join(f"{k} {v:.4g}" for k, v in meta.get("metrics", {}).items() if k in ("val/acc", "test/acc"))
    print(f"trial {meta['trial']} ({meta.get('arm')}, seed {meta.get('seed')}{', ' + shown if shown else ''}) -> {out}")
    print(f"  {FORMATS[args.format]}, genome.yaml, trial.json; input {_input_text(meta)}")
    print(f"  checked: {'; '.join(notes)}")
    print("load it:\n  " + LOAD[args.format].format(out=out).replace("\n", "\n  "))
    return 0


def export(study_dir: str | Path, *, trial: str | int = "best", fmt: str = "state_dict", out: str | Path | None = None,
           notes: list[str] | None = None) -> Path:
    """Write trial ``trial`` (``"best"`` or a number) of ``study_dir`` as ``fmt``; returns the folder written.
    ``notes`` receives what was checked.

    ``ValueError`` (the command's one-line error) when the study kept no such weights or ``fmt`` needs a missing extra.
    """
    from nasplay.sweep import weights

    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {list(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(f"--format onnx needs the onnx extra ({' and '.join(missing)} missing): "
                             f"pip install 'nasplay[onnx]'")
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise ValueError(f"STUDY_DIR: {str(study_dir)!r} is not a directory (a study's folder: runs/<experiment>/<study>)")
    kept = weights.kept(study_dir)
    number = _pick(study_dir, kept, trial)
    src = weights.trial_dir(study_dir, number)
    meta = kept[number]
    dest = Path(out) if out is not None else study_dir / "export" / f"trial_{number}"
    dest.mkdir(parents=True, exist_ok=True)
    for name in (weights.GENOME, weights.META):
        shutil.copyfile(src / name, dest / name)
    said = notes if notes is not None else []
    if fmt == "state_dict":
        shutil.copyfile(src / weights.WEIGHTS, dest / FORMATS[fmt])
        _check_state_dict(dest)
        said.append("the weights load (strictly) into nasplay.build(genome)")
        return dest
    net, x = _network(src, meta)
    if fmt == "torchscript":
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in favour of torch.export
            torch.jit.save(torch.jit.script(net), str(dest / FORMATS[fmt]))
            loaded = torch.jit.load(str(dest / FORMATS[fmt]))
        _same(net, loaded, x, fmt)
        said.append("torch.jit.load gives back a network whose outputs equal the built network's")
    else:
        said.append(_onnx(net, x, dest / FORMATS[fmt]))
    return dest


def _pick(study_dir: Path, kept: dict[int, dict[str, Any]], trial: str | int) -> int:
    from nasplay.sweep import weights

    if not kept:
        keep = _keep_setting(study_dir)
        raise ValueError(f"{study_dir}: no trial kept its weights (sweep.keep_weights={keep}); train them as a new "
                         f"study: the same command with sweep.keep_weights=best (or all) and study=NEW_NAME")
    numbers = sorted(kept)
    if str(trial) == "best":
        meta = next(iter(kept.values()))
        front = weights.front(kept, meta["directions"])
        if not front:
            raise ValueError(f"{study_dir}: no kept trial has finite objective values ({numbers})")
        return max(front, key=lambda n: ((1 if meta["directions"][0] == "maximize" else -1) * kept[n]["values"][0], -n))
    try:
        number = int(trial)
    except (TypeError, ValueError):
        raise ValueError(f"--trial must be 'best' or a trial number, got {trial!r}") from None
    if number not in kept:
        raise ValueError(f"--trial {number}: its weights were not kept (sweep.keep_weights={_keep_setting(study_dir)}); "
                         f"trials with weights: {numbers}")
    return number


def _keep_setting(study_dir: Path) -> str:
    """``sweep.keep_weights`` as the study ran with it, and what that kept."""
    import yaml

    from nasplay.manifest import kind_of
    from nasplay.sweep import weights

    try:
        cfg = yaml.safe_load((study_dir / "config.yaml").read_text()) or {}
    except OSError:
        return "unknown: the folder has no config.yaml"
    keep = (cfg.get("sweep") or {}).get("keep_weights")
    if keep is None:
        return "unset: the study ran before nasplay kept weights"
    exp = cfg.get("experiment") or {}
    resolved = weights.resolve_keep(str(keep), kind_of(str(exp.get("name", "")), exp.get("kind")))
    what = {"best": "the best trial only (a front: its trials)", "all": "every finished trial", "none": "no trial"}[resolved]
    return f"{keep}: {what}" if keep == resolved else f"{keep}, so {resolved}: {what}"


def _network(src: Path, meta: dict[str, Any]):
    """The trained network (eval mode) and an input batch of two images of its size."""
    import torch

    from nasplay.nn.build import build
    from nasplay.space.genome import Genome

    genome = Genome.from_yaml((src / "genome.yaml").read_text())
    net = build(genome, num_classes=meta.get("num_classes")).eval()
    net.load_state_dict(torch.load(src / "weights.pt", map_location="cpu", weights_only=True))
    c, s = genome.input.channels, genome.input.size
    return net, torch.randn(2, c, s, s, generator=torch.Generator().manual_seed(0))


def _check_state_dict(dest: Path) -> None:
    """The weights load, strictly, into the network the genome builds."""
    meta = json.loads((dest / "trial.json").read_text())
    _network(dest, meta)


def _same(net: Any, exported: Any, x: Any, fmt: str) -> None:
    import torch

    with torch.no_grad():
        want, got = net(x), exported(x)
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"the {fmt} network's outputs differ from the built network's by up to "
                           f"{(got - want).abs().max().item():.3g}")


def _onnx(net: Any, x: Any, path: Path) -> str:
    """Export, check the model (onnx.checker) and its outputs: by onnxruntime when installed, else by ONNX's reference
    evaluator (pure NumPy: on small networks only). Returns what was checked."""
    import numpy as np
    import onnx
    import torch

    from nasplay.complexity import complexity

    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own progress
        program = torch.onnx.export(net, (x,), dynamo=True, input_names=["images"], output_names=["logits"],
                                    dynamic_shapes=({0: batch},), verbose=False)
        program.save(str(path))
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        run, how = onnxruntime.InferenceSession(str(path)).run, "onnxruntime"
    elif complexity(net.genome, num_classes=None).flops <= REFERENCE_FLOPS:
        from onnx.reference import ReferenceEvaluator

        run, how = ReferenceEvaluator(model).run, "ONNX's reference evaluator"
    else:
        return "onnx.checker passed; install onnxruntime to compare its outputs with the network's"
    (got,) = run(None, {"images": x.numpy()})
    _same(net, lambda _: torch.from_numpy(np.asarray(got)), x, "onnx")
    return f"onnx.checker passed; its outputs ({how}) equal the network's"


def _input_text(meta: dict[str, Any]) -> str:
    i = meta.get("input") or {}
    text = f"{i.get('channels')}x{i.get('size')}x{i.get('size')}, pixels in [0, 1]"
    if i.get("mean") is not None:
        text += f", then (x - mean) / std with mean {[round(v, 4) for v in i['mean']]}, std {[round(v, 4) for v in i['std']]}"
    return text
