"""Raw 1 s bar CSVs of one trading day -> cleaned regular-session grid plus quarantine."""

from diffstock_ml.ingest.clean import CleanDay, clean_day
from diffstock_ml.ingest.read import DayListing, list_day_folder, list_raw_days
from diffstock_ml.ingest.schema import BARS_SCHEMA, FILES_SCHEMA, QUARANTINE_SCHEMA, Reason

__all__ = [
    "BARS_SCHEMA",
    "FILES_SCHEMA",
    "QUARANTINE_SCHEMA",
    "CleanDay",
    "DayListing",
    "Reason",
    "clean_day",
    "list_day_folder",
    "list_raw_days",
]
