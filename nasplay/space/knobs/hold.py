"""Holding compute: every way an arm's network is brought to a reference's params or FLOPs, in one place.

The genome package only describes and transforms networks; counting FLOPs needs a build, so the measure is
passed in (as pycls keeps complexity scaling beside the models): :func:`nasplay.complexity.measure` counts
the network exactly as the genome describes it (its input, its classes). Two ways hold compute:

- :func:`solve_widths`: a uniform width multiplier (``keep=flops|params``, to the network's own compute or to
  another network's, ``experiment.keep_to``);
- :func:`solve_knob`: one integer knob re-solved instead (``experiment.keep_by=group_width``: ResNeXt's
  templates re-solve only the channels per group of the grouped convs).

Either way, :func:`check_groups` refuses a result whose grouped convs were left with fewer than
``MIN_GROUP_WIDTH`` channels per group.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from nasplay.space.genome import Genome
from nasplay.space.knobs.tree import KnobError
from nasplay.space.knobs.widths import scale_widths
from nasplay.space.knobs.wiring import grouping

KEEPS = ("flops", "params")
# A genome's compute by one of KEEPS: params (auxiliary heads excluded: they only train) or FLOPs, counted on
# the network as built (nasplay.complexity.measure); passed in, as the genome package builds nothing.
Measure = Callable[[Genome, str], int]
WIDTH_RANGE = (1 / 64, 64.0)
# ResNeXt's narrowest template (Table 3) is 32x4d: fewer channels per group is another network (towards depthwise).
MIN_GROUP_WIDTH = 4


def solve_widths(g: Genome, reference: Genome, keep: str, tol: float, measure: Measure) -> Genome:
    """``g`` with a uniform width multiplier that brings its ``keep`` within ``tol`` of ``reference``'s:
    widths in multiples of 8 where that lands, else of 1 (8-channel steps of small layers can jump past
    a tight tolerance)."""
    target = measure(reference, keep)
    f = measure(g, keep)
    if abs(f / target - 1) <= tol:
        return g
    best = (abs(f / target - 1), 1.0, f)
    for quantum in (8, 1):
        found, best = _search(g, target, f, keep, tol, quantum, best, measure)
        if found is not None:
            return found
    _, bm, bv = best
    raise KnobError(f"keep={keep!r}: no uniform width multiplier brings {g.name} within {tol:.1%} of {target:,} {keep} "
                    f"(closest: {bv:,} at width {bm:.4g}); try a larger tol")


def _search(g: Genome, target: int, f: int, keep: str, tol: float, quantum: int,
            best: tuple[float, float, int], measure: Measure) -> tuple[Genome | None, tuple[float, float, int]]:
    """Secant steps on log(value) against log(multiplier), kept inside a bracket (values step with the
    rounding, so the bracket, not the slope, guarantees progress)."""
    lo: tuple[float, int] | None = None  # (multiplier, value) below the target
    hi: tuple[float, int] | None = None

    def note(m: float, v: int) -> None:
        nonlocal lo, hi, best
        if v < target and (lo is None or m > lo[0]):
            lo = (m, v)
        if v > target and (hi is None or m < hi[0]):
            hi = (m, v)
        best = min(best, (abs(v / target - 1), m, v))

    note(1.0, f)
    m = (target / f) ** 0.5  # convs dominate and grow with the square of the width
    for _ in range(40):
        m = min(max(m, WIDTH_RANGE[0]), WIDTH_RANGE[1])
        try:
            cand = scale_widths(g, m, knob=f"keep={keep!r}", quantum=quantum)
        except KnobError as e:
            raise KnobError(f"keep={keep!r} cannot re-solve the widths of {g.name}: {e}") from None
        v = measure(cand, keep)
        if abs(v / target - 1) <= tol:
            return cand, best
        note(m, v)
        if lo is not None and hi is not None:
            if hi[0] / lo[0] < 1 + 1e-3:
                break
            t = math.log(target / lo[1]) / math.log(hi[1] / lo[1]) if hi[1] != lo[1] else 0.5
            t = min(max(t, 0.1), 0.9)  # stay inside the bracket, or a flat step stalls the secant
            m = math.exp(math.log(lo[0]) + t * math.log(hi[0] / lo[0]))
        else:
            if m in WIDTH_RANGE:
                break
            m *= (target / v) ** 0.5
    return None, best


def solve_knob(candidate: Callable[[int], Genome], start: int, reference: Genome, keep: str, tol: float,
               measure: Measure, *, name: str, label: str) -> Genome:
    """``candidate(v)`` (the network with the integer knob ``name`` at ``v``) at the value whose ``keep`` is closest to
    ``reference``'s; the search starts at ``start`` (the arm's own value, else the one its other knobs leave) and
    assumes the measure grows with the knob. Refused, naming the closest value, when none is within ``tol``
    (``label`` names the network in the message)."""
    target = measure(reference, keep)
    cache: dict[int, tuple[Genome, int]] = {}

    def at(v: int) -> tuple[Genome, int]:
        if v not in cache:
            cand = candidate(v)
            cache[v] = (cand, measure(cand, keep))
        return cache[v]

    v = max(1, int(start))
    step = 1 if at(v)[1] < target else -1
    # walk (doubling) to the other side of the target, then bisect; the measure grows with the knob
    lo, hi = (v, None) if step > 0 else (None, v)
    jump = 1
    while (hi is None or lo is None) and jump < 1 << 16:
        w = v + step * jump
        if w < 1:
            lo = None
            break
        if (at(w)[1] >= target) == (step > 0):
            lo, hi = (v, w) if step > 0 else (w, v)
            break
        v, jump = w, jump * 2
    if lo is not None and hi is not None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if at(mid)[1] < target else (lo, mid)
    best = min(cache, key=lambda k: (abs(cache[k][1] / target - 1), k))
    cand, value = cache[best]
    if abs(value / target - 1) > tol:
        raise KnobError(f"keep={keep!r} by {name}: no {name} brings {label} within {tol:.1%} of {target:,} {keep} "
                        f"(closest: {value:,} at {name}={best}); try a larger experiment.tol")
    return cand.replace(name=f"{cand.name}+keep={keep}")


def current_value(g: Genome, name: str) -> int:
    """The value of integer knob ``name`` a genome has (group_width: channels per group of its first grouped block)."""
    found = grouping(g)
    if name != "group_width" or found is None:
        raise ValueError(f"experiment.keep_by={name}: {g.name} has no bottleneck blocks whose {name} could be re-solved")
    return found[1]


def check_groups(g: Genome, keep: str) -> Genome:
    """Refuse a genome whose widths, re-solved to hold compute, left its grouped convs with fewer than
    ``MIN_GROUP_WIDTH`` channels per group: holding compute must not turn a ResNeXt into another network."""
    found = grouping(g)
    if found and found[0] > 1 and found[1] < MIN_GROUP_WIDTH:
        groups, width = found
        raise KnobError(f"keep={keep!r} leaves {g.name} with {groups} groups of {width} channel(s) (fewer than "
                        f"{MIN_GROUP_WIDTH}, ResNeXt's narrowest template 32x4d): widen arch.knobs.width or use fewer groups")
    return g
