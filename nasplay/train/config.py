"""Plain dataclasses that configure data, optimisation and the trainer (also Hydra structured configs).

Every field has a default, so ``DataConfig()`` is the embedded default dataset. The ``check()`` methods
raise a ``ValueError`` that names the field and what is allowed, before any data is read or any step
is taken. OmegaConf cannot type a union of int and str, so such fields are typed ``Any``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from nasplay.private_api import lightning_trainer_args

DATASETS = ("digits", "clutter", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("cosine", "step", "none")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


@dataclass
class DataConfig:
    """Which images, how big, how many, and how they are split.

    ``size=None`` keeps the dataset's own size (digits: 16, bilinearly upsampled from 8 x 8; an image folder: its
    images' own when they share one); ``channels=None`` keeps its own channels (1 -> 3 repeats the grey map, 3 -> 1
    takes the luminance; an image folder: 1 when every image is greyscale, else 3).
    ``val_fraction`` of the training set is held out for validation; ``test_fraction`` applies only
    where the dataset has no test split of its own (digits; an image folder without ``test/``).
    ``limit`` caps the training examples (smoke runs). ``seed`` fixes the split, not the training.
    ``in_memory=None`` keeps every dataset as tensors on the training device, an image folder when its tensors fit
    in 1 GiB (a larger one streams through a ``DataLoader`` with ``num_workers`` worker processes).

    ``clutter_*`` configure the generated ``clutter`` data (:mod:`nasplay.train.clutter`; ``size`` is
    its canvas, default 32): fragments per image, the digit's side as a fraction of the canvas, pixel
    noise, how many images each split has, and ``clutter_cache`` keeps them in ``<root>/clutter/``.
    Its sources are split by ``val_fraction`` / ``test_fraction`` before the images are composed.
    """

    name: str = "digits"
    root: str = "data"
    path: str | None = None  # the class-folder tree of ``imagefolder``
    batch_size: int = 64
    eval_batch_size: int | None = None  # validation / test batches (default: max(batch_size, 256))
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    size: int | None = None
    channels: int | None = None
    normalize: bool = True
    download: bool = True
    num_workers: int = 2
    limit: int | None = None
    seed: int = 0
    in_memory: bool | None = None
    clutter_distractors: int = 4
    clutter_scale_min: float = 0.4
    clutter_scale_max: float = 0.7
    clutter_noise: float = 0.1
    clutter_train: int = 10_000
    clutter_val: int = 1_000
    clutter_test: int = 5_000
    clutter_cache: bool = False

    def check(self) -> DataConfig:
        _one_of("data.name", self.name, DATASETS)
        _positive_int("data.batch_size", self.batch_size)
        if self.eval_batch_size is not None:
            _positive_int("data.eval_batch_size", self.eval_batch_size)
        _fraction("data.val_fraction", self.val_fraction)
        _fraction("data.test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"data.val_fraction + data.test_fraction must be < 1, got {self.val_fraction} + {self.test_fraction}")
        if self.size is not None:
            _positive_int("data.size", self.size)
        if self.channels is not None and self.channels not in (1, 3):
            raise ValueError(f"data.channels must be 1, 3 or null, got {self.channels!r}")
        _int_at_least("data.num_workers", self.num_workers, 0)
        if self.limit is not None:
            _positive_int("data.limit", self.limit)
        _int_at_least("data.seed", self.seed, 0)
        _int_at_least("data.clutter_distractors", self.clutter_distractors, 0)
        _finite("data.clutter_scale_min", self.clutter_scale_min, low=0, strict=True)
        _finite("data.clutter_scale_max", self.clutter_scale_max, low=0, strict=True)
        if not self.clutter_scale_min <= self.clutter_scale_max <= 1:
            raise ValueError("data.clutter_scale_min <= data.clutter_scale_max <= 1 must hold (the digit's side as a "
                             f"fraction of the canvas), got {self.clutter_scale_min} and {self.clutter_scale_max}")
        _finite("data.clutter_noise", self.clutter_noise, low=0)
        _positive_int("data.clutter_train", self.clutter_train)
        _int_at_least("data.clutter_val", self.clutter_val, 0)
        _int_at_least("data.clutter_test", self.clutter_test, 0)
        if self.name == "clutter" and self.size is not None and self.size < 8:
            raise ValueError(f"data.size must be >= 8 for clutter (the canvas), got {self.size}")
        if self.name == "imagefolder" and not self.path:
            raise ValueError("data.path must name the class-folder tree when data.name is 'imagefolder' "
                             "(data.path=DIR; data.root is where downloaded datasets go)")
        return self


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule (``warmup_epochs`` of linear warm-up, then the schedule)."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 30  # epochs between decays of the ``step`` schedule
    gamma: float = 0.1
    label_smoothing: float = 0.0

    def check(self) -> OptimConfig:
        _one_of("optim.optimizer", self.optimizer, OPTIMIZERS)
        _one_of("optim.scheduler", self.scheduler, SCHEDULERS)
        _finite("optim.lr", self.lr, low=0, strict=True)
        _finite("optim.momentum", self.momentum, low=0)
        if self.momentum >= 1:
            raise ValueError(f"optim.momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("optim.nesterov needs optim.optimizer=sgd and optim.momentum > 0")
        _finite("optim.weight_decay", self.weight_decay, low=0)
        _finite("optim.warmup_epochs", self.warmup_epochs, low=0)
        _positive_int("optim.step_size", self.step_size)
        _finite("optim.gamma", self.gamma, low=0, strict=True)
        _finite("optim.label_smoothing", self.label_smoothing, low=0)
        if self.label_smoothing >= 1:
            raise ValueError(f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        return self


@dataclass
class _TrainerFields:
    """What the Lightning ``Trainer`` gets, plus nasplay's own options.

    ``channels_last`` (NHWC memory layout; on in ``conf/trainer/{cpu,gpu}.yaml``, measured faster on CPUs too:
    ``benchmarks/cpu_speed.py``) and ``compile`` (``torch.compile``) are speed options; ``precision``
    ``bf16-mixed`` is AMP. ``target_train_error`` / ``target_val_acc`` record the first epoch / step
    at which the training error falls to (validation accuracy rises to) the target.
    ``limit_*_batches`` and ``devices`` take an int or a float / string as in Lightning.
    """

    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    max_epochs: int = 10
    max_steps: int = -1
    max_time: str | None = None  # "DD:HH:MM:SS"
    deterministic: bool = True
    benchmark: bool | None = None  # cudnn.benchmark
    matmul_precision: str | None = None  # torch.set_float32_matmul_precision: highest|high|medium
    channels_last: bool = False
    compile: bool = False
    # torch's intra-op threads for a trial. Part of what a trial computes (reductions split across threads
    # round differently), so a study gives the same numbers whatever its worker count; null: torch's default.
    threads: int | None = 1
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 50
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    gradient_clip_val: float | None = None
    target_train_error: float | None = None
    target_val_acc: float | None = None
    test: bool = True  # evaluate the test split after fitting
    enable_progress_bar: bool = False
    enable_model_summary: bool = False

    def check(self) -> TrainerConfig:
        _one_of("trainer.accelerator", self.accelerator, ACCELERATORS)
        _one_of("trainer.precision", str(self.precision), PRECISIONS)
        _positive_int("trainer.num_nodes", self.num_nodes)
        d = self.devices
        bad_int = isinstance(d, int) and (d == 0 or d < -1)
        if isinstance(d, bool) or not isinstance(d, (int, str, list, tuple)) or bad_int or d == "":
            raise ValueError(f"trainer.devices must be a positive int, -1, 'auto', a string like '0,1' or a list, got {d!r}")
        _int_at_least("trainer.max_epochs", self.max_epochs, -1)
        _int_at_least("trainer.max_steps", self.max_steps, -1)
        if self.max_epochs == 0 or self.max_steps == 0:
            raise ValueError("trainer.max_epochs and trainer.max_steps must not be 0 (use -1 for no limit)")
        if self.max_epochs == -1 and self.max_steps == -1 and not self.max_time:
            raise ValueError("trainer: set trainer.max_epochs, trainer.max_steps or trainer.max_time; all are unlimited")
        if self.matmul_precision is not None:
            _one_of("trainer.matmul_precision", self.matmul_precision, ("highest", "high", "medium"))
        if self.threads is not None:
            _positive_int("trainer.threads", self.threads)
        _positive_int("trainer.check_val_every_n_epoch", self.check_val_every_n_epoch)
        _positive_int("trainer.log_every_n_steps", self.log_every_n_steps)
        for name, low in (("limit_train_batches", 1), ("limit_val_batches", 0)):  # 0 validation batches: none
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (v == 0 and low)
                                  or (isinstance(v, float) and v > 1)):
                raise ValueError(f"trainer.{name} must be null, an int >= {low} (batches) or a fraction <= 1, got {v!r}")
        if self.gradient_clip_val is not None:
            _finite("trainer.gradient_clip_val", self.gradient_clip_val, low=0, strict=True)
        if self.target_train_error is not None:
            _fraction("trainer.target_train_error", self.target_train_error, closed=True)
        if self.target_val_acc is not None:
            _fraction("trainer.target_val_acc", self.target_val_acc, closed=True)
        if "ddp" in str(self.strategy) and not any(k in str(self.strategy) for k in ("spawn", "fork", "notebook")):
            raise ValueError(f"trainer.strategy={self.strategy} starts each rank by running the command again, which would run "
                             "the whole study once per rank; use trainer.strategy=ddp_spawn (trainer=ddp does)")
        return self

    @property
    def distributed(self) -> bool:
        """Whether a trial trains over several processes (DDP)."""
        d = self.devices
        many = (isinstance(d, int) and (d > 1 or d == -1)) or (isinstance(d, (list, tuple)) and len(d) > 1) \
            or (isinstance(d, str) and ("," in d.strip(",") or d == "-1"))
        return "ddp" in str(self.strategy) or many or self.num_nodes > 1

    def lightning_args(self) -> dict[str, Any]:
        """The other ``Trainer`` arguments the config sets (``trainer.accumulate_grad_batches=2`` ...): not null."""
        return {k: getattr(self, k) for k in LIGHTNING_ONLY if getattr(self, k, None) is not None}


# Trainer arguments nasplay sets itself, per trial: not config keys.
NASPLAY_SETS = ("self", "logger", "callbacks", "enable_checkpointing", "default_root_dir")


# Every other Trainer argument is a field too (null: Lightning's default), so that users type them as they
# would in Lightning, ``trainer.accumulate_grad_batches=2``, and a misspelt one is named with the allowed keys.
LIGHTNING_ONLY = tuple(a for a in lightning_trainer_args()
                       if a not in NASPLAY_SETS and a not in {f.name for f in dataclasses.fields(_TrainerFields)})

TrainerConfig = dataclasses.make_dataclass(
    "TrainerConfig", [(name, Any, dataclasses.field(default=None)) for name in LIGHTNING_ONLY], bases=(_TrainerFields,),
    namespace={"__doc__": (_TrainerFields.__doc__ or "") + """
    Every other argument of Lightning's ``Trainer`` is a field as well (``accumulate_grad_batches``,
    ``val_check_interval``, ``gradient_clip_algorithm``, ...); null leaves Lightning's default.
    ``logger``, ``callbacks``, ``enable_checkpointing`` and ``default_root_dir`` are nasplay's, per trial.
    """, "__module__": __name__})


C = TypeVar("C", DataConfig, OptimConfig, TrainerConfig)


def as_config(cls: type[C], obj: Any) -> C:
    """``obj`` (a ``cls``, a mapping or an OmegaConf node) as a checked ``cls`` instance."""
    if isinstance(obj, cls):
        return obj.check()
    if obj is None:
        return cls().check()
    if not isinstance(obj, dict):
        try:
            from omegaconf import OmegaConf

            obj = OmegaConf.to_container(obj, resolve=True)
        except Exception:
            raise ValueError(f"expected a {cls.__name__} or a mapping, got {type(obj).__name__}") from None
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; allowed: {sorted(names)}")
    return cls(**obj).check()


def _one_of(name: str, v: Any, allowed: tuple[str, ...]) -> None:
    if v not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {v!r}")


def _positive_int(name: str, v: Any) -> None:
    _int_at_least(name, v, 1)


def _int_at_least(name: str, v: Any, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def _finite(name: str, v: Any, low: float, strict: bool = False) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low or (strict and v == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {v!r}")


def _fraction(name: str, v: Any, closed: bool = False) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (0 <= v <= 1 if closed else 0 <= v < 1)
    if not ok:
        raise ValueError(f"{name} must be a number in [0, 1{']' if closed else ')'}, got {v!r}")
