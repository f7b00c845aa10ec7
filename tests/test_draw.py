"""Diagrams and diffs of genomes: every zoo network and random genomes draw to valid SVG and PNG;
structure is checked on the layout model (towers, ×N, skips, separable, no overlaps), not on pixels."""

from __future__ import annotations

import io
import itertools
import json
import random
import xml.etree.ElementTree as ET

import pytest

from nasplay.draw import style
from nasplay.draw.diagram import diagram_svg, draw_genome, layout_genome, layout_poster, poster_names
from nasplay.draw.diff import diff_genomes, diff_text, layout_diff
from nasplay.draw.layout import layout
from nasplay.draw.model import Diagram, text_width
from nasplay.draw.render import render, save
from nasplay.space.genome import (
    Act,
    Aux,
    Block,
    Branch,
    Conv,
    Dropout,
    Genome,
    Head,
    Input,
    Linear,
    Norm,
    Pool,
    Stage,
)
from nasplay.space.shapes import walk
from nasplay.space.zoo import CANONICAL, entry, get_genome, list_genomes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


# --- helpers ------------------------------------------------------------------------------------
def svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # raises on malformed XML
    assert root.tag == f"{SVG}svg"
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def check_png(data: bytes) -> None:
    import matplotlib.image as mpimg

    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    pixels = mpimg.imread(io.BytesIO(data), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels[..., :3].std() > 0.05  # not blank: boxes, lines and text on white
    assert (pixels[..., :3] < 0.5).mean() > 0.002  # some dark ink (lines, labels)


def check_files(dia: Diagram) -> list[str]:
    """Render once, write SVG and PNG, check both; return the SVG's texts."""
    fig = render(dia, dia.marks)
    svg, png = io.StringIO(), io.BytesIO()
    save(fig, svg, "svg")
    save(fig, png, "png", dpi=40)
    check_png(png.getvalue())
    return svg_texts(svg.getvalue())


def _rect(e) -> tuple[float, float, float, float]:
    return e.x, e.y, e.x + e.w, e.y + e.h


def _overlap(a, b, tol: float = 0.004) -> bool:
    return a[0] < b[2] - tol and b[0] < a[2] - tol and a[1] < b[3] - tol and b[1] < a[3] - tol


def check_no_overlaps(dia: Diagram) -> None:
    """Boxes never overlap; frames nest or stay apart; ×N counts and headers overlap no box."""
    boxes = [_rect(b) for b in dia.boxes if "legend" not in b.paths]
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        assert not _overlap(a, b), f"boxes overlap: {dia.boxes[i].label!r} and {dia.boxes[j].label!r}"
    frames = [_rect(f) for f in dia.frames]
    for a, b in itertools.combinations(frames, 2):
        inside = (a[0] <= b[0] and a[1] <= b[1] and a[2] >= b[2] and a[3] >= b[3]) or \
                 (b[0] <= a[0] and b[1] <= a[1] and b[2] >= a[2] and b[3] >= a[3])
        assert inside or not _overlap(a, b), "frames cross"
    for t in dia.texts:
        if t.role in ("repeat", "stage", "module"):
            size = style.FONT_SIZE * 1.35 if t.role == "repeat" else style.SMALL
            r = (t.x, t.y - 0.04, t.x + text_width(t.text, size), t.y + 0.04)
            for b, rect in zip(dia.boxes, boxes):
                assert not _overlap(r, rect), f"{t.text!r} overlaps box {b.label!r}"
    assert all(-1e-6 <= b.x and b.x + b.w <= dia.w + 1e-6 for b in dia.boxes), "a box leaves the page"


def check_structure(g: Genome, dia: Diagram) -> None:
    """What every diagram must show of its genome, whatever the genome."""
    walk(g)
    all_blocks = [b for b in g.stem] + [b for st in g.stages for b in st.blocks]
    skips = {b.skip for b in all_blocks} - {"none"}
    assert {e.kind for e in dia.skips} == skips  # skip lines exactly where the genome has skips, of those kinds
    multi = {len(b.branches) for b in all_blocks if len(b.branches) > 1}
    assert {f.towers for f in dia.frames if f.towers > 1} == multi
    for b in all_blocks:  # a repeated block shows ×N with at least its own repeat
        if b.repeat > 1:
            assert any(n >= b.repeat for n in dia.repeats)
    assert sum(dia.repeats) <= sum(b.repeat for b in all_blocks)
    assert sum(len(a.ops) > 0 for a in g.aux) == 0 or any(b.kind == "aux" for b in dia.boxes)
    assert any(b.kind == "output" for b in dia.boxes) and any(b.kind == "input" for b in dia.boxes)
    if any(op.separable for op in _convs(g)):
        assert any(b.kind == "sep" for b in dia.boxes)
    if any(op.factor != "none" for op in _convs(g)):
        assert any(b.kind == "factor" for b in dia.boxes)
    check_no_overlaps(dia)


def _convs(g: Genome) -> list[Conv]:
    from nasplay.draw.diff import body_ops

    return [op for _, op, _ in body_ops(g) if isinstance(op, Conv)]


# --- random genomes -----------------------------------------------------------------------------
def random_conv(rng: random.Random, out: int, stride: int = 1) -> Conv:
    kind = rng.choice(["plain", "1x1", "asym", "stacked", "sep", "grouped", "big"])
    norm, act = rng.choice(["none", "batch"]), rng.choice(["relu", "tanh", "none"])
    if kind == "1x1":
        return Conv(out, 1, stride, norm=norm, act=act)
    if kind == "asym":
        return Conv(out, rng.choice([3, 5, 7]), stride, factor=rng.choice(["asymmetric", "asymmetric_t"]), norm=norm, act=act)
    if kind == "stacked":
        return Conv(out, rng.choice([5, 7]), stride, factor="stacked", norm=norm, act=act)
    if kind == "sep":
        return Conv(out, 3, stride, separable=True, norm=norm, act=act)
    if kind == "grouped":
        return Conv(out, 3, stride, groups=rng.choice([2, 4, 8, 16]), norm=norm, act=act)
    return Conv(out, 5 if kind == "big" else 3, stride, bias=True, norm=norm, act=act)


def random_branch(rng: random.Random, width: int, depth: int = 2) -> Branch:
    ops: list = [random_conv(rng, width) for _ in range(rng.randint(0 if depth < 2 else 1, 2))]
    if rng.random() < 0.2:
        ops.insert(0, Pool(rng.choice(["max", "avg"]), 3, 1, 1))
    if depth > 1 and rng.random() < 0.25:
        return Branch(tuple(ops) or (Conv(width, 1),), tuple(random_branch(rng, width, 1) for _ in range(2)))
    return Branch(tuple(ops))


def random_block(rng: random.Random, channels: int, *, reduce: bool) -> Block:
    width = rng.choice([8, 16, 32])
    towers = rng.choice([1, 1, 2, 3, 4])
    if reduce:
        body = Branch((random_conv(rng, width, 2),))
        branches = (body,) if towers == 1 else (body, Branch((Pool("max", 3, 2, 1),)))
        return Block(branches, skip=rng.choice(["none", "projection"]) if towers == 1 else "none", name=rng.choice(["", "Reduce"]))
    branches = tuple(random_branch(rng, width) for _ in range(towers))
    skip = rng.choice(["none", "identity", "scaled", "projection"])
    merge = (Conv(channels, 1, bias=True),) if skip in ("identity", "scaled") or rng.random() < 0.3 else ()
    if skip in ("identity", "scaled") and not merge:
        skip = "none"
    return Block(branches, merge=merge, skip=skip, scale=rng.choice([0.1, 0.2, 1.0]),
                 post=(Act("relu"),) if skip != "none" and rng.random() < 0.6 else (), repeat=rng.choice([1, 1, 2, 3, 7]),
                 name=rng.choice(["", "Mod", "Cell"]))


def random_genome(seed: int) -> Genome:
    """A small valid genome with random towers, nested splits, skips, repeats, factorized /
    separable / grouped convs, aux heads and heads."""
    rng = random.Random(seed)
    for _ in range(50):
        stem_w = rng.choice([16, 32])
        stem = (Block((Branch((Conv(stem_w, 3, rng.choice([1, 2]), norm="batch", act="relu"),
                               *([Norm("lrn")] if rng.random() < 0.3 else []), Pool("max", 2, 2))),)),)
        stages, channels = [], stem_w
        for si in range(rng.randint(1, 3)):
            bl = []
            for bi in range(rng.randint(1, 3)):
                b = random_block(rng, channels, reduce=si > 0 and bi == 0)
                try:
                    from nasplay.space.shapes import block_shape

                    channels = block_shape(b, (channels, 64, 64), "probe")[0]
                except ValueError:
                    break
                bl.append(b)
            if bl:
                stages.append(Stage(tuple(bl), f"s{si}"))
        head = Head((Pool("avg", adaptive=1), Dropout(0.2))) if rng.random() < 0.6 else \
            Head((Pool("avg", adaptive=2), Linear(32, act="relu"), Dropout(0.5)))
        aux = (Aux(0, -1, (Pool("avg", adaptive=1), Linear(16, act="relu"))),) if rng.random() < 0.3 else ()
        g = Genome(f"random{seed}", stem, tuple(stages), head, aux, Input(3, rng.choice([32, 48])), classes=10)
        try:
            walk(g)
            return g
        except ValueError:
            continue
    raise AssertionError("no valid random genome in 50 tries")


# --- every zoo network --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_genomes())
def test_every_zoo_network_draws_svg_and_png(name):
    g = get_genome(name)
    dia = layout_genome(g, stats=False)
    check_structure(g, dia)
    texts = check_files(dia)
    assert any(name in t or t.startswith(name.split("_")[0][:4].capitalize()) for t in texts[:2]) or dia.title in texts


@pytest.mark.parametrize("seed", range(14))
def test_random_genomes_draw(seed):
    g = random_genome(seed)
    dia = layout_genome(g, stats=False, max_height=4.0)
    check_structure(g, dia)
    check_files(dia)


def test_random_genomes_cover_the_visual_language():
    """The random set is worth testing: together the genomes use every look of the legend."""
    kinds = set()
    for seed in range(14):
        kinds |= layout(random_genome(seed)).kinds
    assert {"conv", "conv1", "factor", "sep", "grouped", "maxpool", "avgpool", "norm", "aux", "concat", "add",
            "identity", "projection", "scaled"} <= kinds


# --- what the pictures of the classics show ---------------------------------------------------------
def test_inception_v1_modules_have_four_towers_and_collapse():
    dia = layout(get_genome("inception_v1"))
    modules = [f for f in dia.frames if f.towers > 1]
    assert [f.name for f in modules] == ["inception3a–3b", "inception4a–4e", "inception5a–5b"]
    assert {f.towers for f in modules} == {4} and dia.repeats == [2, 5, 2]
    aux = [b for b in dia.boxes if b.kind == "aux"]  # the two identical aux heads drawn once, both named
    assert len(aux) == 1 and "×2" in aux[0].label and "inception4a" in aux[0].label and "inception4d" in aux[0].label
    assert dia.skips == []


def test_inception_v3_e_module_towers_split():
    dia = layout(get_genome("inception_v3"))
    e = next(f for f in dia.frames if f.name == "InceptionE")
    assert (e.towers, e.leaves, e.repeat) == (4, 6, 2)
    assert dia.repeats == [3, 4, 2]  # InceptionA ×3, InceptionC ×4 (c7 = 128/160/192), InceptionE ×2
    labels = [b.label for b in dia.boxes]
    assert "1×1, 128/160/192" in labels and "1×7+7×1, 192" in labels and "3×3+3×3, 96" in labels


def test_resnet50_stages_collapse_after_the_projection_block():
    dia = layout(get_genome("resnet50"))
    assert dia.repeats == [2, 3, 5, 2]
    assert [e.kind for e in dia.skips] == ["projection", "identity"] * 4
    assert [b.label for b in dia.boxes if b.label.startswith("1×1") and b.kind == "conv1"][:1] == ["1×1, 64"]
    proj = [b.label for b in dia.boxes if b.paths and b.paths[0].endswith(".skip") and b.kind == "conv1"]
    assert proj == ["1×1, 256", "1×1, 512 /2", "1×1, 1024 /2", "1×1, 2048 /2"]


def test_resnext_draws_32_towers_as_a_stack():
    dia = layout(get_genome("resnext50_32x4d"))
    grouped = [b for b in dia.boxes if b.groups == 32]
    assert grouped and all(b.stack >= 2 for b in grouped)
    assert "3×3, 128\n32 towers × 4" in [b.label for b in grouped]
    two = layout(get_genome("alexnet_2012"))
    assert [b.label for b in two.boxes if b.groups == 2] == ["5×5, 128", "3×3, 192", "3×3, 128"]  # per tower


def test_inception_resnet_v2_is_compact():
    dia = layout(get_genome("inception_resnet_v2"))
    assert dia.repeats == [10, 20, 9]
    assert {e.kind for e in dia.skips} == {"scaled"}
    assert [e.label for e in dia.skips] == ["×0.17", "×0.1", "×0.2", "×1"]
    assert [f.name for f in dia.frames] == ["Mixed5b", "Block35", "Mixed6a", "Block17", "Mixed7a", "Block8", "Block8"]
    assert len(dia.boxes) < 80  # 245 conv + linear layers on one page
    assert dia.columns <= 3 and dia.h <= 8.5


def test_plain_networks_have_no_skips_and_separable_is_marked():
    vgg = layout(get_genome("vgg16"))
    assert vgg.skips == [] and vgg.frames == [] and vgg.repeats == [2, 2, 3, 3, 3]
    x = layout(get_genome("xception"))
    assert sum(b.kind == "sep" for b in x.boxes) == 11 and x.repeats == [2, 8]  # entry 256/728 collapsed
    assert not any(b.kind == "sep" for n in ("vgg16", "resnet50") for b in layout(get_genome(n)).boxes)
    lenet = layout(get_genome("lenet5"))
    assert [b.label for b in lenet.boxes if b.kind == "output"] == ["RBF 10 (fixed)"]
    assert sum(b.kind == "subsample" for b in lenet.boxes) == 2


def test_title_has_params_and_flops_in_the_svg():
    svg = diagram_svg("resnet50")
    texts = svg_texts(svg)
    assert "ResNet-50 — 25.6 M params · 8.18 GFLOPs" in texts
    v1 = svg_texts(diagram_svg("inception_v1", legend=False))
    assert "Inception-v1 (GoogLeNet) — 6.62 M params (+6.38 M in aux heads) · 3.00 GFLOPs" in v1
    assert "legend" in texts and "legend" not in v1


def test_draw_genome_to_paths_and_file_objects(tmp_path):
    draw_genome("lenet5", tmp_path / "l.png")
    check_png((tmp_path / "l.png").read_bytes())
    buf = io.StringIO()
    dia = draw_genome("lenet5", buf, fmt="svg")
    assert dia.title in svg_texts(buf.getvalue())
    with pytest.raises(ValueError, match="allowed: svg, png, pdf"):
        draw_genome("lenet5", tmp_path / "l.gif")
    with pytest.raises(ValueError, match="fmt"):
        draw_genome("lenet5", io.BytesIO())


def test_poster_shows_the_ten_in_the_order_of_their_papers():
    names = poster_names()
    assert sorted(names) == sorted(CANONICAL) and [entry(n).year for n in names] == sorted(entry(n).year for n in names)
    assert names[:3] == ["lenet5", "alexnet", "vgg16"] and names[-1] == "resnext50_32x4d"
    poster = layout_poster()
    panels = [t.text for t in poster.texts if t.role == "panel"]
    assert panels[0] == "LeNet-5, 1998" and panels[-1] == "ResNeXt-50 (32×4d), 2016" and len(panels) == 10
    subtitles = [t.text for t in poster.texts if t.role == "subtitle"]
    assert len(subtitles) == 10 and subtitles[0].startswith("60.0 K params · 653 KFLOPs")
    assert 1.2 < poster.w / poster.h < 2.0  # one landscape page
    check_no_overlaps(poster)
    texts = check_files(poster)
    assert "Inception-ResNet-v2, 2016" in texts and "55.8 M params · 26.3 GFLOPs · input 3×299×299" in texts


def test_second_poster_shows_the_decade_after(tmp_path):
    names = poster_names("decade")
    assert names == ["densenet121", "mobilenet_v1", "seresnet50", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf",
                     "convnext_tiny"]
    poster = layout_poster(names, title="the decade")
    panels = [t.text for t in poster.texts if t.role == "panel"]
    assert panels[0] == "DenseNet-121, 2016" and panels[-1] == "ConvNeXt-T, 2022" and len(panels) == 7
    subtitles = [t.text for t in poster.texts if t.role == "subtitle"]
    assert subtitles[-1].startswith("28.6 M params")
    check_no_overlaps(poster)
    texts = check_files(poster)
    assert "SE-ResNet-50, 2017" in texts


def test_draw_all_writes_both_posters(tmp_path, capsys):
    from nasplay.cli import main

    out = tmp_path / "p.svg"
    assert main(["draw", "--all", "--out", str(out)]) == 0
    second = tmp_path / "p_2016-2022.svg"
    assert out.exists() and second.exists() and str(second) in capsys.readouterr().out
    assert "ConvNeXt-T, 2022" in second.read_text() and "ConvNeXt-T" not in out.read_text()


# --- diffs --------------------------------------------------------------------------------------
def test_diff_inception_v3_to_v4():
    diffs = diff_genomes("inception_v3", "inception_v4")
    by_kind = {d.kind: d for d in diffs}
    assert "parallel-tower" in by_kind["stem"].after and "parallel-tower" not in by_kind["stem"].before
    stages = [d for d in diffs if d.path.startswith("stages[")]
    assert [d.path for d in stages] == ["stages[0]", "stages[1]", "stages[2]"]
    assert stages[0].kind == "depth" and "InceptionA ×3 → InceptionA ×4" in stages[0].text
    assert "InceptionC ×4" in stages[1].before and "InceptionB ×7" in stages[1].after
    assert "InceptionE ×2" in stages[2].before and "InceptionC ×3" in stages[2].after
    assert by_kind["uniform"].before.startswith("copies differ") and by_kind["uniform"].after.startswith("uniform")
    assert by_kind["aux"].after == "none"
    assert all(d.text and d.to_dict()["from"] == d.before for d in diffs)


def test_diff_resnet50_to_resnext():
    diffs = diff_genomes("resnet50", "resnext50_32x4d")
    by_kind = {d.kind: d for d in diffs}
    assert by_kind["cardinality"].after == "32 towers" and by_kind["cardinality"].before.startswith("1")
    assert by_kind["group_width"].before == "64/128/256/512" and by_kind["group_width"].after == "4/8/16/32"
    assert len(by_kind["cardinality"].b_paths) == 8 and by_kind["cardinality"].a_paths == ()
    assert "skip" not in by_kind and "depth" not in by_kind


def test_diff_vgg16_to_vgg19_is_depth_per_stage():
    diffs = diff_genomes("vgg16", "vgg19")
    stages = [d for d in diffs if d.path.startswith("stages[")]
    assert [(d.path, d.kind, d.before, d.after) for d in stages] == [
        (f"stages[{i}]", "depth", "3", "4") for i in (2, 3, 4)]
    assert [d.kind for d in diffs if not d.path.startswith("stages[")] == ["depth"]


def test_diff_is_empty_for_the_same_genome_and_symmetric():
    assert diff_genomes("resnet50", get_genome("resnet50").replace(name="copy")) == []
    assert "the same architecture" in diff_text("resnet50", "resnet50")
    ab, ba = diff_genomes("alexnet", "alexnet_2012"), diff_genomes("alexnet_2012", "alexnet")
    assert [(d.kind, d.before, d.after) for d in ab] == [(d.kind, d.after, d.before) for d in ba]
    kinds = {d.kind for d in ab}
    assert {"input", "cardinality", "norm"} <= kinds


def test_diff_picture_marks_the_differences():
    page = layout_diff("vgg16", "vgg19")
    badges = [t for t in page.texts if t.role == "badge"]
    assert sorted(t.text for t in badges) == ["2", "2", "3", "3", "4", "4"]  # stage diffs marked on both sides
    assert page.marks and all(m.startswith(("a:", "b:")) for m in page.marks)
    check_no_overlaps(page)
    texts = check_files(page)
    assert any(t.startswith("2. stage conv3: 3 → 4 conv layers") for t in texts)


# --- CLI ----------------------------------------------------------------------------------------
def test_cli_draw_diff_and_errors(tmp_path, capsys):
    from nasplay.cli import main

    out = tmp_path / "plain.svg"
    assert main(["draw", "resnet50", "skip=none", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["draw", "resnet50", "--out", str(tmp_path / "r.png"), "--no-legend"]) == 0
    check_png((tmp_path / "r.png").read_bytes())
    texts = svg_texts(out.read_text())
    assert any(t.startswith("resnet50+skip=none — ") and "params" in t for t in texts) and "legend" in texts
    assert not any(t.startswith("ResNet-50") for t in texts)  # a knob changed it: no longer the zoo's ResNet-50
    yaml_file = tmp_path / "g.yaml"
    yaml_file.write_text(random_genome(3).to_yaml())
    assert main(["draw", str(yaml_file), "--out", str(tmp_path / "g.svg")]) == 0
    svg_texts((tmp_path / "g.svg").read_text())

    assert main(["draw", "resnet50", "--out", str(tmp_path / "x.gif")]) == 2
    assert "allowed: svg, png, pdf" in capsys.readouterr().err
    assert main(["draw", "resnet5O"]) == 2
    assert "unknown network" in capsys.readouterr().err
    assert main(["draw"]) == 2 and "--all" in capsys.readouterr().err

    assert main(["diff", "vgg16", "vgg19", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in data["differences"]] == ["depth", "depth", "depth", "depth"]
    assert set(data["differences"][1]) == {"path", "kind", "from", "to", "text"}
    assert main(["diff", "resnet50", "resnet50", "skip=none", "--out", str(tmp_path / "d.png")]) == 0
    text = capsys.readouterr().out
    assert "skip connections: 16 blocks (12 identity, 4 projection) → none" in text
    check_png((tmp_path / "d.png").read_bytes())


def test_drawing_modules_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, nasplay.draw.diagram, nasplay.draw.diff, nasplay.cli; " \
           "nasplay.cli.build_parser(); print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "False"]
