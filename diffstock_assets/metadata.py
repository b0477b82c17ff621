"""Helpers that turn frames into Dagster metadata values."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import dagster as dg
import polars as pl

from diffstock_ml.evaluation.document import markdown


def markdown_table(frame: pl.DataFrame, empty: str = "none") -> dg.MetadataValue:
    """A frame as a Markdown table (rendered in the Dagster UI)."""
    return dg.MetadataValue.md(markdown(frame, empty))


def table_metadata(
    rows: int, schema: Mapping[str, object], descriptions: Mapping[str, str] | None = None
) -> dict[str, object]:
    """`dagster/row_count` and `dagster/column_schema` (name, type, meaning) for the catalog."""
    descriptions = descriptions or {}
    columns = [
        dg.TableColumn(name, str(dtype), description=descriptions.get(name))
        for name, dtype in schema.items()
    ]
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": dg.TableSchema(columns=columns),
    }


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG inline in Markdown (a base64 data URI): the Dagster UI shows the figure itself."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
