"""What the `tiktok` assets share: how a warehouse asset is declared, and the metadata each
attaches (Dagster's standard keys, so the UI shows the table's name, row count and columns in
its usual places)."""

from dagster import BackfillPolicy, MetadataValue, TableColumn, TableSchema

from research_pipeline.orchestration.names import WAREHOUSE_POOL
from research_pipeline.orchestration.partitions import snapshot_partitions
from research_pipeline.warehouse import queries

# Every asset after the raw snapshot: date x cohort partitions, a backfill as one run, one
# DuckDB writer at a time.
WAREHOUSE_ASSET = dict(
    key_prefix="tiktok",
    group_name="tiktok",
    partitions_def=snapshot_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)


def table_metadata(conn, table: str, rows: int) -> dict:
    columns = [TableColumn(name, kind) for name, kind in queries.table_columns(conn, table)]
    return {
        "dagster/table_name": f"tiktok.{table}",
        "dagster/row_count": MetadataValue.int(rows),
        "dagster/column_schema": TableSchema(columns=columns),
    }
