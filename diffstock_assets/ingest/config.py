"""Run configuration of the ingest stage (editable in the launchpad); converts to IngestConfig."""

from __future__ import annotations

import dagster as dg

from diffstock_ml.config import IngestConfig

_DEFAULT = IngestConfig()


class CleanBarsConfig(dg.Config):
    """How raw bars are cleaned, and when the day's checks warn."""

    tick: float = _DEFAULT.tick
    stale_after_s: int = _DEFAULT.stale_after_s
    outlier_factor: float = _DEFAULT.outlier_factor
    outlier_neighbours: int = _DEFAULT.outlier_neighbours
    max_stale_share: float = 0.10
    max_quarantined_share: float = 0.01

    def to_ingest_config(self) -> IngestConfig:
        return IngestConfig(
            tick=self.tick,
            stale_after_s=self.stale_after_s,
            outlier_factor=self.outlier_factor,
            outlier_neighbours=self.outlier_neighbours,
        )
