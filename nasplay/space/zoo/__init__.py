"""The zoo: the classic CNNs and their neighbours as named points of the genome space."""

from nasplay.space.zoo.registry import CANONICAL, entry, get_genome, list_genomes, register

__all__ = ["CANONICAL", "entry", "get_genome", "list_genomes", "register"]
