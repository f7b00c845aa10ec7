"""The knobs: the innovations of the classic CNNs as pure transforms ``Genome -> Genome``.

``apply(genome, skip="none", input=32)`` returns a new, validated genome; ``knobs()`` lists every knob with
the values it takes. A knob works on every network where it means something and raises a ``ValueError``
naming the knob, the value, why, and the allowed values where it does not. Values may be strings, as they
come from the command line (``nasplay describe resnet50 skip=none width=0.5 input=1x28``).

Knobs apply in a fixed order whatever order they are given in (structure first, the input size last, so
the network is fitted to the input as it finally is); ``keep="flops" | "params"`` then re-solves a uniform
width multiplier so the result's FLOPs or params (aux heads excluded) are within ``tol`` of the original's
(at the same input, when ``input`` is given).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from nasplay.space import registry
from nasplay.space.genome import ACTIVATIONS, POOL_KINDS, Genome
from nasplay.space.knobs import branches, heads, hold, inputs, modern, ops, parse, roadmap, widths, wiring
from nasplay.space.knobs.hold import Measure
from nasplay.space.knobs.tree import KnobError, show
from nasplay.space.shapes import walk
from nasplay.space.zoo import get_genome

__all__ = ["KnobError", "KnobSpec", "apply", "knobs"]


@dataclass(frozen=True)
class KnobSpec:
    """One knob: its name, the values it takes, what it does, an example; ``goes_with`` names the knob a
    companion refines (``skip_scale`` goes with ``skip``)."""

    name: str
    values: str
    help: str
    example: str
    goes_with: str = ""

    def __str__(self) -> str:
        extra = f" (with {self.goes_with})" if self.goes_with else ""
        return f"{self.name}: {self.values}{extra}\n    {self.help}\n    e.g. {self.example}"


class KnobTable(Mapping[str, KnobSpec]):
    """Every knob by name (the built-in ones, then the plugins'); ``print()`` it for a readable list."""

    def __init__(self, specs: dict[str, KnobSpec]):
        self._specs = specs

    def __getitem__(self, name: str) -> KnobSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __str__(self) -> str:
        return "\n".join(str(s) for s in self._specs.values())

    def __repr__(self) -> str:
        return f"KnobTable({', '.join(self._specs)})"


def _acts() -> tuple[str, ...]:
    """The values of the activation knob: every registered activation but none (plugins' included)."""
    return tuple(a for a in ACTIVATIONS if a != "none")


def _acts_text() -> str:
    return " | ".join(_acts())


_ON_OFF = parse.on_off()


def _layer_scale(knob: str, value: Any) -> float | None:
    if str(value).strip().lower() in ("off", "none", "false", "no"):
        return None
    return parse.number(float, 0, lo_open=True)(knob, value)


def _rate(knob: str, value: Any) -> float:
    v = parse.number(float, 0, 1)(knob, value)
    if v >= 1:
        raise KnobError(f"{knob}={show(value)!r} is not allowed; allowed: a number in [0, 1)")
    return v

# The built-in knobs, registered in nasplay.space.registry.KNOBS below. name: (values, help, example, parser, goes_with)
_TABLE: dict[str, tuple[str | Callable[[], str], str, str, parse.Parser, str]] = {
    "depth": ("a multiplier > 0, or one block count per stage (3,4,6,3)",
              "Blocks per stage; the stage's repeating block takes the difference (vgg16 + depth=2,2,4,4,4 is vgg19).",
              "depth=3,4,23,3", parse.depth, ""),
    "bottleneck": ("on | off", "1x1 reductions: off turns bottleneck blocks into basic pairs of k x k convs (resnet50 -> "
                   "resnet34) and drops the 1x1 reduce convs of Inception towers; on turns basic blocks into bottlenecks.",
                   "bottleneck=off", _ON_OFF, ""),
    "cardinality": ("an integer >= 1", "Groups of the k x k conv of bottleneck blocks (ResNeXt), or of the grouped "
                    "tower convs (the two-tower AlexNet); alone it keeps the width.", "cardinality=32", parse.number(int, 1), ""),
    "group_width": ("an integer >= 1", "Channels per group at the first bottleneck stage (later stages keep their "
                    "ratio, as torchvision's width_per_group); alone it keeps the groups.", "group_width=4",
                    parse.number(int, 1), "cardinality"),
    "branches": (" | ".join(branches.VALUES), "Parallel towers: single keeps each multi-branch block's deepest tower, "
                 "widened to the block's concatenated output (one path, as a plain network); multi leaves the towers.",
                 "branches=single", parse.choice(*branches.VALUES, aliases={"one": "single", "towers": "multi"}), ""),
    "width": ("a multiplier > 0", "Every conv and hidden FC width times it, rounded to multiples of 8 and of the groups.",
              "width=0.5", parse.number(float, 0, lo_open=True), ""),
    "expand": ("a number > 0", "Inverted bottlenecks (MobileNetV2, EfficientNet, ConvNeXt): the hidden width of "
               "each block's 1x1 expansion is this times the block's input channels, rounded to 8.", "expand=4",
               parse.number(float, 0, lo_open=True), ""),
    "depthwise": (" | ".join(roadmap.DEPTHWISE), "on: the k x k conv of residual blocks that keeps its width becomes "
                  "depthwise (ConvNeXt's ResNeXt-ify); first: also moved to the front of the block, at its input width; "
                  "off: full convs.", "depthwise=on", parse.choice(*roadmap.DEPTHWISE, aliases={"true": "on",
                                                                                               "false": "off"}), ""),
    "kernel": ("an odd integer >= 1", "The k x k convs of residual blocks become this size (ConvNeXt: 7).", "kernel=7",
               parse.number(int, 1), ""),
    "separable": ("on | off", "Depthwise + pointwise convs (Xception): off makes them full convs; on splits every full "
                  "k x k conv after the stem.", "separable=off", _ON_OFF, ""),
    "factorize": (" | ".join(ops.FACTORIZE), "n x n convs as one conv, as (n-1)/2 stacked 3x3s (n >= 5), or as 1 x n + "
                  "n x 1 (n >= 3), as in Inception-v3.", "factorize=asymmetric",
                  parse.choice(*ops.FACTORIZE, aliases={"off": "none", "false": "none"}), ""),
    "skip": (" | ".join(wiring.SKIPS), "Residual shortcuts: none removes them; identity (a projection where shapes differ, "
             "ResNet's option B), projection (everywhere) or scaled (identity x scale, Inception-ResNet) rewire a residual "
             "network's blocks, or add shortcuts to every stage block of a plain one.", "skip=none",
             parse.choice(*wiring.SKIPS, aliases={"off": "none", "false": "none", "on": "identity", "true": "identity"}), ""),
    "skip_scale": ("a number > 0 (default 0.2)", "The residual scale of scaled shortcuts.", "skip_scale=0.1",
                   parse.number(float, 0, lo_open=True), "skip"),
    "downsample": (" | ".join(roadmap.DOWNSAMPLE), "separate: a stage's stride and width change move out of its first "
                   "residual block into a layer of their own (norm, s x s conv at stride s), plus a norm after the "
                   "head's pooling (ConvNeXt).", "downsample=separate", parse.choice(*roadmap.DOWNSAMPLE), ""),
    "dense": ("on | off", "Dense connectivity (DenseNet): on makes residual blocks that keep their grid concatenate "
              "their input instead of adding it; off makes dense blocks plain.", "dense=off", _ON_OFF, ""),
    "se": ("on | off", "Squeeze-and-excitation channel attention (SENet): on adds it after the last conv of every "
           "residual block (squeeze 1/16, rounded to 8), off removes it.", "se=on", _ON_OFF, ""),
    "block_acts": (" | ".join(roadmap.ONE_ALL), "one: a residual block keeps one activation, after its widest conv, "
                   "and none after the addition (ConvNeXt's fewer activations); all: one after every conv.",
                   "block_acts=one", parse.choice(*roadmap.ONE_ALL), ""),
    "block_norms": (" | ".join(roadmap.ONE_ALL), "one: a residual block keeps the norm of its first conv only "
                    "(ConvNeXt's fewer norms); all: a norm after every conv.", "block_norms=one",
                    parse.choice(*roadmap.ONE_ALL), ""),
    "drop_path": ("a number in [0, 1)", "Stochastic depth: residual blocks drop their residual in training with a "
                  "probability growing linearly from 0 to this at the last block (0: off).", "drop_path=0.1", _rate, ""),
    "layer_scale": ("a number > 0, or off", "A learned per-channel scale on every residual, initialised to this "
                    "(ConvNeXt: 1e-6).", "layer_scale=1e-6", _layer_scale, ""),
    "activation": (_acts_text, "Every activation of the network.", "activation=tanh",
                   parse.live_choice(_acts, aliases={"swish": "silu", "leakyrelu": "leaky_relu"}), ""),
    "norm": (lambda: " | ".join(ops.NORMS), "batch: BatchNorm after every conv; none: no normalisation (convs get a bias); lrn: "
             "local response normalisation after the first two k x k convs, as in AlexNet; layer: LayerNorm where "
             "BatchNorm was (ConvNeXt); a plugin's norm goes where layer would.", "norm=batch",
             parse.live_choice(lambda: tuple(ops.NORMS), aliases={"bn": "batch", "batchnorm": "batch", "off": "none", "ln": "layer",
                                               "layernorm": "layer"}), ""),
    "pool_kind": (" | ".join(POOL_KINDS), "Max or average downsampling pools (LeNet's trainable subsampling becomes "
                  "a pool).", "pool_kind=avg", parse.choice(*POOL_KINDS, aliases={"average": "avg"}), ""),
    "pool": (" | ".join(ops.POOL_GEOMETRY), "Overlapping (3/2, AlexNet) or non-overlapping (2/2, VGG) downsampling pools.",
             "pool=nonoverlap", parse.choice(*ops.POOL_GEOMETRY, aliases={"overlapping": "overlap", "nonoverlapping":
                                                                          "nonoverlap", "non-overlapping": "nonoverlap"}), ""),
    "stem": (" | ".join(modern.STEMS), "patchify: the stem becomes one k x k conv at stride k (its total stride), "
             "with bias and the network's norm, as ConvNeXt's patch embedding.", "stem=patchify",
             parse.choice(*modern.STEMS), ""),
    "aux": ("on | off", "Auxiliary classifiers: off removes them; on adds GoogLeNet's on the penultimate stage of deep "
            "networks that have none.", "aux=off", _ON_OFF, ""),
    "head": (" | ".join(heads.HEADS), "The classifier: an FC stack with dropout (AlexNet, VGG) or global average "
             "pooling straight to the classifier.", "head=gap", parse.choice(*heads.HEADS), ""),
    "head_width": ("an integer >= 1 (default 4096)", "Hidden width of an FC head.", "head_width=1024",
                   parse.number(int, 1), "head"),
    "input": ("a size (32), or channels x size (1x28)", "Fit the network to these images: below the native size the "
              "stem stops downsampling (CIFAR-style) and the body too where the map would vanish.", "input=1x28",
              parse.input_spec, ""),
}

# Transforms in the order they apply, each with the knobs it consumes.
_STEPS: tuple[tuple[tuple[str, ...], Callable[[Genome, dict[str, Any]], Genome]], ...] = (
    (("depth",), lambda g, v: wiring.depth(g, v["depth"])),
    (("bottleneck",), lambda g, v: wiring.bottleneck(g, v["bottleneck"])),
    (("cardinality", "group_width"), lambda g, v: wiring.cardinality(g, v.get("cardinality"), v.get("group_width"))),
    (("branches",), lambda g, v: branches.branches(g, v["branches"])),
    (("width",), lambda g, v: widths.scale_widths(g, v["width"])),
    (("expand",), lambda g, v: modern.expand(g, v["expand"])),
    (("depthwise",), lambda g, v: roadmap.depthwise(g, v["depthwise"])),
    (("kernel",), lambda g, v: roadmap.kernel(g, v["kernel"])),
    (("separable",), lambda g, v: ops.separable(g, v["separable"])),
    (("factorize",), lambda g, v: ops.factorize(g, v["factorize"])),
    (("stem",), lambda g, v: modern.stem(g, v["stem"])),
    (("skip", "skip_scale"), lambda g, v: wiring.skip(g, v.get("skip"), v.get("skip_scale"))),
    (("downsample",), lambda g, v: roadmap.downsample(g, v["downsample"])),
    (("dense",), lambda g, v: modern.dense(g, v["dense"])),
    (("se",), lambda g, v: modern.se(g, v["se"])),
    (("block_acts",), lambda g, v: roadmap.block_acts(g, v["block_acts"])),
    (("block_norms",), lambda g, v: roadmap.block_norms(g, v["block_norms"])),
    (("drop_path",), lambda g, v: modern.drop_path(g, v["drop_path"])),
    (("layer_scale",), lambda g, v: modern.layer_scale(g, None if v["layer_scale"] == "off" else v["layer_scale"])),
    (("activation",), lambda g, v: ops.activation(g, v["activation"], _acts_text())),
    (("norm",), lambda g, v: ops.norm(g, v["norm"])),
    (("pool_kind",), lambda g, v: ops.pool_kind(g, v["pool_kind"])),
    (("aux",), lambda g, v: heads.aux(g, v["aux"])),
    (("head", "head_width"), lambda g, v: heads.head(g, v.get("head"), v.get("head_width"))),
    (("input",), lambda g, v: inputs.adapt_input(g, *v["input"])),
    # After the input: a pool's geometry changes while its output size is held, at the sizes the network sees.
    (("pool",), lambda g, v: ops.pool(g, v["pool"])),
)

for _name, _t in _TABLE.items():
    if registry.KNOBS.peek(_name) is None:
        registry.KNOBS.add(registry.Knob(_name, _t[0], _t[1], _t[2], _t[3], None, _t[4], builtin=True, module=__name__))
assert sorted(n for names, _ in _STEPS for n in names) == sorted(_TABLE), "every knob has one step"
_INPUT = next(i for i, (names, _) in enumerate(_STEPS) if names == ("input",))


def _steps() -> tuple[tuple[tuple[str, ...], Callable[[Genome, dict[str, Any]], Genome]], ...]:
    """Every knob's transform in the order they apply: the built-in ones, the plugins' (in the order they registered)
    before the input is fitted, then the input and the pools' geometry."""
    plugins = tuple(((e.name,), _plugin_step(e)) for e in registry.KNOBS.entries() if not e.builtin)
    return _STEPS[:_INPUT] + plugins + _STEPS[_INPUT:]


def _plugin_step(e: registry.Knob) -> Callable[[Genome, dict[str, Any]], Genome]:
    def step(g: Genome, v: dict[str, Any]) -> Genome:
        out = e.apply(g, v[e.name])  # type: ignore[misc]
        if not isinstance(out, Genome):
            raise KnobError(f"{e.name}: the plugin's transform ({e.module or 'unknown module'}) returned "
                            f"{type(out).__name__}, not a Genome")
        return out

    return step


def knobs() -> KnobTable:
    """Every knob by name with its allowed values, help and an example (``print(nasplay.knobs())``)."""
    return KnobTable({e.name: KnobSpec(e.name, e.allowed(), e.help, e.example, e.goes_with) for e in registry.KNOBS.entries()})


def _parse_keep(keep: Any, tol: Any) -> tuple[str | None, float]:
    if keep is not None and str(keep).strip().lower() not in ("none", "", "off"):
        keep = parse.choice(*hold.KEEPS)("keep", keep)
    else:
        keep = None
    return keep, float(parse.number(float, 0, 1, lo_open=True)("tol", tol))


def _text(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(show(v))


def _label(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_text(v)}" for k, v in values.items())


def _show_input(v: tuple[int | None, int], g: Genome) -> str:
    return f"{v[0] or g.input.channels}x{v[1]}"


def apply(genome: Genome | str, *, keep: str | None = None, tol: float = 0.02, measure: Measure | None = None,
          **knobs: Any) -> Genome:
    """A new genome: ``genome`` (or the zoo name) with ``knobs`` applied, validated; with ``keep="flops"`` or
    ``"params"``, its widths re-solved so that ``measure(genome, keep)`` stays within ``tol`` of the original's.

    The genome package only describes and transforms networks; counting FLOPs needs a build, so the
    measure comes from outside: :func:`nasplay.apply` passes :func:`nasplay.complexity.measure`, which
    counts the network exactly as ``genome`` describes it (its input, its classes).
    """
    if isinstance(genome, str):
        genome = get_genome(genome)
    if not isinstance(genome, Genome):
        raise ValueError(f"genome: expected a Genome or a zoo name, got {type(genome).__name__}")
    walk(genome)
    names = registry.KNOBS.names()
    unknown = [k for k in knobs if k not in names]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, [*names, "keep", "tol"], n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KnobError(f"unknown knob {k!r}; {hint}knobs: {', '.join(names)} (and keep, tol)")
    values = {k: registry.KNOBS.get(k).parse(k, v) for k, v in knobs.items() if v is not None}
    if "layer_scale" in values and values["layer_scale"] is None:
        values["layer_scale"] = "off"  # parsed: None means off, kept apart from a knob not given
    keep_, tol_ = _parse_keep(keep, tol)
    if keep_ and measure is None:
        raise KnobError(f"keep={keep_!r} needs a measure of {keep_} (nasplay.apply measures with nasplay.complexity; "
                        "space.knobs.apply takes measure=)")
    if keep_ and "width" in values:
        raise KnobError(f"keep={keep_!r} re-solves the width multiplier itself; drop width={show(values['width'])!r} or keep")
    out = genome
    steps = _steps()
    for names, step in steps:
        given = {n: values[n] for n in names if n in values}
        if not given:
            continue
        try:
            out = step(out, given)
            walk(out)
        except KnobError:
            raise
        except ValueError as e:
            raise KnobError(f"{_label(given)} on {out.name} gives an invalid genome: {e}") from None
        # Later knobs' messages say what they were applied to ("... on resnet50+bottleneck=off: ...").
        out = out.replace(name=f"{out.name}+{_label(given).replace(' ', '+')}")
    if keep_:
        reference = inputs.adapt_input(genome, *values["input"]) if "input" in values else genome
        out = hold.solve_widths(out, reference, keep_, tol_, measure)
        walk(out)
    if not values and not keep_:
        return genome
    shown = {n: _show_input(values[n], genome) if n == "input" else _text(values[n]) for names, _ in steps for n in names if n in values}
    name = genome.name + "".join(f"+{k}={v}" for k, v in shown.items()) + (f"+keep={keep_}" if keep_ else "")
    return out.replace(name=name)
