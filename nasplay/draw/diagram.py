"""Compact architecture diagrams drawn from the genome alone, and the poster of the ten classic CNNs.

``layout_genome`` builds the layout model (boxes, edges, frames, texts; see ``nasplay.draw``),
``draw_genome`` writes it as SVG or PNG, ``diagram_svg`` returns the SVG text (for HTML reports and
``wandb.Html``). Importing this module imports neither torch nor matplotlib; drawing does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from nasplay.complexity import complexity
from nasplay.draw.layout import layout
from nasplay.draw.model import Diagram, Text
from nasplay.draw.page import legend, merge, row_pack, row_positions, titled
from nasplay.draw.render import render, save, to_svg
from nasplay.space.genome import Genome
from nasplay.space.zoo import CANONICAL, entry, get_genome, list_genomes

# Names the papers use, for titles; any other genome is titled by its own name.
DISPLAY_NAMES = {
    "lenet5": "LeNet-5", "alexnet": "AlexNet", "vgg16": "VGG-16", "inception_v1": "Inception-v1 (GoogLeNet)",
    "inception_v3": "Inception-v3", "resnet50": "ResNet-50", "xception": "Xception", "inception_v4": "Inception-v4",
    "inception_resnet_v2": "Inception-ResNet-v2", "resnext50_32x4d": "ResNeXt-50 (32×4d)",
    "densenet121": "DenseNet-121", "mobilenet_v1": "MobileNet v1", "seresnet50": "SE-ResNet-50",
    "mobilenet_v2": "MobileNet v2", "efficientnet_b0": "EfficientNet-B0", "regnet_y_400mf": "RegNetY-400MF",
    "convnext_tiny": "ConvNeXt-T",
}
# The second poster: the decade after the ten, 2016-2022 (issue 14).
DECADE = ("densenet121", "mobilenet_v1", "seresnet50", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf",
          "convnext_tiny")
POSTER_TITLES = {"classic": "The classic CNNs, drawn from their genomes",
                 "decade": "The decade after, 2016-2022, drawn from the same genome"}
POSTER_PANEL_HEIGHTS = (4.8, 5.6, 6.6, 7.8)  # inches: a network taller than its panel wraps into columns
POSTER_ASPECT = 1.5  # width / height the poster aims at


def si(n: float) -> str:
    """``25557032`` -> ``25.6 M``; three significant digits."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:#.3g}".rstrip(".") + f" {unit}"
    return f"{n:g}"


def as_genome(genome: Genome | str) -> Genome:
    if isinstance(genome, str):
        return get_genome(genome)
    return genome


def zoo_entry(genome: Genome):
    """The zoo entry ``genome`` is (same name and same architecture), or None."""
    if genome.name in list_genomes() and get_genome(genome.name).hash == genome.hash:
        return entry(genome.name)
    return None


def stats_text(genome: Genome) -> str:
    """``25.6 M params · 8.18 GFLOPs`` (aux-head params said apart), from ``nasplay.complexity``."""
    c = complexity(genome)
    text = f"{si(c.params - c.params_aux)} params"
    if c.params_aux:
        text += f" (+{si(c.params_aux)} in aux heads)"
    return f"{text} · {si(c.flops)}FLOPs"


def titles(genome: Genome, stats: bool = True) -> tuple[str, str]:
    """Title (name, params, FLOPs) and subtitle (input, hash, paper) of a genome's diagram."""
    title = DISPLAY_NAMES.get(genome.name, genome.name) if zoo_entry(genome) else genome.name
    if stats:
        title += " — " + stats_text(genome)
    c, s = genome.input.channels, genome.input.size
    sub = f"input {c}×{s}×{s} · {genome.classes} classes · genome {genome.hash}"
    e = zoo_entry(genome)
    if e is not None:
        sub += f" · {e.paper}"
    return title, sub


def layout_genome(genome: Genome | str, *, title: str | None = None, stats: bool = True, legend: bool = True,
                  max_height: float = 8.0, collapse: bool = True) -> Diagram:
    """The layout model of ``genome``'s diagram: title with params and FLOPs, body, legend."""
    genome = as_genome(genome)
    body = layout(genome, max_height=max_height, collapse=collapse)
    t, sub = titles(genome, stats)
    return titled(body, title or t, sub, with_legend=legend)


def draw_genome(genome: Genome | str, target: str | Path | IO, fmt: str | None = None, **kw) -> Diagram:
    """Draw ``genome`` to a path or file object as ``svg`` / ``png`` / ``pdf`` (default: the suffix)."""
    dia = layout_genome(genome, **kw)
    save(render(dia), target, fmt)
    return dia


def diagram_svg(genome: Genome | str, **kw) -> str:
    """The diagram of ``genome`` as SVG text (labels kept as ``<text>``)."""
    return to_svg(render(layout_genome(genome, **kw)))


def poster_names(era: str = "classic") -> list[str]:
    """The ten classic CNNs (``era="classic"``) or the decade after them (``"decade"``), in the order of their papers."""
    if era == "decade":
        return [n for n in list_genomes() if n in DECADE]
    return sorted(CANONICAL, key=lambda n: entry(n).year)


def layout_poster(names: Sequence[str] | None = None, *, stats: bool = True, title: str = POSTER_TITLES["classic"]) -> Diagram:
    """The poster's layout model: one panel per network with its year, params and FLOPs.

    Tries a few panel heights (taller panels wrap less) and page widths, and keeps the smallest page
    that is landscape, so short networks and long ones share rows without wasting the page.
    """
    import math

    names = list(names or poster_names())
    genomes = [get_genome(n) for n in names]
    subs = []
    for g in genomes:
        s = g.input.size
        subs.append((stats_text(g) + " · " if stats else "") + f"input {g.input.channels}×{s}×{s}")

    def panels(height: float) -> list[Diagram]:
        out, kinds = [], set()
        for name, g, sub in zip(names, genomes, subs):
            body = layout(g, max_height=height)
            kinds |= body.kinds
            out.append(titled(body, f"{DISPLAY_NAMES.get(name, name)}, {entry(name).year}", sub, with_legend=False, role="panel"))
        return [*out, legend(kinds)]

    best = None
    for height in POSTER_PANEL_HEIGHTS:
        ps = panels(height)
        sizes = [(p.w, p.h) for p in ps]
        widest = max(w for w, _ in sizes)
        for k in range(24):
            width = widest + k * (sum(w for w, _ in sizes) - widest) / 23
            _, w, h = row_positions(sizes, width)
            score = w * h * (1 + 3 * abs(math.log((w / h) / POSTER_ASPECT)))
            if best is None or score < best[0]:
                best = (score, height, width)
    assert best is not None
    grid = row_pack(panels(best[1]), best[2])
    page = Diagram(0.0, 0.0, [], [], [], [], title=title)
    page.texts.append(Text(0.0, 0.15, page.title + " (nasplay draw --all)", "title"))
    merge(page, grid, 0.0, 0.45)
    return page


def draw_poster(target: str | Path | IO, fmt: str | None = None, names: Sequence[str] | None = None,
                era: str = "classic") -> Diagram:
    """Draw the poster of the ten classic CNNs (``era="decade"``: the decade after them; or ``names``) to a path or
    file object."""
    dia = layout_poster(names or poster_names(era), title=POSTER_TITLES[era])
    save(render(dia), target, fmt)
    return dia
