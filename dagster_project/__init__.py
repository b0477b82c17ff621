"""The Dagster code location of diffstock: definitions, jobs and wiring from the environment."""
