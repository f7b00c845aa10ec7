"""DenseNet (Huang et al. 2016): each layer of a dense block reads the concatenation of all earlier ones."""

from __future__ import annotations

from nasplay.space.genome import Block, Branch, Conv, Genome, Head, Pool, Stage
from nasplay.space.zoo.parts import BN, GAP, RELU, cbr, maxpool, seq
from nasplay.space.zoo.registry import register


def densenet(blocks: tuple[int, ...], growth: int = 32, bn_size: int = 4, init: int = 64) -> Genome:
    """torchvision's DenseNet: pre-activation layers (BN, ReLU, 1x1 to ``bn_size`` x ``growth``, BN, ReLU,
    3x3 to ``growth``) with a dense skip, and transitions (BN, ReLU, 1x1 halving the channels, 2x2 average
    pool) between the blocks."""
    layer = (BN, RELU, Conv(bn_size * growth, 1), BN, RELU, Conv(growth, 3))
    stages, c = [], init
    for i, n in enumerate(blocks):
        dense = Block((Branch(layer),), skip="dense", repeat=n, name="DenseLayer")
        c += n * growth
        if i < len(blocks) - 1:
            c //= 2
            after = seq(BN, RELU, Conv(c, 1), Pool("avg", 2, 2), name="Transition")
        else:
            after = seq(BN, RELU)  # the final norm, then the ReLU of torchvision's forward
        stages.append(Stage((dense, after), f"denseblock{i + 1}"))
    return Genome(
        name="densenet",
        stem=(seq(cbr(init, 7, 2, 3), maxpool(3, 2, 1)),),
        stages=tuple(stages),
        head=Head((GAP,)),
    )


@register("densenet121", year=2016, paper="Huang et al. 2016, Densely connected convolutional networks",
          reference="torchvision:densenet121")
def densenet121() -> Genome:
    return densenet((6, 12, 24, 16))
