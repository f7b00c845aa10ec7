"""ConvNeXt (Liu et al. 2022): a ResNet modernised step by step, as torchvision builds it."""

from __future__ import annotations

from nasplay.space.genome import Block, Branch, Conv, Genome, Head, Stage
from nasplay.space.zoo.parts import GAP, LN, seq
from nasplay.space.zoo.registry import register


def convnext(depths: tuple[int, ...] = (3, 3, 9, 3), dims: tuple[int, ...] = (96, 192, 384, 768), *,
             drop_path: float = 0.1, layer_scale: float = 1e-6) -> Genome:
    """A 4x4/4 patchify stem with LayerNorm; blocks of a 7x7 depthwise conv, LayerNorm, a 1x1 inverted bottleneck
    (4x) with GELU, a 1x1 back, a layer scale and stochastic depth (rates growing linearly to ``drop_path``
    over the blocks); separate downsampling layers (LayerNorm, 2x2/2 conv) between the stages; a LayerNorm
    after global average pooling."""
    total = sum(depths)
    stages, k = [], 0
    for i, (n, d) in enumerate(zip(depths, dims)):
        first = drop_path * k / (total - 1.0)  # torchvision's expression, for the same floats
        k += n
        block = Block((Branch((Conv(d, 7, depthwise=True, bias=True, norm="layer"), Conv(4 * d, 1, bias=True, act="gelu"),
                               Conv(d, 1, bias=True))),),
                      skip="identity", repeat=n, layer_scale=layer_scale, drop_path=first,
                      drop_path_step=drop_path / (total - 1.0))
        down = (seq(LN, Conv(d, 2, 2, 0, bias=True), name="Downsample"),) if i else ()
        stages.append(Stage((*down, block), f"layer{i + 1}"))  # ResNet's names: the roadmap's stages keep them
    return Genome(
        name="convnext",
        stem=(seq(Conv(dims[0], 4, 4, 0, bias=True, norm="layer"), name="Patchify"),),
        stages=tuple(stages),
        head=Head((GAP, LN)),
    )


@register("convnext_tiny", year=2022, paper="Liu et al. 2022, A ConvNet for the 2020s (ConvNeXt-T)",
          reference="torchvision:convnext_tiny")
def convnext_tiny() -> Genome:
    return convnext()
