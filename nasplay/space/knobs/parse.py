"""Knob values as they arrive from Python, Hydra or the command line (``"0.5"``, ``"1x28"``, ``"3,4,6,3"``)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nasplay.space.knobs.tree import KnobError, show

Parser = Callable[[str, Any], Any]

_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


def _bad(knob: str, value: Any, allowed: str, why: str = "") -> KnobError:
    return KnobError(f"{knob}={show(value)!r} is not allowed{': ' + why if why else ''}; allowed: {allowed}")


def choice(*allowed: str, aliases: dict[str, str] | None = None) -> Parser:
    """One of ``allowed`` (case-insensitive); ``aliases`` maps other spellings onto them."""
    aliases = aliases or {}

    def parse(knob: str, value: Any) -> str:
        if isinstance(value, bool) and value in (True, False):
            value = "on" if value else "off"
        v = str(value).strip().lower()
        v = aliases.get(v, v)
        if v not in allowed:
            raise _bad(knob, value, " | ".join(allowed))
        return v

    parse.allowed = " | ".join(allowed)  # type: ignore[attr-defined]
    return parse


def live_choice(names: Callable[[], Sequence[str]], aliases: dict[str, str] | None = None) -> Parser:
    """:func:`choice` over a vocabulary that plugins may grow: ``names()`` is read at every call."""
    aliases = aliases or {}

    def parse(knob: str, value: Any) -> str:
        return choice(*names(), aliases=aliases)(knob, value)

    return parse


def on_off() -> Parser:
    return choice("on", "off", aliases={**{t: "on" for t in _TRUE}, **{f: "off" for f in _FALSE}})


def number(kind: type, lo: float, hi: float | None = None, *, lo_open: bool = False) -> Parser:
    """An int or a float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def parse(knob: str, value: Any) -> int | float:
        rng = f"{'(' if lo_open else '['}{lo:g}, {'inf)' if hi is None else f'{hi:g}]'}"
        what = f"{'an integer' if kind is int else 'a number'} in {rng}"
        try:
            if isinstance(value, bool):
                raise ValueError
            if kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                v: int | float = int(value) if not isinstance(value, str) else int(value.strip())
            else:
                v = float(value)
        except (TypeError, ValueError):
            raise _bad(knob, value, what) from None
        if not math.isfinite(v) or (v <= lo if lo_open else v < lo) or (hi is not None and v > hi):
            raise _bad(knob, value, what)
        return v

    return parse


def _ints(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,xX×*()\[\]]+", text.strip()) if t]


def depth(knob: str, value: Any) -> float | tuple[int, ...]:
    """A multiplier (``2``, ``"0.5"``) or per-stage block counts (``"3,4,6,3"``, ``[3, 4, 6, 3]``)."""
    allowed = "a multiplier > 0 (e.g. 2 or 0.5) or one block count per stage (e.g. 3,4,6,3)"
    if isinstance(value, str) and not re.search(r"[,\[\]()\s]", value.strip()):
        return number(float, 0, lo_open=True)(knob, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number(float, 0, lo_open=True)(knob, value)
    items = _ints(value) if isinstance(value, str) else list(value) if isinstance(value, Sequence) else None
    if not items:
        raise _bad(knob, value, allowed)
    try:
        counts = tuple(number(int, 1)(knob, v) for v in items)
    except KnobError:
        raise _bad(knob, value, allowed, "block counts are integers >= 1") from None
    return counts  # type: ignore[return-value]


def input_spec(knob: str, value: Any) -> tuple[int | None, int]:
    """``32`` / ``"32"`` (size), ``"1x28"`` / ``(1, 28)`` (channels, size), ``"3x32x32"`` -> ``(channels | None, size)``."""
    allowed = "a size (32), or channels and size (1x28, '(1, 28)', 3x32x32)"
    if isinstance(value, Mapping):  # {channels: 1, size: 28}, as a Hydra config may give it
        value = (value.get("channels"), value["size"]) if "size" in value else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = _ints(value)
    elif isinstance(value, Sequence):
        items = [v for v in value if v is not None]
    else:
        raise _bad(knob, value, allowed)
    try:
        nums = [number(int, 1)(knob, v) for v in items]
    except KnobError:
        raise _bad(knob, value, allowed, "channels and size are integers >= 1") from None
    if len(nums) == 1:
        return None, int(nums[0])
    if len(nums) == 2:
        return int(nums[0]), int(nums[1])
    if len(nums) == 3 and nums[1] == nums[2]:
        return int(nums[0]), int(nums[1])
    raise _bad(knob, value, allowed, "inputs are square")


def format_value(v: Any) -> str:
    """A knob value as it appears in arm names and tags: ``none``, ``0.5``, ``1,2,2,1``."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return ",".join(format_value(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return "null" if v is None else str(v)
