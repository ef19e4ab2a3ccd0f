"""Names shared by the Dagster definitions and the code that launches runs."""

# Runs that write the DuckDB file carry this tag; dagster.yaml lets one such run go at a time.
WRITER_TAG = {"research_pipeline/duckdb_writer": "true"}
# Steps that open the DuckDB file share this pool (one slot: see dagster.yaml).
WAREHOUSE_POOL = "duckdb_warehouse"
SNAPSHOT_RETRIES = 3
# The metadata key of gone_accounts' materialization naming past cohort_summary partitions
# that counted forgotten accounts; the job that derives them again.
SUMMARIES_TO_DERIVE_AGAIN = "summaries_to_derive_again"
SUMMARIES_AFTER_FORGETTING_JOB = "summaries_after_forgetting_job"
