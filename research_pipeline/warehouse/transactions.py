"""Two small context managers every warehouse module uses: a transaction, and frames registered
under explicit names for the length of a statement or two.

DuckDB 2 refuses `register` on a connection with a half-read result: the warehouse reads results
whole (`fetchall`), never with `fetchone`."""

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing: commit when the body ends, roll back when it raises."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except duckdb.Error:
            pass  # DuckDB already ended it (a failed COMMIT): the real error is the one raised
        raise


@contextmanager
def registered(conn: duckdb.DuckDBPyConnection, **frames: pd.DataFrame) -> Iterator[None]:
    """Make each frame readable by SQL under its keyword's name, then forget it."""
    for name, frame in frames.items():
        conn.register(name, frame)
    try:
        yield
    finally:
        for name in frames:
            conn.unregister(name)
