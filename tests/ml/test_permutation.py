"""The lazily drawn epoch order: a permutation, seeded, resumable, and well mixed."""

import numpy as np
import pytest
import torch

from diffstock_ml.permutation import BLOCK, LazyPermutation


def drawn(n: int, seed, size: int = 1000, start: int = 0) -> np.ndarray:
    chunks = list(LazyPermutation(n, seed).chunks(size, start))
    assert all(len(c) == size for c in chunks[:-1]) and all(0 < len(c) <= size for c in chunks)
    return torch.cat(chunks).numpy() if chunks else np.empty(0, dtype=np.int64)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 64, 65, 1000, BLOCK, BLOCK + 1, 3 * BLOCK + 17])
def test_every_index_appears_exactly_once(n: int) -> None:
    order = drawn(n, (4, 2), size=333)
    assert np.array_equal(np.sort(order), np.arange(n))


def test_the_order_depends_on_the_seed_only_and_resumes_mid_way() -> None:
    n = 2 * BLOCK + 123
    order = drawn(n, (1, 0))
    assert np.array_equal(order, drawn(n, (1, 0), size=4096))  # not on the chunk size
    assert not np.array_equal(order, drawn(n, (1, 1)))  # the next epoch
    assert not np.array_equal(order, drawn(n, (2, 0)))  # another seed
    for start in (0, 1, 999, BLOCK - 1, BLOCK + 5, n - 1, n):
        assert np.array_equal(drawn(n, (1, 0), start=start), order[start:])


def test_the_permutation_mixes_like_a_random_one() -> None:
    # position vs value: no correlation, no structure in the low bits or across the range
    # (chi-square over 16 x 16 cells, 225 degrees of freedom: 99.9 % of random permutations
    # stay below 300), and two epochs' orders are unrelated
    n = 200_003
    order, other = drawn(n, (0, 0), size=4096), drawn(n, (0, 1), size=4096)
    position = np.arange(n)
    assert abs(np.corrcoef(position, order)[0, 1]) < 0.01
    assert abs(np.corrcoef(order, other)[0, 1]) < 0.01
    expected = n / 256
    for row, column in [(position % 16, order % 16), (position * 16 // n, order * 16 // n)]:
        table = np.zeros((16, 16))
        np.add.at(table, (row, column), 1)
        assert ((table - expected) ** 2 / expected).sum() < 300
    steps = np.diff(order[:10_000])
    assert len(np.unique(steps)) > 9_000  # not a stride or a few interleaved strides


def test_rejects_sizes_it_cannot_draw() -> None:
    with pytest.raises(ValueError, match="n must be"):
        LazyPermutation(-1, 0)
    with pytest.raises(ValueError, match="2\\^40"):
        LazyPermutation(1 << 41, 0)
    with pytest.raises(ValueError, match="size"):
        next(LazyPermutation(10, 0).chunks(0))
