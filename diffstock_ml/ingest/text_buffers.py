"""Byte-level views of a string column (its Arrow buffers), for checks that need no copy."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

# What `str.strip_chars()` may remove at an end: ASCII whitespace, or the first or last byte of
# a multi-byte character (some are whitespace, e.g. U+00A0 or U+3000).
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[ord(c) for c in " \t\n\r\v\f"]] = True
_ASCII_SPACE[0x80:] = True


def value_bytes(values: pl.Series | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(data, starts, lengths)` of the non-null values: value i is `lengths[i]` bytes of
    `data` from `starts[i]`."""
    text = values.to_arrow() if isinstance(values, pl.Series) else values
    if text.type != pa.large_string():
        text = text.cast(pa.large_string())
    if len(text) == 0:
        return np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, offsets, data = text.buffers()
    offsets = np.frombuffer(offsets, np.int64)[text.offset : text.offset + len(text) + 1]
    starts, lengths = offsets[:-1], np.diff(offsets)
    if text.null_count:
        valid = np.asarray(text.is_valid())
        starts, lengths = starts[valid], lengths[valid]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return data, starts, lengths


def may_need_strip(values: pl.Series) -> bool:
    """False when no value starts or ends with a byte that `str.strip_chars()` could remove."""
    data, starts, lengths = value_bytes(values)
    filled = lengths > 0
    starts, lengths = starts[filled], lengths[filled]
    return bool(_ASCII_SPACE[data[starts]].any() or _ASCII_SPACE[data[starts + lengths - 1]].any())
