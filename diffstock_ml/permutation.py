"""A seeded permutation of 0 … n − 1 that is drawn lazily, a stretch at a time.

`torch.randperm` draws a whole epoch's order before the first batch: 0.7 s on one core for the
12.4 M windows of ten full days, a quarter of the time the loader then needs for its first
million windows. `LazyPermutation` is instead a keyed bijection of [0, 2^k) (2^k ≥ n), rounds of
"multiply by an odd number, add a key, xor with the high half" modulo 2^k (each step is
invertible), enumerated in order and filtered to the values below n. Every index appears exactly
once, the order depends only on the seed, and each stretch costs only its own work, so resuming
mid-epoch skips ahead without drawing what came before. The same idea as Kensler's `permute`
(Correlated Multi-Jittered Sampling, 2013) and TensorFlow's `index_shuffle`; it is a
pseudo-random permutation, not one drawn uniformly from all n!, which is all a training shuffle
needs (tests/ml/test_permutation.py checks that it mixes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

ROUNDS = 4
BLOCK = 1 << 16  # domain values mapped at a time: a few hundred kB of int64, in cache
MAX_BITS = 40  # x * multiplier must stay below 2^63: multipliers are below 2^(62 - bits)


class LazyPermutation:
    """The permutation of `range(n)` seeded by `seed`, read in order by `chunks`."""

    def __init__(self, n: int, seed: int | Sequence[int]) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n = n
        self.bits = max(2, (n - 1).bit_length())
        if self.bits > MAX_BITS:
            raise ValueError(f"n = {n} is above the 2^{MAX_BITS} this permutation supports")
        self.mask = (1 << self.bits) - 1
        self.shift = self.bits // 2 + 1  # xor the top half onto the bottom half
        rng = np.random.default_rng(seed)
        multiplier_bits = min(31, 62 - self.bits)
        self.multipliers = [int(m) * 2 + 1 for m in rng.integers(0, 1 << multiplier_bits, ROUNDS)]
        self.keys = [int(k) for k in rng.integers(0, 1 << self.bits, ROUNDS)]

    def at(self, positions: torch.Tensor) -> torch.Tensor:
        """The bijection of [0, 2^k) at int64 `positions` (values may be >= n)."""
        x = positions.to(torch.int64, copy=True)
        for multiplier, key in zip(self.multipliers, self.keys, strict=True):
            x.mul_(multiplier).add_(key).bitwise_and_(self.mask)
            x.bitwise_xor_(x >> self.shift)
        return x

    def blocks(self) -> Iterator[torch.Tensor]:
        """The permutation in order, as int64 blocks of varying length."""
        for first in range(0, self.mask + 1, BLOCK):
            values = self.at(torch.arange(first, min(first + BLOCK, self.mask + 1)))
            yield values[values < self.n]

    def chunks(self, size: int, start: int = 0) -> Iterator[torch.Tensor]:
        """The permutation from its `start`-th entry on, `size` entries at a time (the last
        chunk may be shorter)."""
        if size < 1 or start < 0:
            raise ValueError(f"size must be >= 1 and start >= 0, got {size}, {start}")
        pending = torch.empty(0, dtype=torch.int64)
        for block in self.blocks():
            skipped = min(start, len(block))
            start -= skipped
            pending = torch.cat([pending, block[skipped:]])
            while len(pending) >= size:
                yield pending[:size]
                pending = pending[size:]
        if len(pending):
            yield pending
