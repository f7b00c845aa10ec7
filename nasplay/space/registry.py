"""The vocabulary of the genome, one registry per kind: activations, norms, knobs and networks.

Every name a genome, a knob, the builder or a drawing uses is looked up here; no other module keeps a copy.
A leaf, as timm's ``_registry.py``: it imports nothing of nasplay and no torch. The built-in entries are
registered by the modules that define them (:mod:`nasplay.space.genome` the activations and norms,
:mod:`nasplay.space.knobs` the knobs, the zoo's families the networks); a plugin adds its own with the public
``nasplay.register_*`` functions (:mod:`nasplay.space.extend`), found through the ``nasplay.plugins`` entry point
(:mod:`nasplay.space.plugins`) and loaded the first time a vocabulary is read.

Blocks are data (a :class:`~nasplay.space.genome.Block` of branches of ops), not classes: a new block comes in
through a knob that rewrites a genome's blocks or ops (``register_knob``), the way ``se=on`` adds
squeeze-and-excitation to every residual block.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

E = TypeVar("E")


@dataclass(frozen=True)
class Activation:
    """An activation: ``factory()`` (or ``factory(inplace=True)`` where ``inplace``) returns its ``nn.Module``.

    ``factory`` may be a ``"module:attribute"`` string, so that the space layer names it without importing torch."""

    name: str
    factory: Any
    label: str
    inplace: bool = False  # the factory takes inplace=True (torch's ReLU, SiLU ...)
    builtin: bool = False
    module: str = ""  # the module that registered it (a worker imports it again)


@dataclass(frozen=True)
class Norm:
    """A normalisation over a feature map's channels: ``factory(channels)`` returns its ``nn.Module``.

    ``conv``: a conv op may carry it (``Conv.norm``) and the ``norm`` knob may put it where BatchNorm was;
    ``learns``: it has trainable parameters. The built-ins (batch, layer, lrn) are built by the builder itself
    (their epsilons are the genome's)."""

    name: str
    factory: Any
    label: str
    conv: bool = True
    learns: bool = True
    builtin: bool = False
    module: str = ""


@dataclass(frozen=True)
class Knob:
    """A knob: ``parse(knob, value)`` checks and normalises a value, ``apply(genome, value)`` returns the new genome.

    The built-in knobs apply in their fixed order (:mod:`nasplay.space.knobs`); a plugin's knobs apply after them, in
    the order they were registered, before the input is fitted. ``values`` describes the allowed values (a callable for
    a vocabulary that plugins may grow)."""

    name: str
    values: str | Callable[[], str]
    help: str
    example: str
    parse: Callable[[str, Any], Any]
    apply: Callable[[Any, Any], Any] | None = None  # None: a built-in, applied by nasplay.space.knobs' steps
    goes_with: str = ""
    builtin: bool = False
    module: str = ""

    def allowed(self) -> str:
        return self.values() if callable(self.values) else self.values


@dataclass(frozen=True)
class Network:
    """A named network: its generator and where it comes from."""

    name: str
    make: Callable[[], Any]
    year: int
    paper: str
    reference: str = ""  # "torchvision:NAME" or "timm:NAME" when a reference implementation exists
    canonical: bool = False  # one of the ten classic networks
    builtin: bool = False
    module: str = ""


class Vocabulary(Generic[E]):
    """One kind of name: ``name -> entry`` in registration order. Reading it loads the plugins first (once)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, E] = {}

    def add(self, entry: E, *, replace: bool = False) -> E:
        name = entry.name  # type: ignore[attr-defined]
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind} name: must be a non-empty string without surrounding spaces, got {name!r}")
        old = self._entries.get(name)
        if old is not None and not replace:
            by = getattr(old, "module", "") or "nasplay"
            raise ValueError(f"{self.kind} {name!r} is already registered (by {by}); pick another name")
        if old is not None and getattr(old, "builtin", False):
            raise ValueError(f"{self.kind} {name!r} is built in and cannot be replaced")
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Unregister a plugin's entry (tests); a built-in stays."""
        e = self._entries.get(name)
        if e is not None and not getattr(e, "builtin", False):
            del self._entries[name]

    def get(self, name: str) -> E:
        _load_plugins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown {self.kind} {name!r}{hint}; allowed: {', '.join(self._entries)}") from None

    def peek(self, name: str) -> E | None:
        """The entry or ``None``, without loading plugins (for the modules that register the built-ins)."""
        return self._entries.get(name)

    def entries(self) -> list[E]:
        _load_plugins()
        return list(self._entries.values())

    def names(self) -> tuple[str, ...]:
        _load_plugins()
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        _load_plugins()
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def extensions(self) -> dict[str, str]:
        """The plugins' names and the modules that registered them (what a spawned worker must import again)."""
        return {n: getattr(e, "module", "") for n, e in self._entries.items() if not getattr(e, "builtin", False)}


class Names(Sequence[str]):
    """A live view of the names of a vocabulary (optionally some leading names, and only the entries ``where`` accepts):
    what ``ACTIVATIONS`` / ``CONV_NORMS`` were as tuples, growing as plugins register."""

    def __init__(self, vocab: Vocabulary, lead: tuple[str, ...] = (), where: Callable[[Any], bool] | None = None):
        self._vocab, self._lead, self._where = vocab, lead, where

    def _names(self) -> tuple[str, ...]:
        return (*self._lead, *(e.name for e in self._vocab.entries() if self._where is None or self._where(e)))

    def __getitem__(self, i):  # type: ignore[override]
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Names, tuple, list)):
            return self._names() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return repr(self._names())


