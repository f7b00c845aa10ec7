"""Command-line overrides checked against the schema before Hydra composes, so that a misspelt key is
named together with the keys that are allowed (Hydra itself only says that the key is not in the struct)."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import types
import typing
from typing import Any

from nasplay.private_api import hydra_args_parser
from nasplay.sweep.config import NasplayConfig

GROUPS = ("arch", "data", "optim", "trainer", "logger", "sweep", "experiment", "debug")


def check_overrides(args: list[str]) -> str | None:
    """The first problem with the ``KEY=VALUE`` overrides in ``args`` (Hydra's argv), or ``None``."""

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):  # --version, --help
            parsed = hydra_args_parser().parse_args(args)
    except SystemExit:  # a command line argparse refuses: Hydra says so itself, once
        return None
    if parsed.shell_completion or parsed.info is not None:  # `-sc install=bash`, `-sc query=bash`: Hydra's commands
        return None
    overrides = parsed.overrides
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~").strip()
        if "=" not in item or not key or key.startswith(("hydra.", "hydra/")) or key in GROUPS or "/" in key:
            continue  # group choices and Hydra's own keys: Hydra lists the allowed options itself
        problem = check_key(key)
        if problem:
            return problem
    return None


def check_key(key: str) -> str | None:
    """``None`` when the dotted ``key`` exists in the schema, else a message with the allowed keys."""
    cls: Any = NasplayConfig
    done: list[str] = []
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return None if _is_mapping(cls) else f"'{key}': {'.'.join(done)} is a value, it has no key {part!r}"
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            where = ".".join(done) or "the root config"
            close = difflib.get_close_matches(part, names, n=2, cutoff=0.6)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            groups = f"; config groups: {', '.join(GROUPS)}" if not done else ""
            return f"unknown key '{key}'{hint}: {where} has {', '.join(names)}{groups}"
        cls = hints[part]
        done.append(part)
        cls = _unwrap_optional(cls)
    return None


def _unwrap_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def _is_mapping(tp: Any) -> bool:
    return tp is Any or typing.get_origin(tp) is dict or tp is dict

