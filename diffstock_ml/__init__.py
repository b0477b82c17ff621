"""diffstock_ml: the pure library behind diffstock (no dagster, no mlflow)."""
