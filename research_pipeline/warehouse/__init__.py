"""The DuckDB warehouse (schema `tiktok`): the only place with SQL.

- `connection`: the one way to open the file (lock wait, schema upgrade, always closed);
- `schema`: the tables and their numbered upgrades;
- `raw`: the raw snapshot, the request ledger, finished partitions;
- `answers`: each user's last answers, kept so no daily query reads the history;
- `derivation` (+ `sql/`): follower and engagement snapshots, cohort summary;
- `queries`: what checks, metadata, charts and the CLI read;
- `export`: tables to Parquet or CSV.

Every statement takes its values as parameters; table names come from this package's constants.
"""

import importlib

# name -> the module that defines it. Loaded on first use (PEP 562), so that a command importing
# one constant of the warehouse (a CLI choice list) does not load pandas and DuckDB to parse its
# arguments.
_WHERE = {
    "connect": "connection",
    "LOCK_WAIT_SECONDS": "connection",
    "DERIVED_TABLES": "derivation",
    "derive": "derivation",
    "EXPORTABLE_TABLES": "export",
    "export_table": "export",
    "Key": "raw",
    "copy_answers_from_other_cohorts": "raw",
    "final_usernames": "raw",
    "finish_snapshots": "raw",
    "record_source": "raw",
    "requests_spent_on": "raw",
    "save_fetched": "raw",
    "unfinished_count": "raw",
    "LATEST_VERSION": "schema",
    "current_version": "schema",
    "upgrade": "schema",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
