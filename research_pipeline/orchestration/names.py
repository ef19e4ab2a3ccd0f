"""Names shared by the Dagster definitions and the code that launches runs."""

# The first day a partition exists for (RESEARCH_PIPELINE_START_DATE): the API serves today
# only, so earlier days could never be fetched and would show as "missing" forever.
DEFAULT_PARTITIONS_START_DATE = "2026-11-01"
# Runs that write the DuckDB file carry this tag; dagster.yaml lets one such run go at a time.
WRITER_TAG = {"research_pipeline/duckdb_writer": "true"}
# Steps that open the DuckDB file share this pool (one slot: see dagster.yaml).
WAREHOUSE_POOL = "duckdb_warehouse"
SNAPSHOT_RETRIES = 3
