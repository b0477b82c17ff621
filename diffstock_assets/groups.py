"""Asset group names: one per pipeline stage."""

INGEST = "ingest"
FEATURES = "features"
MODEL = "model"
EVALUATION = "evaluation"
