"""The zoo: the classic CNNs and their neighbours as named points of the genome space.

The registry (:mod:`nasplay.space.zoo.registry`) is a leaf; the package imports the families, each of which
registers its networks. Import order is registration order, which breaks ties between networks of the same year.
"""

# The order of the families is the order of registration.
# isort: off
from nasplay.space.zoo.registry import CANONICAL, entry, get_genome, list_genomes, register
from nasplay.space.zoo import classic, inception, resnet, xception  # noqa: F401  (the ten and neighbours)
from nasplay.space.zoo import densenet, mobilenet, senet, regnet, convnext  # noqa: F401  (the decade after)
# isort: on

__all__ = ["CANONICAL", "entry", "get_genome", "list_genomes", "register"]
