"""The genome: one frozen dataclass tree that describes every network of the space.

A network is ``stem -> stages -> head``. The stem and every stage hold :class:`Block` s; a block holds
parallel :class:`Branch` es whose outputs are concatenated (a single path is one branch), optional
``merge`` ops applied to the concatenation, a residual wiring (``skip``: added or, DenseNet's, concatenated)
and ``post`` ops applied after it. Branches hold ops and may split again into parallel sub-branches (Inception-v3's "E"
modules). Auxiliary classifiers hang off a block of a stage.

Genomes round-trip through plain dicts (and so YAML / JSON / Hydra configs) and have a stable hash
of their structure (the name is not part of the identity). Fields added after the first networks were
registered (``NEW``) leave the hash alone while they hold their default, so those networks keep their
identities as the genome grows.

The activations and norms are registered here as the built-in entries of their registries
(:mod:`nasplay.space.registry`); ``ACTIVATIONS``, ``NORM_KINDS`` and ``CONV_NORMS`` are live views of those registries,
so a plugin's activation is valid wherever a built-in one is. The other vocabularies below are fixed by the genome.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Union

from nasplay.space import registry

IntPair = Union[int, tuple[int, int]]

CONV_FACTORS = ("none", "stacked", "asymmetric", "asymmetric_t")
ADD_SKIPS = ("identity", "projection", "scaled")  # shortcuts added to the block's output
SKIPS = ("none", *ADD_SKIPS, "dense")  # dense: the input concatenated to the output (DenseNet)
POOL_KINDS = ("max", "avg")
# name, factory (torch's class, imported by the builder), label in drawings and diffs, whether it can run in place
for _name, _factory, _label, _inplace in (
        ("none", "torch.nn:Identity", "identity", False), ("relu", "torch.nn:ReLU", "ReLU", True),
        ("relu6", "torch.nn:ReLU6", "ReLU6", True), ("tanh", "torch.nn:Tanh", "tanh", False),
        ("sigmoid", "torch.nn:Sigmoid", "sigmoid", False), ("gelu", "torch.nn:GELU", "GELU", False),
        ("silu", "torch.nn:SiLU", "SiLU", True), ("elu", "torch.nn:ELU", "ELU", True),
        ("leaky_relu", "torch.nn:LeakyReLU", "leaky ReLU", True),
        ("scaled_tanh", "nasplay.nn.layers:ScaledTanh", "scaled tanh", False)):
    if registry.ACTIVATIONS.peek(_name) is None:
        registry.ACTIVATIONS.add(registry.Activation(_name, _factory, _label, _inplace, builtin=True, module=__name__))
# layer: LayerNorm over the channels at each position (ConvNeXt); lrn: local response normalisation, never on a conv
for _name, _label, _conv, _learns in (("batch", "BatchNorm", True, True), ("lrn", "LRN", False, False),
                                      ("layer", "LayerNorm", True, True)):
    if registry.NORMS.peek(_name) is None:
        registry.NORMS.add(registry.Norm(_name, None, _label, _conv, _learns, builtin=True, module=__name__))
NORM_KINDS = registry.Names(registry.NORMS)
CONV_NORMS = registry.Names(registry.NORMS, ("none",), lambda e: e.conv)  # the norms a conv can carry
ACTIVATIONS = registry.Names(registry.ACTIVATIONS)
HEAD_OUTPUTS = ("linear", "rbf")

# Marks a field added after the first networks were registered: at its default it stays out of the hash.
NEW = {"new": True}


def pair(v: IntPair) -> tuple[int, int]:
    """Return ``(h, w)`` for an int or a pair."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class Conv:
    """A convolution, optionally followed by a norm (``batch`` or ``layer``) and an activation.

    ``factor`` says how an n x n receptive field is realised: ``none`` (one n x n conv), ``stacked``
    ((n-1)/2 3 x 3 convs), ``asymmetric`` (1 x n then n x 1) or ``asymmetric_t`` (n x 1 then 1 x n);
    the pieces are ``mid`` channels wide (default ``out``) and each gets the norm and activation.
    ``separable`` makes it a depthwise k x k conv followed by a pointwise 1 x 1 conv (Xception).
    ``table`` is a partial connection table: for each output map, the input maps it reads (LeNet-5 C3).
    ``depthwise`` gives every channel its own filter (one group per channel, MobileNet): ``out`` equals the input
    channels and ``groups`` stays 1, so widths can change without the groups following them.
    ``padding=None`` keeps the size at stride 1 (``k // 2``).
    """

    out: int
    kernel: IntPair = 3
    stride: int = 1
    padding: IntPair | None = None
    groups: int = 1
    bias: bool = False
    separable: bool = False
    factor: str = "none"
    mid: int | None = None
    table: tuple[tuple[int, ...], ...] | None = None
    norm: str = "none"
    act: str = "none"
    depthwise: bool = field(default=False, metadata=NEW)
    op: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        # (n-1)/2 stacked 3 x 3 convs for n <= 3 is one n x n conv: the same network gets the same genome (and hash),
        # e.g. a 7 x 7 stem factorised, then shrunk to 3 x 3 for a small input
        if self.factor == "stacked" and max(pair(self.kernel)) <= 3:
            object.__setattr__(self, "factor", "none")
            object.__setattr__(self, "mid", None)


