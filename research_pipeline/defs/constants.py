"""Names shared by the Dagster wiring."""

import os
from pathlib import Path

DEFAULT_COHORTS_DIR = "cohorts"
DEFAULT_DUCKDB_PATH = "data/research.duckdb"
PARTITIONS_START_DATE = "2025-01-01"
# Runs that write the DuckDB file carry this tag; dagster.yaml lets one such run go at a time.
WRITER_TAG = {"research_pipeline/duckdb_writer": "true"}
# Steps that open the DuckDB file share this pool (one slot: see dagster.yaml).
WAREHOUSE_POOL = "duckdb_warehouse"
SNAPSHOT_RETRIES = 3


def cohorts_dir() -> Path:
    return Path(os.environ.get("RESEARCH_PIPELINE_COHORTS_DIR") or DEFAULT_COHORTS_DIR)


def duckdb_path() -> str:
    return os.environ.get("RESEARCH_PIPELINE_DUCKDB") or DEFAULT_DUCKDB_PATH
