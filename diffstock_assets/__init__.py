"""Dagster assets, checks and resources of diffstock: thin wrappers around `diffstock_ml`."""
