"""The visual language of the diagrams: one colour and one shape per kind of op, sizes in inches.

Kinds share a colour family when they are variants of one idea (every convolution is blue-ish; a
decomposed convolution shows its pieces as dividers: horizontal for factorized 1xn+nx1 / stacked 3x3,
vertical for separable depthwise | pointwise). Pooling is a trapezoid, fully connected layers are red.
"""

from __future__ import annotations

from dataclasses import dataclass

FONT = "DejaVu Sans"  # ships with matplotlib: no system font needed
FONT_SIZE = 6.5  # op labels, points
SMALL = 5.6  # notes, shapes, legend details
TITLE_SIZE = 11.0
DIFF_SIZE = 7.5  # the list of differences under a diff picture

OP_H = 0.24  # height of one op box
LINE_H = 0.115  # extra height per extra label line
THIN_H = 0.15  # height of norm / activation / dropout boxes
PAD_X = 0.09  # text padding inside a box (each side)
MIN_W = 0.42
GAP_Y = 0.11  # vertical gap (an arrow) between consecutive pieces
GAP_X = 0.09  # gap between parallel towers
FAN = 0.11  # height of the fan-out above parallel towers
CONCAT_H = 0.045  # the concatenation bar
ADD_R = 0.065  # radius of the residual-add circle
FRAME_PAD = 0.07  # frame around a module
HEADER_H = 0.15  # module-name strip inside a frame
SKIP_GAP = 0.13  # distance from a module to its skip line
STAGE_H = 0.17  # stage header line
COL_GAP = 0.55  # gap between wrapped columns (the continuation line runs through it)
STACK_DX = 0.035  # offset of the cards behind a repeated / many-tower box
CELL_GAP = 0.05  # gap between the side-by-side towers of a grouped conv
GROUP_STACK = 3  # two groups (AlexNet's two GPUs) are drawn as two side-by-side cells, more as a stack of cards


@dataclass(frozen=True)
class Look:
    """How one kind of element is drawn."""

    face: str
    edge: str
    shape: str  # rect | trapezoid | pill | thin | dashed | bar | circle
    legend: str
    text: str = "#1a1a1a"


LOOKS: dict[str, Look] = {
    "input": Look("#ffffff", "#333333", "rect", "input image"),
    "conv": Look("#c6dcf0", "#2b5d8a", "rect", "convolution k×k (label: kernel, channels, /stride)"),
    "conv1": Look("#eaf2fa", "#2b5d8a", "rect", "1×1 convolution (bottleneck / projection)"),
    "factor": Look("#cfe9cd", "#2e7d32", "rect", "factorized: 1×n+n×1 or stacked 3×3 (one row per piece)"),
    "sep": Look("#e3d7f1", "#6a3d9a", "rect", "separable: depthwise | pointwise"),
    "grouped": Look("#c6dcf0", "#2b5d8a", "rect", "grouped conv: two towers side by side, more as a stack"),
    "maxpool": Look("#fcd9bb", "#c0601a", "trapezoid", "max pooling (k×k /stride)"),
    "avgpool": Look("#fff0a8", "#a07c00", "trapezoid", "average pooling"),
    "subsample": Look("#ffe08a", "#a07c00", "trapezoid", "trainable subsampling (LeNet)"),
    "norm": Look("#e6e6e6", "#6b6b6b", "thin", "normalization (LRN / BatchNorm / LayerNorm)"),
    "se": Look("#fde7c8", "#b36b00", "thin", "squeeze-and-excitation (channel attention)"),
    "act": Look("#ffffff", "#555555", "pill", "activation"),
    "dropout": Look("#ffffff", "#8a8a8a", "dashed", "dropout"),
    "fc": Look("#f6cccc", "#b22222", "rect", "fully connected"),
    "output": Look("#e88b8b", "#8b0000", "rect", "classifier output"),
    "aux": Look("#fbe1ec", "#c2185b", "dashed", "auxiliary classifier"),
    "concat": Look("#444444", "#444444", "bar", "concatenation of towers"),
    "add": Look("#ffffff", "#333333", "circle", "residual addition"),
    "identity": Look("none", "#2e7d32", "line", "skip: identity"),
    "projection": Look("none", "#1f5fa8", "line", "skip: 1×1 projection"),
    "scaled": Look("none", "#8e24aa", "line", "skip: scaled residual (×s)"),
    "dense": Look("none", "#00838f", "line", "skip: dense (input concatenated, ‖)"),
}
BN_COLOR = "#24476b"  # the stripe under a conv that is followed by BatchNorm
FLOW = "#505050"
WRAP = "#a0a0a0"
HIGHLIGHT = "#e53935"
FRAME_FACE = "#f7f7f7"
FRAME_EDGE = "#b5b5b5"
REPEAT_COLOR = "#b3261e"
SKIP_KINDS = ("identity", "projection", "scaled", "dense")