@dataclass(frozen=True)
class Pool:
    """Max or average pooling; ``adaptive`` set to an output size makes it adaptive (1 = global)."""

    kind: str = "max"
    kernel: IntPair = 2
    stride: int | None = None
    padding: int = 0
    ceil: bool = False
    count_include_pad: bool = True
    adaptive: int | None = None
    op: ClassVar[str] = "pool"


@dataclass(frozen=True)
class Act:
    """A stand-alone activation (e.g. the ReLU before Xception's separable convs)."""

    fn: str = "relu"
    op: ClassVar[str] = "act"


@dataclass(frozen=True)
class Norm:
    """A stand-alone normalisation: ``batch``, ``lrn`` (local response normalisation, ``size`` ... ``k``) or
    ``layer`` (LayerNorm over the channels at each position, with ``Genome.ln_eps``)."""

    kind: str = "lrn"
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0
    op: ClassVar[str] = "norm"


@dataclass(frozen=True)
class Dropout:
    """Dropout with probability ``p``."""

    p: float = 0.5
    op: ClassVar[str] = "dropout"


@dataclass(frozen=True)
class Linear:
    """A fully connected layer (the input is flattened first when it is a feature map)."""

    out: int
    bias: bool = True
    act: str = "none"
    op: ClassVar[str] = "linear"


@dataclass(frozen=True)
class Subsample:
    """LeNet-5's trainable subsampling: a ``kernel`` average times a coefficient plus a bias per map."""

    kernel: int = 2
    act: str = "none"
    op: ClassVar[str] = "subsample"


@dataclass(frozen=True)
class SE:
    """Squeeze-and-excitation channel attention (Hu et al. 2017): global average pool, a 1 x 1 conv to
    ``squeeze`` channels with ``act``, a 1 x 1 conv back, a sigmoid gate that scales each input channel."""

    squeeze: int
    act: str = "relu"
    op: ClassVar[str] = "se"


Op = Union[Conv, Pool, Act, Norm, Dropout, Linear, Subsample, SE]
OP_TYPES: dict[str, type] = {t.op: t for t in (Conv, Pool, Act, Norm, Dropout, Linear, Subsample, SE)}


@dataclass(frozen=True)
class Branch:
    """A path of ops; ``split`` fans its output out into parallel sub-branches, concatenated."""

    ops: tuple[Op, ...] = ()
    split: tuple[Branch, ...] = ()


