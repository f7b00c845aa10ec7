"""From a composed config to a checked study plan: the arms, the trial parameters and the study's place.

Everything a study could fail on before training — a bad value, an unknown knob, a knob value the
network refuses — fails here, in :func:`make_plan`, with a ``ValueError`` naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from nasplay.complexity import complexity, resolve
from nasplay.manifest import ArmEntry, Manifest, kind_of
from nasplay.resources import project_dir
from nasplay.space.knobs.parse import format_value
from nasplay.space.knobs.wiring import grouping
from nasplay.space.load import genome_label
from nasplay.sweep import conditional
from nasplay.sweep.config import NasplayConfig
from nasplay.sweep.space import draw_value, trial_key  # noqa: F401  (trial_key: where it was, for importers)
from nasplay.track.secrets import mask
from nasplay.train.config import DataConfig, OptimConfig, TrainerConfig

# A tuned experiment's two kinds of trial: per-arm tuning on tune_seeds, then the comparison on seeds.
STAGES = ("tune", "final")
# Parts of the config that do not change what a trial computes: a study may resume with other values
# (more seeds included; other arms are another study, as Optuna cannot widen a categorical parameter).
FREE_KEYS = (
    "runs_dir", "study", "progress", "logger", "sweep.n_trials", "sweep.storage", "sweep.workers",
    "sweep.heartbeat_interval", "sweep.heartbeat_grace", "sweep.storage_retry",
    "sweep.retry_failed", "sweep.max_failures", "sweep.timeout", "sweep.pruner", "sweep.keep_weights", "experiment.seeds",
    "experiment.description", "experiment.baseline", "data.root",
    "data.download", "data.num_workers", "data.in_memory", "data.eval_batch_size", "data.clutter_cache", "trainer.accelerator",
    "trainer.devices", "trainer.strategy", "trainer.num_nodes", "trainer.enable_progress_bar",
    "trainer.enable_model_summary", "trainer.log_every_n_steps", "trainer.test", "sweep.job", "progress_interval",
    "report", "experiment.outcomes",  # how the report reads the results, not what a trial computes
)


def is_free_key(key: str) -> bool:
    """Whether the dotted config ``key`` is (inside) one of the ``FREE_KEYS``."""
    return any(key == k or key.startswith(k + ".") for k in FREE_KEYS)


@dataclass
class Arm:
    """One arm of an experiment: a zoo network with knob values."""

    name: str
    arch: str
    knobs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """A checked config and what follows from it."""

    cfg: NasplayConfig
    arms: list[Arm]
    study_dir: Path
    resolved: dict[str, Any]  # the whole config as plain data, secrets masked
    classics: list[Arm] = field(default_factory=list)  # networks trained beside a search (experiment.classics)
    genomes: dict[str, Any] = field(default_factory=dict)  # arm name -> the genome it trains (data's input and classes)
    baselines: dict[str, str] = field(default_factory=dict)  # several bases and a knob: arm -> its base's baseline arm
    overrides: list[str] = field(default_factory=list)  # the command line's overrides (recorded in study.json)
    notes: list[str] = field(default_factory=list)  # what the data module says about the data (an image folder's)

    @property
    def name(self) -> str:
        return self.cfg.study

    @property
    def grid(self) -> dict[str, list[Any]] | None:
        """The grid sampler's search space, or ``None`` when the study samples (not a grid)."""
        sw, exp = self.cfg.sweep, self.cfg.experiment
        if sw.sampler != "grid":
            return None
        if exp.pairs:  # each sampled architecture is a pair id; its parameters are drawn in sampled_pairs()
            return {"arm": [a.name for a in self.arms], "pair": list(range(exp.pairs)), "seed": list(exp.seeds)}
        grid = {"arm": [a.name for a in self.arms]} if not sw.space or len(self.arms) > 1 else {}
        grid.update({k: list(v) for k, v in sw.space.items()})
        grid.setdefault("seed", list(exp.seeds))
        if exp.tune:  # tuning trials first (their own seeds, each value), then the comparison
            grid["seed"] = [*exp.tune_seeds, *grid["seed"]]
            grid["stage"] = list(STAGES)
            grid.update({k: list(v) for k, v in exp.tune.items()})
        if exp.budgets:
            grid["budget"] = list(exp.budgets)
        return grid

    def sampled_pairs(self) -> list[dict[str, Any]]:
        """experiment.pairs architectures drawn from sweep.space (seeded by sweep.seed): each is trained under every
        arm, so the design spaces are compared architecture by architecture (Radosavovic et al. 2019)."""
        rng = random.Random(self.cfg.sweep.seed or 0)
        return [{name: draw_value(rng, spec) for name, spec in self.cfg.sweep.space.items()}
                for _ in range(self.cfg.experiment.pairs or 0)]

    @property
    def budgets(self) -> list[float]:
        """The training budgets, multiples of ``trainer.max_epochs`` (``[1.0]`` unless the experiment varies it)."""
        return [float(b) for b in self.cfg.experiment.budgets] or [1.0]

    @property
    def identity(self) -> dict[str, Any]:
        """The config without its free keys: what must not change when a study resumes."""
        d = json.loads(json.dumps(self.resolved, default=str))
        for key in FREE_KEYS:
            *parents, last = key.split(".")
            node = d
            for p in parents:
                node = node.get(p, {})
            node.pop(last, None)
        return d

    def arm_genome(self, name: str, knobs: dict[str, Any], data_shape: tuple[int, int, int]) -> Any:
        """The genome arm ``name`` trains with ``knobs`` on data of ``data_shape``: with ``experiment.keep``, its
        widths re-solved to its base network's compute, or to the ``experiment.keep_to`` arm's."""
        exp = self.cfg.experiment
        arm = self.arm(name)
        reference = None
        if exp.keep is not None and exp.keep_to is not None and name != exp.keep_to:
            ref = self.arm(exp.keep_to)
            reference = self.arm_genome(ref.name, ref.knobs, data_shape)
        keep = exp.keep if exp.keep_to is None or name != exp.keep_to else None
        return resolve(arm.arch, knobs, data_shape, keep=keep, keep_by=exp.keep_by, reference=reference, tol=exp.tol,
                       base=self.cfg.arch.knobs, where=f"arm {name!r}")

    def trial_genome(self, arm: str, arch: str, knobs: dict[str, Any], data_shape: tuple[int, int, int], *,
                     classic: bool = False) -> Any:
        """The genome a trial of ``arm`` trains: the plan's own genome of that arm when the trial trains it as planned
        (its arch and knobs, on the data the plan was made for); else, for a sampled point of an arm (``experiment.pairs``,
        ``sweep.space`` over knobs or data) or a sampled network, the same door with the experiment's ``keep``."""
        planned = self.genomes.get(arm)
        if planned is not None:
            a = self.arm(arm)
            if (a.arch, a.knobs, (planned.input.channels, planned.input.size, planned.classes)) == (arch, knobs, tuple(data_shape)):
                return planned
        if any(a.name == arm for a in self.arms) and arch == self.arm(arm).arch:
            return self.arm_genome(arm, knobs, data_shape)
        exp = self.cfg.experiment  # a sampled network (sweep.space over arch) or a classic: no reference arm
        return resolve(arch, knobs, data_shape, keep=None if classic else exp.keep, tol=exp.tol, base=self.cfg.arch.knobs,
                       where=f"arm {arm!r}")

    def manifest(self) -> Manifest:
        """What the report needs to know about this study (written as ``study.json``)."""
        c = self.cfg
        entries = []
        for arm, classic in [*((a, False) for a in self.arms), *((a, True) for a in self.classics)]:
            g = self.genomes.get(arm.name)
            cx = complexity(g, num_classes=g.classes) if g is not None else None
            groups = grouping(g) if g is not None else None
            entries.append(ArmEntry(arm.name, arm.arch, json.loads(json.dumps(arm.knobs, default=str)), classic,
                                    int(cx.params) if cx else None, int(cx.flops) if cx else None,
                                    f"{groups[0]}x{groups[1]}d" if groups else None))
        return Manifest(experiment=c.experiment.name, study=self.name, kind=kind_of(c.experiment.name, c.experiment.kind),
                        arms=entries, baseline=c.experiment.baseline or (self.arms[0].name if self.arms else None),
                        objectives=list(c.sweep.objectives), directions=c.sweep.directions_resolved, knob=c.experiment.knob,
                        keep=c.experiment.keep, overrides=list(self.overrides),
                        classes=next((g.classes for g in self.genomes.values() if g is not None), None),
                        outcomes=dataclasses.asdict(c.experiment.outcomes), baselines=dict(self.baselines))

    def arm(self, name: str) -> Arm:
        for a in [*self.arms, *self.classics]:
            if a.name == name:
                return a
        raise ValueError(f"arm {name!r} is not an arm of study {self.name!r}; arms: {[a.name for a in self.arms + self.classics]}")