ACTIVATIONS: Vocabulary[Activation] = Vocabulary("activation")
NORMS: Vocabulary[Norm] = Vocabulary("norm")
KNOBS: Vocabulary[Knob] = Vocabulary("knob")
NETWORKS: Vocabulary[Network] = Vocabulary("network")
KINDS = {"activation": ACTIVATIONS, "norm": NORMS, "knob": KNOBS, "network": NETWORKS}


def extensions() -> dict[str, dict[str, str]]:
    """Every plugin entry by kind with the module that registered it (the coordinator hands this to its workers)."""
    return {kind: v.extensions() for kind, v in KINDS.items() if v.extensions()}


def import_extensions(wanted: dict[str, dict[str, str]]) -> None:
    """Make this process's vocabulary hold what another process's held (a worker, given its coordinator's
    :func:`extensions`): load the plugins, import the modules that registered the other entries,
    and raise :class:`PluginError` naming any entry still missing (registered in a ``__main__`` that a worker cannot
    import, say)."""
    from nasplay.space.plugins import GROUP, PluginError, load_plugins

    load_plugins()
    missing = []
    for kind, names in wanted.items():
        vocab = KINDS[kind]
        for name, module in names.items():
            if vocab.peek(name) is None and module and module not in ("__main__", "__mp_main__"):
                try:
                    importlib.import_module(module)
                except Exception as e:  # noqa: BLE001
                    raise PluginError(f"{kind} {name!r}: importing {module!r}, which registered it, failed: "
                                      f"{type(e).__name__}: {e}") from e
            if vocab.peek(name) is None:
                missing.append(f"{kind} {name!r} (registered by {module or 'an unknown module'})")
    if missing:
        raise PluginError(f"this process lacks {', '.join(missing)}, which the process that started it has: register it "
                          f"in an importable module, best as a plugin (entry point group {GROUP!r}; README 'Ablate your own idea')")


@dataclass
class _State:
    loading: bool = False
    loaded: bool = False


_STATE = _State()


def _load_plugins() -> None:
    """Load the installed plugins before the first read of any vocabulary (once; a broken plugin raises each time)."""
    if _STATE.loaded or _STATE.loading:
        return
    _STATE.loading = True  # a plugin that reads a vocabulary while it registers does not load the plugins again
    try:
        from nasplay.space.plugins import load_plugins  # a leaf as well; imported here so that this module stays one

        load_plugins()
        _STATE.loaded = True
    finally:
        _STATE.loading = False
