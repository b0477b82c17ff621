"""The batch loader against a naive per-window reference; shuffling; the training normaliser."""

import dataclasses

import numpy as np
import pytest
import torch
from test_windows import CONFIG, _features

from diffstock_ml.batches import CHUNK_BATCHES, Normaliser, WindowLoader
from diffstock_ml.permutation import LazyPermutation
from diffstock_ml.splits import fit_normaliser, split_days
from diffstock_ml.windows import build_day_arrays, load_day_arrays, save_day_arrays

DAYS = ("20251103", "20251104", "20251105", "20251106")


@pytest.fixture(scope="module")
def days():
    return {day: build_day_arrays(_features(seed=i), day, CONFIG) for i, day in enumerate(DAYS)}


def test_batches_equal_naive_slices_and_never_mix_days(days) -> None:
    arrays = list(days.values())
    loader = WindowLoader(arrays, batch_size=97, shuffle=True, seed=3)
    seen = 0
    for batch in loader:
        for row in range(len(batch.x)):
            d, s, t = batch.anchor[row].tolist()
            day = arrays[d]
            expected = day.x[s, t - CONFIG.length + 1 : t + 1]
            np.testing.assert_array_equal(batch.x[row].numpy(), expected)
            assert batch.target[row].item() == pytest.approx(day.target[s, t], rel=1e-6)
            assert batch.close[row].item() == pytest.approx(day.close[s, t], rel=1e-6)
        seen += len(batch.x)
    assert seen == sum(len(a.anchors) for a in arrays)
    assert batch.x.shape[1:] == (CONFIG.length, arrays[0].x.shape[-1])


def test_shuffle_is_deterministic_per_seed_and_epoch(days) -> None:
    arrays = list(days.values())

    def first_anchors(seed: int, epochs: int) -> list[list[list[int]]]:
        loader = WindowLoader(arrays, batch_size=16, seed=seed)
        return [next(iter(loader)).anchor.tolist() for _ in range(epochs)]

    assert first_anchors(1, 2) == first_anchors(1, 2)
    epoch0, epoch1 = first_anchors(1, 2)
    assert epoch0 != epoch1 and first_anchors(2, 1)[0] != epoch0
    days_in_batch = {a[0] for a in epoch0}
    assert len(days_in_batch) > 1  # shuffled across days


def test_the_epoch_order_is_the_lazy_permutation_of_seed_and_epoch(days) -> None:
    loader = WindowLoader(list(days.values()), batch_size=64, seed=3)
    loader.set_epoch(1)
    order = next(LazyPermutation(len(loader.anchors), (3, 1)).chunks(64))
    first = loader.anchors[order]
    expected = first[torch.argsort(first[:, 0], stable=True)]
    assert torch.equal(next(iter(loader)).anchor, expected.long())


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_batch_of_an_epoch_is_its_stretch_of_the_permutation_by_day(
    days, drop_last: bool
) -> None:
    """Anchors are gathered and sorted a chunk of batches at a time; every batch (across chunk
    boundaries, the short last one, a resumed epoch) must be its stretch of the epoch's
    permutation sorted by day."""
    arrays = list(days.values())
    n_anchors = sum(len(a.anchors) for a in arrays)
    size = n_anchors // (2 * CHUNK_BATCHES + 3) + 1  # two chunks and a bit, a short last batch
    assert n_anchors % size != 0
    loader = WindowLoader(arrays, batch_size=size, seed=5, drop_last=drop_last)
    order = torch.cat(list(LazyPermutation(n_anchors, (5, 0)).blocks()))
    expected = []
    for start in range(0, n_anchors, size):
        index = order[start : start + size]
        if drop_last and len(index) < size:
            break
        batch = loader.anchors[index]
        expected.append(batch[torch.argsort(batch[:, 0], stable=True)].long())
    got = [b.anchor for b in loader.iterate(0)]
    assert len(got) == len(expected) > 2 * CHUNK_BATCHES
    assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))
    resumed = [b.anchor for b in loader.iterate(0, start_batch=CHUNK_BATCHES + 5)]
    assert len(resumed) == len(expected) - CHUNK_BATCHES - 5
    assert all(
        torch.equal(g, e) for g, e in zip(resumed, expected[CHUNK_BATCHES + 5 :], strict=True)
    )


def test_unshuffled_order_covers_every_anchor_once(days) -> None:
    loader = WindowLoader(list(days.values()), batch_size=1000, shuffle=False)
    anchors = torch.cat([b.anchor for b in loader])
    assert len(anchors) == len(torch.unique(anchors, dim=0)) == len(loader.anchors)


