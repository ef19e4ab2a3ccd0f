"""The DuckDB warehouse (schema `tiktok`): the only place with SQL.

- `connection`: the one way to open the file (lock wait, schema upgrade, always closed);
- `schema`: the tables and their numbered upgrades;
- `raw`: the raw snapshot, the request ledger, finished partitions;
- `derive` (+ `sql/`): follower and engagement snapshots, cohort summary;
- `queries`: what checks, metadata, charts and the CLI read;
- `export`: tables to Parquet or CSV.

Every statement takes its values as parameters; table names come from this package's constants.
"""

from research_pipeline.warehouse.connection import connect
from research_pipeline.warehouse.derive import DERIVED_TABLES, derive
from research_pipeline.warehouse.export import EXPORTABLE_TABLES, export_table
from research_pipeline.warehouse.raw import (
    Key,
    copy_answers_from_other_cohorts,
    final_usernames,
    finish_snapshots,
    record_source,
    requests_spent_on,
    save_fetched,
    unfinished_count,
)
from research_pipeline.warehouse.schema import LATEST_VERSION, upgrade

__all__ = [
    "DERIVED_TABLES",
    "EXPORTABLE_TABLES",
    "LATEST_VERSION",
    "Key",
    "connect",
    "copy_answers_from_other_cohorts",
    "derive",
    "export_table",
    "final_usernames",
    "finish_snapshots",
    "record_source",
    "requests_spent_on",
    "save_fetched",
    "unfinished_count",
    "upgrade",
]
