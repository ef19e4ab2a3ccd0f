"""Metadata every `tiktok` asset attaches: Dagster's standard keys, so the UI shows the table's
name, row count and columns in its usual places."""

from dagster import MetadataValue, TableColumn, TableSchema

from research_pipeline.warehouse import queries


def table_metadata(conn, table: str, rows: int) -> dict:
    columns = [TableColumn(name, kind) for name, kind in queries.table_columns(conn, table)]
    return {
        "dagster/table_name": f"tiktok.{table}",
        "dagster/row_count": MetadataValue.int(rows),
        "dagster/column_schema": TableSchema(columns=columns),
    }
