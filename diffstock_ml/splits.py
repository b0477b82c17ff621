"""Train / validation / test splits by whole trading days, oldest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from diffstock_ml.batches import Normaliser
from diffstock_ml.windows import DayArrays


@dataclass(frozen=True)
class Splits:
    """Day keys (YYYYMMDD) of each split; no day is in two splits."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    @property
    def all_days(self) -> tuple[str, ...]:
        return (*self.train, *self.val, *self.test)


def split_days(days: Sequence[str], train: int, val: int, test: int) -> Splits:
    """The oldest `train` days train, the next `val` validate, the newest `test` test.

    Raises ValueError naming what is missing when `days` does not hold exactly
    `train + val + test` distinct days.
    """
    ordered = sorted(set(days))
    needed = train + val + test
    if len(ordered) != needed or len(ordered) != len(days):
        raise ValueError(
            f"need exactly {needed} distinct trading days ({train} train / {val} val / {test} "
            f"test), got {len(ordered)} distinct of {len(days)}: {ordered[:3]}...{ordered[-3:]}"
        )
    return Splits(
        train=tuple(ordered[:train]),
        val=tuple(ordered[train : train + val]),
        test=tuple(ordered[train + val :]),
    )


def fit_normaliser(arrays: Mapping[str, DayArrays], splits: Splits, seed: int = 0) -> Normaliser:
    """The feature normaliser, fitted on the training days of `splits` only."""
    return Normaliser.fit([arrays[day] for day in splits.train], seed=seed)
