"""SE-ResNet (Hu et al. 2017): ResNet with squeeze-and-excitation channel attention in every block."""

from __future__ import annotations

from nasplay.space.genome import Genome
from nasplay.space.zoo.registry import register
from nasplay.space.zoo.resnet import resnet


@register("seresnet50", year=2017, paper="Hu et al. 2017, Squeeze-and-excitation networks (timm's SE-ResNet-50)",
          reference="timm:seresnet50")
def seresnet50() -> Genome:
    return resnet((3, 4, 6, 3), se=16)
