"""The copy researchers read: readers never cost a day's fetch.

DuckDB lets no process write a file while any other process holds it open, even read-only: a
colleague's notebook left open on the warehouse used to stop the day's snapshot (the API serves
today only: that day was lost). So the pipeline's own file is opened by the pipeline only, and
after every run that changed it a copy is published beside it: checkpointed and copied while
the pipeline holds its own write lock (no batch can land midway) into a new file of its own
(`.published/<name>.published-<time>.duckdb`), then `<name>.published.duckdb`, a link, is
turned to it in one step. A reader with the old copy open keeps reading a consistent earlier
state; the next `connect` sees the new one, in the same process too: DuckDB keeps one database
per file in a process, keyed by the file a path leads to, so a copy renamed over the old one
was still the old one to a notebook that had any connection to it left open (4,007 rows seen
instead of 5,036). Earlier copies are deleted (a reader that has one open keeps reading it
until it closes it). The README, `export` and `export-dataset` read this copy.
"""

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from research_pipeline.warehouse.connection import connect, published_path

VERSIONS = ".published"  # the folder beside the warehouse that holds each run's copy


def publish(database: str | Path, conn: duckdb.DuckDBPyConnection | None = None) -> Path:
    """Publish the current state of `database` as a new copy and point the readers' link at
    it; returns the link's path. With `conn`, a writing connection to it already open (its
    lock held), no other is opened."""
    if conn is None:
        with connect(database) as conn:
            return publish(database, conn)
    link = published_path(database)
    folder = link.parent / VERSIONS
    folder.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    copy = folder / f"{link.stem}-{stamp}{link.suffix}"
    partial = folder / f".{copy.name}.partial"
    new_link = link.with_name(f".{link.name}.{os.getpid()}.link")
    conn.execute("CHECKPOINT")  # everything in the file, nothing left in a .wal
    try:
        shutil.copyfile(database, partial)
        os.chmod(partial, 0o644)
        os.replace(partial, copy)
        new_link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(copy, link.parent), new_link)
        os.replace(new_link, link)  # a regular file of an earlier release is replaced too
    finally:
        partial.unlink(missing_ok=True)
        new_link.unlink(missing_ok=True)
    for earlier in folder.glob(f"{link.stem}-*{link.suffix}"):
        if earlier != copy:
            earlier.unlink(missing_ok=True)
    return link