def to_config(cfg: Any) -> NasplayConfig:
    """A composed Hydra config (``DictConfig``), a mapping or a ``NasplayConfig`` as a checked ``NasplayConfig``."""
    if isinstance(cfg, NasplayConfig):
        cfg = OmegaConf.structured(cfg)
    elif not isinstance(cfg, DictConfig):
        cfg = OmegaConf.merge(OmegaConf.structured(NasplayConfig), cfg)
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, NasplayConfig):
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(NasplayConfig), cfg))
    if obj.experiment.space:  # the file's parameters, then those given in sweep.space
        obj.sweep.space = {**load_space(obj.experiment.space), **obj.sweep.space}
    return obj.check()


SPACES_DIR = project_dir("search_spaces", "NASPLAY_SPACES_DIR")


def load_space(name: str) -> dict[str, Any]:
    """A search space: ``search_spaces/<name>.yaml`` (or a YAML file's path), a mapping of parameter -> choices or range."""
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = SPACES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
        raise ValueError(f"experiment.space: no search space {name!r} (a name in {SPACES_DIR}: {known}, or a .yaml path)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not data:
        raise ValueError(f"experiment.space: {path} must be a non-empty mapping of parameter -> choices or {{low, high}}")
    return data


def make_plan(cfg: Any, *, data_shape: tuple[int, int, int] | None = None, check_files: bool = True) -> Plan:
    """Check ``cfg`` and every arm's genome (knobs applied, adapted to the data) before anything trains.

    ``data_shape`` is the data's ``(channels, size, classes)``; by default it comes from the data module.
    ``check_files=False`` skips decoding every file of an image folder (a worker: the command checked them).
    """
    from nasplay.space.plugins import load_plugins

    load_plugins()  # the vocabulary the arms may use, before they are checked (a broken plugin: one line naming it)
    c = to_config(cfg)
    arms = experiment_arms(c)
    notes: list[str] = []
    if data_shape is None:
        from nasplay.train.data import make_datamodule  # torch and Lightning load here, not with the plan (CLI start-up)

        dm = make_datamodule(c.data)
        if check_files:
            check_data(dm)
        data_shape = (dm.channels, dm.size, dm.num_classes)
        notes = list(getattr(dm, "notes", []))
    exp = c.experiment
    if exp.keep_to is not None and exp.keep_to not in [a.name for a in arms]:
        raise ValueError(f"experiment.keep_to: {exp.keep_to!r} is not an arm; arms: {[a.name for a in arms]}")
    plan = Plan(c, arms, Path(c.runs_dir) / exp.name / c.study, {})
    genomes = {arm.name: plan.arm_genome(arm.name, arm.knobs, data_shape) for arm in arms}
    classics = classic_arms(c)
    for arm in classics:
        genomes[arm.name] = resolve(arm.arch, arm.knobs, data_shape,
                                    where=f"experiment.classics.{arm.name.removeprefix('classic ')}")
    check_space(c, arms, data_shape)
    plan.baselines = family_baselines(c, arms)
    if plan.baselines:  # the study's one baseline (what a single-family reader shows): the first base's
        exp.baseline = plan.baselines[arms[0].name]
    if exp.knob and exp.baseline is not None and f"{exp.knob}={format_value(exp.baseline)}" in [a.name for a in arms]:
        exp.baseline = f"{exp.knob}={format_value(exp.baseline)}"  # a value of the knob names its arm (baseline=tanh)
    if exp.baseline is not None and exp.baseline not in [a.name for a in arms]:
        raise ValueError(f"experiment.baseline: {exp.baseline!r} is not an arm; arms: {[a.name for a in arms]}")
    plan.resolved = mask(OmegaConf.to_container(OmegaConf.structured(c), resolve=True))
    plan.classics, plan.genomes, plan.notes = classics, genomes, notes
    return plan


def missing_data_files(cfg: Any) -> tuple[Path, list[str]]:
    """For a torchvision dataset (MNIST, Fashion-MNIST, CIFAR): the folder its files live in under
    ``data.root`` and those of them that are not there (an MNIST file may be there gzipped)."""
    import torchvision.datasets as tvd  # torch loads here, not with the plan (CLI start-up)

    from nasplay.train.data import TORCHVISION  # imports torch: as above

    cls = getattr(tvd, TORCHVISION[cfg.name])
    root = Path(os.path.expanduser(cfg.root))
    if hasattr(cls, "resources"):  # MNIST, FashionMNIST: <root>/<class>/raw/<file>[.gz]
        folder = root / cls.__name__ / "raw"
        names = [os.path.basename(url).removesuffix(".gz") for url, _ in cls.resources]
        return folder, [n for n in names if not (folder / n).exists() and not (folder / f"{n}.gz").exists()]
    folder = root / cls.base_folder  # CIFAR: <root>/cifar-10-batches-py/<batch files>
    names = [f for f, _ in (*cls.train_list, *cls.test_list)] + [cls.meta["filename"]]
    return folder, [n for n in names if not (folder / n).exists()]


def check_data(dm: Any) -> None:
    """The data is there (or downloads) before a study is created: a missing dataset is a ``ValueError``
    naming ``data.root`` and the files looked for, an image that does not decode one naming every such file,
    not a study whose trials all fail."""
    from nasplay.train.data import TORCHVISION  # imports torch: loaded when the data is checked, not with the plan

    cfg = dm.cfg
    if cfg.name == "imagefolder":  # every file opens and decodes (a ValueError lists those that do not)
        dm.check()
        return
    if cfg.name not in TORCHVISION:  # digits and clutter are embedded
        return
    folder, missing = missing_data_files(cfg)
    if not missing:
        return
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    if not cfg.download:
        raise ValueError(f"data: {cfg.name} is not under data.root={cfg.root!r}: looked for {shown} in {folder}; "
                         f"put the files there, point data.root at them, or set data.download=true")
    try:
        dm.prepare_data()  # downloads through torchvision, as a trial would
    except Exception as e:  # noqa: BLE001 - no network, a full disk, a proxy: say so before the study exists
        raise ValueError(f"data: {cfg.name} is not under data.root={cfg.root!r} (looked for {shown} in {folder}) and "
                         f"downloading it failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                         f"put the files there or point data.root at them") from None


def experiment_arms(c: NasplayConfig) -> list[Arm]:
    """The arms: every base with each value of the knob, then the named arms; else each base as it is."""
    exp, arch = c.experiment, c.arch
    bases = list(exp.bases) or [arch.name]
    arms: list[Arm] = []
    if exp.knob and exp.knob in arch.knobs:
        raise ValueError(f"arch.knobs.{exp.knob}: {exp.knob} is the knob under study; its values are experiment.values "
                         f"({[format_value(v) for v in exp.values]})")
    if exp.knob:
        for base in bases:
            for v in exp.values:
                label = f"{exp.knob}={format_value(v)}"
                arms.append(Arm(label if len(bases) == 1 else f"{genome_label(base)} {label}", base, {**arch.knobs, exp.knob: v}))
    for name, spec in exp.arms.items():
        arms.append(Arm(str(name), spec.get("arch", bases[0]), {**arch.knobs, **(spec.get("knobs") or {})}))
    if not arms:
        arms = [Arm(genome_label(base), base, dict(arch.knobs)) for base in bases]
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"experiment: arm names must be unique, {dupes} repeat (rename the experiment.arms entries)")
    return arms


def family_baselines(c: NasplayConfig, arms: list[Arm]) -> dict[str, str]:
    """With several ``experiment.bases`` and a knob, each base's arms are compared with that base's own baseline arm
    (the base with the baseline value of the knob): arm -> baseline arm, a family per base. Named arms on one of the
    bases join its family. Empty for one base (every arm against ``experiment.baseline``)."""
    exp = c.experiment
    bases = list(exp.bases)
    if not exp.knob or len(bases) < 2:
        return {}
    values = [format_value(v) for v in exp.values]
    value = values[0] if exp.baseline is None else str(exp.baseline)
    for base in bases:  # an arm's name given as the baseline: its value
        value = value.removeprefix(f"{genome_label(base)} ")
    value = value.removeprefix(f"{exp.knob}=")
    if value not in values:
        raise ValueError(f"experiment.baseline: {exp.baseline!r} is not a value of {exp.knob}; with several bases each base's "
                         f"arm at the baseline value is that base's baseline; values: {values}")
    out = {}
    for base in bases:
        label = genome_label(base)
        for v in values:
            out[f"{label} {exp.knob}={v}"] = f"{label} {exp.knob}={value}"
    names = {a.name for a in arms}
    for name, spec in exp.arms.items():
        arch = (spec or {}).get("arch", bases[0])
        if arch in bases and str(name) in names:
            out[str(name)] = f"{genome_label(arch)} {exp.knob}={value}"
    return out


def classic_arms(c: NasplayConfig) -> list[Arm]:
    """The networks a search trains beside its samples, as arms ``classic NAME`` (only their own knobs)."""
    classics = c.experiment.classics or {}
    if classics and c.sweep.sampler == "grid":
        raise ValueError("experiment.classics are trained beside a sampled search (sweep=tpe|random|nsga2); "
                         "with sweep=grid make them experiment.arms")
    return [Arm(f"classic {name}", str((spec or {}).get("arch", name)), dict((spec or {}).get("knobs") or {}))
            for name, spec in classics.items()]


def check_space(c: NasplayConfig, arms: list[Arm], data_shape: tuple[int, int, int]) -> None:
    """Each choice of a knob parameter (each end of a knob range) applied alone to the base network."""
    fields = {"optim": OptimConfig, "data": DataConfig, "trainer": TrainerConfig}
    if c.experiment.conditional:  # knobs are checked per base network (nasplay.sweep.conditional)
        conditional.check(c, data_shape)
    for name, spec in c.sweep.space.items():
        prefix, _, rest = name.partition(".")
        if prefix in fields:
            allowed = [f.name for f in dataclasses.fields(fields[prefix])]
            if rest not in allowed:
                raise ValueError(f"sweep.space.{name}: {prefix} has no field {rest!r}; allowed: {allowed}")
        values = spec if isinstance(spec, (list, tuple)) else [spec["low"], spec["high"]]
        if name == "arch":
            for v in [] if c.experiment.conditional else values:
                resolve(str(v), dict(c.arch.knobs), data_shape, where=f"sweep.space.arch={v}")
        elif prefix == "knobs" and not c.experiment.conditional:
            for v in values:
                resolve(arms[0].arch, {**c.arch.knobs, rest: v}, data_shape, keep=c.experiment.keep,
                        tol=c.experiment.tol, where=f"sweep.space.{name}={format_value(v)}", base=c.arch.knobs)
    for name in c.experiment.tune:
        prefix, _, rest = name.partition(".")
        allowed = [f.name for f in dataclasses.fields(fields[prefix])]
        if rest not in allowed:
            raise ValueError(f"experiment.tune.{name}: {prefix} has no field {rest!r}; allowed: {allowed}")
        if name in c.sweep.space:
            raise ValueError(f"experiment.tune.{name}: also in sweep.space; tune it or sweep it, not both")
    on = c.experiment.tune_on
    if on and not c.experiment.tune:
        raise ValueError(f"experiment.tune_on={on}: nothing is tuned (experiment.tune is empty); drop tune_on or tune something")
    needs = {"epochs_to_target": "target_train_error", "steps_to_target_train": "target_train_error",
             "steps_to_target": "target_val_acc"}.get(on or "")
    if on and c.experiment.tune and needs and getattr(c.trainer, needs) is None:
        raise ValueError(f"experiment.tune_on={on} needs trainer.{needs} (the target it times); set it, e.g. trainer.{needs}=0.25")
    knob = c.experiment.knob
    if knob and f"knobs.{knob}" in c.sweep.space:  # a sampled value would overwrite the arm's
        raise ValueError(f"sweep.space.knobs.{knob}: {knob} is the knob under study (its arms are experiment.values); "
                         f"drop it from the space")
    if c.sweep.sampler == "grid" and not c.experiment.pairs:
        for name, spec in c.sweep.space.items():
            if not isinstance(spec, (list, tuple)):
                raise ValueError(f"sweep.space.{name}: the grid sampler needs a list of values, not a range")