@dataclass(frozen=True)
class Block:
    """Parallel branches, concatenated, then ``merge`` ops, the residual add and ``post`` ops.

    ``skip``: ``none``; ``identity`` (add the input); ``projection`` (add a strided 1 x 1 conv of the
    input, with ``skip_norm``); ``scaled`` (input + ``scale`` x residual, Inception-ResNet); ``dense``
    (the input concatenated before the output: each copy reads everything before it, DenseNet).
    ``repeat`` stacks copies of the block (the copies are separate layers).

    Behaviour of an added shortcut (inert on blocks without one), which the builder owns: ``layer_scale`` multiplies the
    residual by a learned per-channel scale initialised to it (ConvNeXt); ``drop_path`` is the first copy's
    probability of dropping the residual for a whole sample while training (stochastic depth), and each
    later copy's is ``drop_path_step`` more (the linear rule: rates grow with depth).
    """

    branches: tuple[Branch, ...]
    merge: tuple[Op, ...] = ()
    skip: str = "none"
    scale: float = 1.0
    skip_norm: str = "batch"
    post: tuple[Op, ...] = ()
    repeat: int = 1
    name: str = ""
    layer_scale: float | None = field(default=None, metadata=NEW)
    drop_path: float = field(default=0.0, metadata=NEW)
    drop_path_step: float = field(default=0.0, metadata=NEW)


@dataclass(frozen=True)
class Stage:
    """A sequence of blocks working at one resolution (the first may reduce it)."""

    blocks: tuple[Block, ...]
    name: str = ""


@dataclass(frozen=True)
class Head:
    """Ops from the last feature map to the classifier; the final layer maps to ``num_classes``.

    ``output``: ``linear`` (a trainable linear classifier) or ``rbf`` (LeNet-5's fixed Euclidean
    radial-basis units: logits are minus the squared distance to fixed +-1 centres).
    """

    ops: tuple[Op, ...] = (Pool("avg", adaptive=1),)
    output: str = "linear"


@dataclass(frozen=True)
class Aux:
    """An auxiliary classifier fed by block ``block`` (an index into the repeated blocks, negatives
    count from the end) of stage ``stage``; its loss counts ``weight`` times in training."""

    stage: int
    block: int
    ops: tuple[Op, ...]
    weight: float = 0.3


@dataclass(frozen=True)
class Input:
    """Input images: ``channels`` x ``size`` x ``size``."""

    channels: int = 3
    size: int = 224


@dataclass(frozen=True)
class Genome:
    """A whole network. ``bn_eps`` is the BatchNorm epsilon of every BatchNorm layer, ``ln_eps`` that of
    every LayerNorm; ``classes`` the number of outputs it is built with unless the caller says otherwise."""

    name: str
    stem: tuple[Block, ...]
    stages: tuple[Stage, ...]
    head: Head = field(default_factory=Head)
    aux: tuple[Aux, ...] = ()
    input: Input = field(default_factory=Input)
    classes: int = 1000
    bn_eps: float = 1e-5
    ln_eps: float = field(default=1e-6, metadata=NEW)

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self, *, defaults: bool = False) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML-safe). ``defaults=False`` omits fields at their default."""
        return _to_plain(self, defaults)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Genome:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming the path of a bad field."""
        return _from_plain(cls, d, "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> Genome:
        return cls.from_dict(json.loads(s))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, s: str) -> Genome:
        import yaml

        return cls.from_dict(yaml.safe_load(s))

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit identity of the architecture (its name excluded)."""
        d = _canonical(_to_plain(self, True, hashing=True))
        d.pop("name", None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def replace(self, **changes: Any) -> Genome:
        return dataclasses.replace(self, **changes)


def _canonical(d: Any) -> Any:
    """One spelling per network, for the hash: ``kernel=(3, 3)`` is ``kernel=3``, a pooling's ``stride=None``
    is its kernel's height (what the builder does with it)."""
    if isinstance(d, list):
        return [_canonical(v) for v in d]
    if not isinstance(d, dict):
        return d
    d = {k: _canonical(v) for k, v in d.items()}
    for k in ("kernel", "padding"):
        v = d.get(k)
        if d.get("op") in ("conv", "pool") and isinstance(v, list) and len(v) == 2 and v[0] == v[1]:
            d[k] = v[0]
    if d.get("op") == "pool" and d.get("stride") is None and d.get("adaptive") is None:
        d["stride"] = d["kernel"] if isinstance(d["kernel"], int) else d["kernel"][0]
    return d


