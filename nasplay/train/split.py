"""Stratified, seeded splits of a labelled set (the data modules' train / val / test, the clutter's source images)."""

from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Index arrays for each fraction and the rest (last), stratified by label, shuffled, seeded.

    Each class gives ``round(fraction * count)`` examples to each part; every part is shuffled so that
    a prefix (``data.limit``) keeps roughly the class balance.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for i, f in enumerate(fractions):
            k = int(round(f * len(idx)))
            parts[i].append(idx[start:start + k])
            start += k
        parts[-1].append(idx[start:])
    return [rng.permutation(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]
