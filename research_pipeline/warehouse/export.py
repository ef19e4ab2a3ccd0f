"""Tables out of the warehouse, as Parquet or CSV for R or pandas."""

from datetime import date
from pathlib import Path

import duckdb

from research_pipeline.errors import WarehouseError
from research_pipeline.warehouse.registry import BY_NAME, EXPORTABLE_TABLES

__all__ = ["EXPORTABLE_TABLES", "FORMATS", "export_table"]
FORMATS = ("parquet", "csv")


def export_table(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    out: Path,
    file_format: str,
    cohort: str | None = None,
    since: date | None = None,
) -> int:
    """Write a table (optionally one cohort, from a date on) to a file; returns the rows written."""
    if table not in EXPORTABLE_TABLES:
        raise WarehouseError(
            f"unknown table {table!r}; choose one of {', '.join(EXPORTABLE_TABLES)}"
        )
    if file_format not in FORMATS:
        raise WarehouseError(f"unknown format {file_format!r}; choose parquet or csv")
    date_column = BY_NAME[table].when  # the column `--since` filters on: when a row happened
    query = f"SELECT * FROM tiktok.{table} WHERE (? IS NULL OR cohort = ?) "  # noqa: S608
    query += f"AND (?::DATE IS NULL OR {date_column} >= ?::DATE) ORDER BY ALL"
    relation = conn.sql(query, params=[cohort, cohort, since, since])
    out.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "parquet":
        relation.write_parquet(str(out))
    else:
        relation.write_csv(str(out))
    return len(relation)
