"""Two small context managers every warehouse module uses: a transaction, and rows from Python
made readable by SQL under explicit names for the length of a statement or two.

Rows reach DuckDB as one list per column (`unnest` of typed list parameters): no pandas frame
on the way. A snapshot that loaded pandas for its writes paid 0.4 s of imports every run
(docs/benchmarks.md, "Fixed cost"); a 500-row batch this way takes about 7 ms.

DuckDB 2 refuses some statements on a connection with a half-read result: the warehouse reads
results whole (`fetchall`), never with `fetchone`."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb


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


@dataclass(frozen=True)
class Rows:
    """Rows for SQL: `columns` as (name, DuckDB type), `rows` as tuples in that order. The
    names and types are the calling module's constants, never values from outside."""

    columns: Sequence[tuple[str, str]]
    rows: Sequence[tuple]

    def column_values(self) -> list[list]:
        if not self.rows:
            return [[] for _ in self.columns]
        return [list(values) for values in zip(*self.rows, strict=True)]


@contextmanager
def registered(conn: duckdb.DuckDBPyConnection, **tables: Rows) -> Iterator[None]:
    """Make each `Rows` readable by SQL as a temporary table of its keyword's name, then drop
    it. A temporary table is the connection's own: another process never sees it."""
    try:
        for name, table in tables.items():
            select = ", ".join(f"unnest(?::{kind}[]) AS {column}" for column, kind in table.columns)
            conn.execute(
                f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select}",  # noqa: S608 - constants
                table.column_values(),
            )
        yield
    finally:
        for name in tables:
            try:
                conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
            except duckdb.Error:
                pass  # inside a failed transaction: its rollback drops the table, and the
                # error that failed it is the one to raise