def test_normaliser_is_fit_on_training_days_only(days) -> None:
    splits = split_days(list(days), train=2, val=1, test=1)
    reference = fit_normaliser(days, splits)
    tampered = dict(days)
    for day in (*splits.val, *splits.test):
        tampered[day] = dataclasses.replace(days[day], x=days[day].x * 100 + 7)
    assert fit_normaliser(tampered, splits) == reference
    train_day = splits.train[0]
    tampered[train_day] = dataclasses.replace(days[train_day], x=days[train_day].x * 100 + 7)
    assert fit_normaliser(tampered, splits) != reference


def test_normalised_batches_are_centred_and_clipped(days) -> None:
    arrays = list(days.values())
    normaliser = Normaliser.fit(arrays[:2], clip=3.0)
    batch = next(iter(WindowLoader(arrays[:2], batch_size=4096, normaliser=normaliser)))
    assert batch.x.abs().max() <= 3.0
    assert batch.x.median(dim=0).values.abs().mean() < 0.1


def test_days_normalised_once_give_the_bits_of_normalising_each_batch(days) -> None:
    """The loader normalises each day once, up front; a batch must equal, bit for bit, the
    same raw batch normalised on its own (what training did before)."""
    arrays = list(days.values())
    normaliser = Normaliser.fit(arrays[:2])
    raw = WindowLoader(arrays, batch_size=256, seed=5)
    normalised = WindowLoader(arrays, batch_size=256, normaliser=normaliser, seed=5)
    for plain, batch in zip(raw, normalised, strict=True):
        assert torch.equal(plain.anchor, batch.anchor)
        assert torch.equal(normaliser.apply(plain.x), batch.x)


def test_a_memory_mapped_day_is_copied_and_its_file_left_alone(days, tmp_path) -> None:
    """With a normaliser the loader works on its own copy read from the `.npy`: the mapping
    the caller holds, and the file, keep the raw features."""
    day = next(iter(days.values()))
    save_day_arrays(day, tmp_path / "day")
    mapped = load_day_arrays(tmp_path / "day")
    assert isinstance(mapped.x, np.memmap)
    before = (tmp_path / "day" / "x.npy").read_bytes()
    normaliser = Normaliser.fit([mapped])
    loader = WindowLoader([mapped], batch_size=64, normaliser=normaliser, shuffle=False)
    batch = next(iter(loader))
    np.testing.assert_array_equal(mapped.x, day.x)
    assert (tmp_path / "day" / "x.npy").read_bytes() == before
    _, s, t = batch.anchor[0].tolist()
    raw = torch.from_numpy(np.array(day.x[s, t - CONFIG.length + 1 : t + 1]))
    assert torch.equal(batch.x[0], normaliser.apply(raw))


@pytest.mark.parametrize("change", ["deleted", "rewritten"])
def test_a_day_changed_on_disk_after_loading_still_gives_what_was_loaded(
    days, tmp_path, change: str
) -> None:
    """The loader reads a mapped day from its file only while the name holds the very file
    that was mapped: a day deleted, or rewritten (a re-materialised partition), since it was
    loaded is copied through the mapping, which still holds the loaded values."""
    first, other = list(days.values())[:2]
    save_day_arrays(first, tmp_path / "day")
    mapped = load_day_arrays(tmp_path / "day")
    if change == "deleted":
        for file in (tmp_path / "day").iterdir():
            file.unlink()
    else:  # a new day in its place, as an atomic publish does: new files under the same names
        (tmp_path / "day").rename(tmp_path / "old")
        save_day_arrays(other, tmp_path / "day")
    normaliser = Normaliser.fit([first])
    loader = WindowLoader([mapped], batch_size=128, normaliser=normaliser, seed=1)
    reference = WindowLoader([first], batch_size=128, normaliser=normaliser, seed=1)
    for batch, expected in zip(loader, reference, strict=True):
        assert torch.equal(batch.x, expected.x) and torch.equal(batch.target, expected.target)


def test_splits_are_whole_days_oldest_first() -> None:
    splits = split_days(["20251105", "20251103", "20251106", "20251104"], 2, 1, 1)
    assert splits.train == ("20251103", "20251104")
    assert splits.val == ("20251105",) and splits.test == ("20251106",)
    with pytest.raises(ValueError, match="need exactly 5 distinct trading days"):
        split_days(["20251103", "20251104"], 3, 1, 1)
