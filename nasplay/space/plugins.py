"""Plugins: packages that extend nasplay's vocabulary, found through the ``nasplay.plugins`` entry-point group.

A plugin's ``pyproject.toml`` names a module (imported: its module-level ``nasplay.register_*`` calls register) or a
function (called with no arguments)::

    [project.entry-points."nasplay.plugins"]
    mish = "nasplay_mish"

:func:`load_plugins` runs once per process, the first time a vocabulary is read (:mod:`nasplay.space.registry`) and
explicitly where a process starts to build, validate, draw or report genomes (``python -m nasplay``, every spawned
worker, ``nasplay report / describe / draw / diff``), so a broken plugin stops there with one line naming it.
``NASPLAY_DISABLE_PLUGINS=name,...`` (or ``all``) leaves plugins out. Torch-free.
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

GROUP = "nasplay.plugins"
DISABLE = "NASPLAY_DISABLE_PLUGINS"


class PluginError(ValueError):
    """A plugin failed to load, or a vocabulary entry a worker needs is not there."""


_loaded: dict[str, str] = {}  # plugin name -> what its entry point names
_error: PluginError | None = None
_done = False


def _origin(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f", from {dist.name} {dist.version}" if dist is not None else ""


def load_plugins() -> dict[str, str]:
    """Load every installed plugin once (idempotent); returns plugin name -> entry point value. A plugin that fails
    raises :class:`PluginError` naming it, its package and the cause, now and at every later call."""
    global _error, _done
    if _error is not None:
        raise _error
    if _done:
        return dict(_loaded)
    disabled = {d.strip() for d in os.environ.get(DISABLE, "").split(",") if d.strip()}
    eps = [] if "all" in disabled else sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name)
    for ep in eps:
        if ep.name in disabled or ep.name in _loaded:
            continue
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as e:  # noqa: BLE001 - any failure of a plugin is reported as the plugin's
            _error = PluginError(f"nasplay plugin {ep.name!r} ({ep.value}{_origin(ep)}) failed to load: "
                                 f"{type(e).__name__}: {e} (fix or uninstall it, or set {DISABLE}={ep.name})")
            raise _error from e
        _loaded[ep.name] = ep.value
    _done = True
    return dict(_loaded)


def loaded() -> dict[str, str]:
    """The plugins this process has loaded (name -> entry point value)."""
    return dict(_loaded)
