"""The copy researchers read: readers never cost a day's fetch.

DuckDB lets no process write a file while any other process holds it open, even read-only: a
colleague's notebook left open on the warehouse used to stop the day's snapshot (the API serves
today only: that day was lost). So the pipeline's own file is opened by the pipeline only, and
after every run that changed it a copy is published beside it (`<name>.published.duckdb`):
checkpointed and copied while the pipeline holds its own write lock (no batch can land midway),
then renamed over the previous copy in one step. A reader with the old copy open keeps reading
a consistent earlier state (the old file stays until it closes it); the next `connect` sees the
new one. The README, `export` and `export-dataset` read this copy.
"""

import os
import shutil
from pathlib import Path

import duckdb

from research_pipeline.warehouse.connection import connect, published_path


def publish(database: str | Path, conn: duckdb.DuckDBPyConnection | None = None) -> Path:
    """Replace the published copy of `database` by its current state; returns its path. With
    `conn`, a writing connection to it already open (its lock held), no other is opened."""
    if conn is None:
        with connect(database) as conn:
            return publish(database, conn)
    target = published_path(database)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    conn.execute("CHECKPOINT")  # everything in the file, nothing left in a .wal
    try:
        shutil.copyfile(database, partial)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
