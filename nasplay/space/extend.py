"""The public way to extend the vocabulary: ``nasplay.register_activation``, ``register_norm``, ``register_knob`` (and
``nasplay.register`` for networks, in :mod:`nasplay.space.zoo.registry`).

A plugin calls these at import (its module is the entry point of the ``nasplay.plugins`` group, :mod:`nasplay.plugins`),
so every process that builds, validates, draws or reports a genome has the same names. Torch-free: a factory is
only called when a network is built. A block is data (:class:`~nasplay.space.genome.Block`), so a new block comes in
through a knob: ``register_knob(name, apply)`` with an ``apply(genome, value)`` that rewrites the genome's blocks or ops
(the walkers of :mod:`nasplay.space.knobs.tree`: ``map_ops``, ``map_blocks``, ``iter_ops``, ``refuse``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from nasplay.space import registry
from nasplay.space.knobs import parse

__all__ = ["register_activation", "register_knob", "register_norm"]


def _caller() -> str:
    return str(sys._getframe(2).f_globals.get("__name__", ""))


def register_activation(name: str, factory: Callable[..., Any] | str, *, label: str | None = None,
                        inplace: bool = False) -> None:
    """Register activation ``name``: ``factory()`` returns its ``torch.nn.Module`` (a class such as ``torch.nn.Mish``,
    a function, or a ``"module:attribute"`` string); with ``inplace=True`` the builder calls ``factory(inplace=True)``
    where the input is a fresh tensor. ``label`` names it in drawings and diffs (default: ``name``). It is then a valid
    ``act`` / ``fn`` of any op and a value of the ``activation`` knob. A name already registered raises ``ValueError``."""
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise ValueError(f"register_activation({name!r}): factory must be callable or 'module:attribute', got {factory!r}")
    registry.ACTIVATIONS.add(registry.Activation(name, factory, label or name, inplace, module=_caller()))


def register_norm(name: str, factory: Callable[[int], Any] | str, *, label: str | None = None, conv: bool = True,
                  learns: bool = True) -> None:
    """Register norm ``name``: ``factory(channels)`` returns its ``torch.nn.Module`` over an ``N, C, H, W`` map. It is a
    valid ``Norm.kind``, with ``conv`` also a conv's ``norm`` and a value of the ``norm`` knob (put where BatchNorm
    was); ``learns`` says whether it has trainable parameters."""
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise ValueError(f"register_norm({name!r}): factory must be callable or 'module:attribute', got {factory!r}")
    registry.NORMS.add(registry.Norm(name, factory, label or name, conv, learns, module=_caller()))


def register_knob(name: str, apply: Callable[[Any, Any], Any], *, values: Sequence[str] | Callable[[str, Any], Any] = ("on", "off"),
                  help: str = "", example: str | None = None, aliases: dict[str, str] | None = None,
                  allowed: str | None = None) -> None:
    """Register knob ``name``: ``apply(genome, value)`` returns a new :class:`~nasplay.space.genome.Genome` (raise
    ``nasplay.space.knobs.tree.refuse(...)`` where the value means nothing on that genome).

    ``values``: the allowed strings (``on``/``off`` accept true/false/yes/no too; ``aliases`` maps other spellings), or a
    parser ``(knob, value) -> value`` that raises ``ValueError``, with ``allowed`` describing what it takes. Plugin knobs
    apply after the built-in ones, before the network is fitted to its input. Then ``nasplay.apply(g, name=value)``,
    ``arch.knobs.NAME=value`` and ``experiment.knob=NAME`` work as for any knob."""
    if not callable(apply):
        raise ValueError(f"register_knob({name!r}): apply must be a function (genome, value) -> genome")
    if callable(values):
        parser, text = values, allowed or "see the plugin's documentation"
    else:
        vals = tuple(str(v) for v in values)
        if not vals:
            raise ValueError(f"register_knob({name!r}): values must not be empty")
        if set(vals) == {"on", "off"}:
            parser = parse.on_off()
        else:
            parser = parse.choice(*vals, aliases=aliases)
        text = allowed or " | ".join(vals)
    registry.KNOBS.add(registry.Knob(name, text, help or f"{name} (a plugin's knob)", example or f"{name}={text.split(' | ')[0]}",
                                     parser, apply, module=_caller()))
