"""Names shared by the Dagster definitions and the code that launches runs."""

# Runs that write the DuckDB file carry this tag; dagster.yaml lets one such run go at a time.
WRITER_TAG = {"research_pipeline/duckdb_writer": "true"}
# Steps that open the DuckDB file share this pool (one slot: see dagster.yaml).
WAREHOUSE_POOL = "duckdb_warehouse"
SNAPSHOT_RETRIES = 3
