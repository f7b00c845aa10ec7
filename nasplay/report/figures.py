"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no display).

Every figure is saved twice, as PNG (for Markdown viewers and W&B) and SVG (for papers); the functions
take plain numbers prepared by :mod:`nasplay.report.write` and return the written paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def color(i: int) -> str:
    """The i-th colour of the report's palette (cycles)."""
    return COLORS[i % len(COLORS)]


def _new(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out_dir / f"{stem}.{ext}"
        fig.savefig(p, dpi=120, metadata={"Date": None} if ext == "svg" else None)
        paths.append(p)
    return paths


def learning_curves(panels: Sequence[tuple[str, str, Mapping[str, tuple]]], out_dir: Path, stem: str = "learning_curves",
                    title: str = "") -> list[Path]:
    """One panel per metric: each arm's mean over seeds as a line and mean ± std as a band.

    ``panels`` holds ``(metric, xlabel, {arm: (x, mean, std, n)})``.
    """
    fig, axes = _new(5.2 * len(panels), 3.8, len(panels))
    for ax, (metric, xlabel, arms) in zip(axes, panels):
        for i, (arm, (x, mean, std, n)) in enumerate(arms.items()):
            x, mean, std = (np.asarray(v, dtype=float) for v in (x, mean, std))
            seeds = int(np.max(n)) if len(n) else 0
            band = np.nan_to_num(std)
            if len(x) == 1:  # one point (a one-epoch run): the band becomes an error bar
                ax.errorbar(x, mean, yerr=band, color=color(i), fmt="o", ms=4, capsize=4, label=f"{arm} (n={seeds})")
                continue
            ax.plot(x, mean, color=color(i), lw=1.6, label=f"{arm} (n={seeds})", marker="o" if len(x) < 12 else None, ms=3)
            ax.fill_between(x, mean - band, mean + band, color=color(i), alpha=0.18, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title or "learning curves (mean ± std over seeds)", fontsize=10)
    return save(fig, out_dir, stem)


def pareto(points: Mapping[str, tuple[Sequence[float], Sequence[float]]], front: tuple[Sequence[float], Sequence[float]],
           out_dir: Path, *, xlabel: str, ylabel: str, stem: str = "pareto", title: str = "", log_x: bool = True) -> list[Path]:
    """Score against cost, one colour per arm, with the Pareto front as a step line."""
    fig, (ax,) = _new(6.0, 4.2)
    for i, (arm, (x, y)) in enumerate(points.items()):  # past ten series the colours repeat: the marker changes
        ax.scatter(x, y, s=22, color=color(i), alpha=0.8, label=arm, edgecolors="none", marker="os^D"[(i // len(COLORS)) % 4])
    fx, fy = (np.asarray(v, dtype=float) for v in front)
    if len(fx):
        ax.step(fx, fy, where="post", color="black", lw=1.2, label="Pareto front")
        ax.scatter(fx, fy, s=60, facecolors="none", edgecolors="black", lw=1.0)
    xs = np.concatenate([np.asarray(x, dtype=float) for x, _ in points.values()] or [np.array([])])
    if log_x and len(xs) and np.all(xs[np.isfinite(xs)] > 0) and np.nanmax(xs) > 2 * np.nanmin(xs):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, loc="best")
    ax.set_title(title or f"{ylabel} vs {xlabel}", fontsize=10)
    return save(fig, out_dir, stem)


def effects(rows: Sequence[tuple[str, float, float, float, bool, int]], out_dir: Path, *, xlabel: str, baseline: str,
            stem: str = "effects") -> list[Path]:
    """Forest plot: ``(arm, diff, ci_low, ci_high, significant, colour index)`` rows; significant ones (the adjusted p) filled."""
    fig, (ax,) = _new(6.0, 0.9 + 0.45 * max(1, len(rows)))
    for i, (_arm, diff, lo, hi, sig, c) in enumerate(rows):
        y = len(rows) - 1 - i
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=color(c), lw=2)
        ax.scatter([diff], [y], s=50, color=color(c) if sig else "white", edgecolors=color(c), zorder=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(f"difference from {baseline}\n(95% CI; filled: better or worse, adjusted)", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return save(fig, out_dir, stem)


def effect_vs_budget(series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]],
                     out_dir: Path, *, xlabel: str, ylabel: str, baseline: str, stem: str = "budgets") -> list[Path]:
    """Each arm's difference from the baseline (95% CI) against the training budget: ``arm -> (x, diff, lo, hi)``."""
    fig, (ax,) = _new(6.0, 3.6)
    for i, (arm, (x, d, lo, hi)) in enumerate(series.items()):
        ax.errorbar(np.asarray(x), np.asarray(d), yerr=[np.asarray(d) - np.asarray(lo), np.asarray(hi) - np.asarray(d)],
                    color=color(i), marker="o", capsize=3, label=arm)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"difference from {baseline} against the budget (95% CI)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, out_dir, stem)


def tuning_curves(series: Mapping[str, tuple[Sequence[float], Sequence[float], float | None]], out_dir: Path, *,
                  xlabel: str, ylabel: str, stem: str = "tuning") -> list[Path]:
    """Per arm the tuning objective against the tuned setting (``arm -> (x, y, chosen x)``), the choice circled."""
    fig, (ax,) = _new(6.0, 3.6)
    for i, (arm, (x, y, chosen)) in enumerate(series.items()):
        ax.plot(x, y, color=color(i), marker="o", label=arm)
        if chosen is not None and chosen in list(x):
            ax.scatter([chosen], [list(y)[list(x).index(chosen)]], s=160, facecolors="none", edgecolors=color(i), lw=2)
    if all(v > 0 for xs, _, _ in series.values() for v in xs):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("per-arm tuning on seeds the comparison does not use (circled: chosen)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, out_dir, stem)


def edfs(panels: Sequence[tuple[str, Mapping[str, tuple]]], out_dir: Path, *, xlabel: str, stem: str = "edf",
         title: str = "") -> list[Path]:
    """Error EDFs, one panel per normalisation: ``(title, {arm: (xs, F, grid, band_lo, band_hi)})``."""
    fig, axes = _new(4.6 * len(panels), 3.8, len(panels))
    for ax, (name, arms) in zip(axes, panels):
        for i, (arm, (xs, F, grid, lo, hi)) in enumerate(arms.items()):
            if len(xs):
                ax.step(np.r_[xs[0], xs], np.r_[0.0, F], where="post", color=color(i), lw=1.6, label=arm)
            if grid is not None and len(grid):
                ax.fill_between(grid, lo, hi, step="post", color=color(i), alpha=0.15, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cumulative share of models")
        ax.set_ylim(0, 1.02)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.suptitle(title or "error EDFs (bands: simultaneous 95% DKW)", fontsize=10)
    return save(fig, out_dir, stem)
