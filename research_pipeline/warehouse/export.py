"""Tables out of the warehouse, as Parquet or CSV for R or pandas."""

from datetime import date
from pathlib import Path

import duckdb

from research_pipeline.errors import WarehouseError
from research_pipeline.warehouse.registry import BY_NAME, EXPORTABLE_TABLES

__all__ = ["EXPORT_CHOICES", "EXPORTABLE_TABLES", "FORMATS", "export_table"]
FORMATS = ("parquet", "csv")

# A researcher's series: one row per member-day (tiktok.panel_days), the counts where the day
# was observed and the status otherwise, in long form (pandas, R's arrow, DuckDB read it as is).
# A forgotten account's days keep their status and dates, nothing else (its rows are redacted).
_PANEL_SERIES = """
SELECT p.snapshot_date, p.cohort, p.username, p.status,
       u.follower_count, u.following_count, u.likes_count, u.video_count, u.is_verified,
       u.source
FROM tiktok.panel_days p
LEFT JOIN tiktok.user_info u
  ON p.status = 'observed' AND u.snapshot_date = p.snapshot_date AND u.cohort = p.cohort
 AND u.username = p.username
"""
SERIES = {"panel": _PANEL_SERIES}
EXPORT_CHOICES = (*EXPORTABLE_TABLES, *SERIES)


def export_table(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    out: Path,
    file_format: str,
    cohort: str | None = None,
    since: date | None = None,
) -> int:
    """Write a table, or the `panel` series (optionally one cohort, from a date on) to a file;
    returns the rows written."""
    if table not in EXPORT_CHOICES:
        raise WarehouseError(f"unknown table {table!r}; choose one of {', '.join(EXPORT_CHOICES)}")
    if file_format not in FORMATS:
        raise WarehouseError(f"unknown format {file_format!r}; choose parquet or csv")
    source = f"({SERIES[table]})" if table in SERIES else f"tiktok.{table}"
    date_column = BY_NAME[table].when if table in BY_NAME else "snapshot_date"
    query = f"SELECT * FROM {source} WHERE (? IS NULL OR cohort = ?) "  # noqa: S608
    query += f"AND (?::DATE IS NULL OR {date_column} >= ?::DATE) ORDER BY ALL"
    relation = conn.sql(query, params=[cohort, cohort, since, since])
    out.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "parquet":
        relation.write_parquet(str(out))
    else:
        relation.write_csv(str(out))
    return len(relation)
