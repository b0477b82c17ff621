"""Helpers that turn frames into Dagster metadata values."""

from __future__ import annotations

import dagster as dg
import polars as pl


def markdown_table(frame: pl.DataFrame, empty: str = "none") -> dg.MetadataValue:
    """A frame as a Markdown table (rendered in the Dagster UI)."""
    if frame.height == 0:
        return dg.MetadataValue.md(empty)
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=10_000,
        fmt_str_lengths=120,
        float_precision=4,
    ):
        return dg.MetadataValue.md(str(frame))
