"""Dagster helpers that are not definitions: partitions, names shared by the definitions, and
launching runs from Python (the CLI, the demo, tests). Definitions live in `defs/`."""
