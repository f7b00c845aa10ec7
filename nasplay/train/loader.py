"""Batches of tensors by indexing: no ``DataLoader``, no workers, no per-sample Python.

A dataset that fits in memory lives as two tensors on the training device; an epoch is a permutation
of their indices, drawn from a generator seeded by ``(seed, epoch)`` so any epoch can be replayed (a
resumed trial sees the batches it would have seen). Lightning injects a distributed sampler only into
``DataLoader`` s, so the loader shards by ``rank`` / ``world_size`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch


class InMemoryLoader:
    """Iterates ``(x[idx], y[idx])`` batches over one epoch.

    Training loaders (``shuffle=True``) pad the permutation so every rank takes as many batches as the
    others (DDP steps in lockstep); evaluation loaders give each example to exactly one rank. A final
    batch of a single example is folded into the one before it (BatchNorm cannot train on one).
    ``epoch`` returns the current epoch (the trainer's); without it the loader counts its own passes.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, epoch: Callable[[], int] | None = None):
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self._epoch_fn = epoch
        self._passes = 0

    @property
    def num_examples(self) -> int:
        """Examples this rank sees per epoch."""
        n = len(self.x)
        if self.world_size == 1:
            return n
        if self.shuffle:
            return -(-n // self.world_size)
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self.num_examples
        batches = -(-n // self.batch_size)
        if batches > 1 and n % self.batch_size == 1:
            batches -= 1
        return batches

    def _indices(self, epoch: int) -> torch.Tensor | None:
        """This rank's indices for ``epoch`` in order; ``None`` means all examples in order."""
        n = len(self.x)
        if not self.shuffle:
            return None if self.world_size == 1 else torch.arange(self.rank, n, self.world_size, device=self.x.device)
        state = np.random.SeedSequence([self.seed, epoch]).generate_state(2, dtype=np.uint64)
        g = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
        perm = torch.randperm(n, generator=g)
        if self.world_size > 1:
            total = self.num_examples * self.world_size
            perm = torch.cat([perm, perm[: total - n]])[self.rank::self.world_size]
        return perm.to(self.x.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._epoch_fn() if self._epoch_fn is not None else self._passes
        self._passes += 1
        idx = self._indices(epoch)
        n, b, batches = self.num_examples, self.batch_size, len(self)
        for i in range(batches):
            lo, hi = i * b, (n if i == batches - 1 else (i + 1) * b)
            if idx is None:  # in order: slices are views, no copy
                yield self.x[lo:hi], self.y[lo:hi]
            else:
                j = idx[lo:hi]
                yield self.x.index_select(0, j), self.y.index_select(0, j)