def _to_plain(obj: Any, defaults: bool, hashing: bool = False) -> Any:
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        if hasattr(type(obj), "op"):
            out["op"] = type(obj).op
        for f in fields(obj):
            v = getattr(obj, f.name)
            if (not defaults or (hashing and f.metadata.get("new"))) and _is_default(f, v):
                continue
            out[f.name] = _to_plain(v, defaults, hashing)
        return out
    if isinstance(obj, (tuple, list)):
        return [_to_plain(v, defaults, hashing) for v in obj]
    return obj


def _is_default(f: dataclasses.Field, v: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return v == f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return v == f.default_factory()  # type: ignore[misc]
    return False


# Fields whose type is a nested dataclass or a tuple of them, resolved once by name.
_NESTED: dict[tuple[type, str], Any] = {}


def _field_kind(cls: type, name: str) -> Any:
    """'op' for a tuple of ops, a class for a tuple of / single dataclass, or None for scalars."""
    key = (cls, name)
    if key not in _NESTED:
        table = {
            (Genome, "stem"): ("tuple", Block),
            (Genome, "stages"): ("tuple", Stage),
            (Genome, "head"): ("one", Head),
            (Genome, "aux"): ("tuple", Aux),
            (Genome, "input"): ("one", Input),
            (Stage, "blocks"): ("tuple", Block),
            (Block, "branches"): ("tuple", Branch),
            (Block, "merge"): ("tuple", "op"),
            (Block, "post"): ("tuple", "op"),
            (Branch, "ops"): ("tuple", "op"),
            (Branch, "split"): ("tuple", Branch),
            (Head, "ops"): ("tuple", "op"),
            (Aux, "ops"): ("tuple", "op"),
        }
        _NESTED[key] = table.get(key)
    return _NESTED[key]


def _join(path: str, name: str) -> str:
    """Field paths as validation writes them: ``stages[0].blocks[1]`` (no prefix at the root)."""
    return f"{path}.{name}" if path else name


def _op_from_plain(d: Any, path: str) -> Any:
    if not isinstance(d, dict) or "op" not in d:
        raise ValueError(f"{path}: an op must be a mapping with an 'op' key, one of {sorted(OP_TYPES)}")
    kind = d["op"]
    if kind not in OP_TYPES:
        raise ValueError(f"{path}.op: unknown op {kind!r}; allowed: {sorted(OP_TYPES)}")
    return _from_plain(OP_TYPES[kind], d, path)


def _scalar(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_scalar(x) for x in v)
    return v


def _from_plain(cls: type, d: Any, path: str) -> Any:
    if dataclasses.is_dataclass(d):
        return d
    if not isinstance(d, dict):
        raise ValueError(f"{path or 'genome'}: expected a mapping for {cls.__name__}, got {type(d).__name__}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(map(str, set(d) - set(names) - ({"op"} if hasattr(cls, "op") else set())))
    if unknown:
        raise ValueError(f"{_join(path, unknown[0])}: unknown field of {cls.__name__}; allowed: {', '.join(names)}")
    missing = [f.name for f in fields(cls) if f.name not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ValueError(f"{_join(path, missing[0])}: required field of {cls.__name__} is missing")
    kwargs: dict[str, Any] = {}
    for name, v in d.items():
        if name == "op":
            continue
        p = _join(path, name)
        kind = _field_kind(cls, name)
        if kind is None:
            kwargs[name] = _scalar(v)
        elif kind[0] == "one":
            kwargs[name] = _from_plain(kind[1], v, p)
        else:
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"{p}: expected a list, got {type(v).__name__}")
            if kind[1] == "op":
                kwargs[name] = tuple(_op_from_plain(x, f"{p}[{i}]") for i, x in enumerate(v))
            else:
                kwargs[name] = tuple(_from_plain(kind[1], x, f"{p}[{i}]") for i, x in enumerate(v))
    return cls(**kwargs)


def expanded_blocks(stage: Stage) -> list[Block]:
    """The blocks of a stage with ``repeat`` unrolled."""
    return [b for b in stage.blocks for _ in range(b.repeat)]
