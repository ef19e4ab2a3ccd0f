"""Derived tables: follower and engagement snapshots and the cohort summary, in DuckDB SQL.

The SQL lives in `sql/`, one file per table, next to this code that runs it; the two snapshot
tables share `with_previous.sql` (each user's own previous ok snapshot), and all three read
earlier answers through `answers.sql` (warehouse.answers). A partition's rows are
replaced in one statement and transaction, for every partition of a step at once (set work).
"""

import hashlib
from collections.abc import Sequence
from functools import cache

import duckdb

from research_pipeline.tiktok.error_kinds import USER_GONE_KINDS
from research_pipeline.warehouse import answers, sql
from research_pipeline.warehouse.raw import Key, key_rows
from research_pipeline.warehouse.registry import DERIVED_TABLES
from research_pipeline.warehouse.transactions import registered, transaction

# The SQL form of the one list of gone kinds (tiktok.error_kinds), written into the SQL files'
# /*GONE_KINDS*/: constants of this project, never input.
GONE_KINDS_SQL = ", ".join(f"'{kind}'" for kind in USER_GONE_KINDS)
_NEEDS_PREVIOUS = ("follower_snapshots", "engagement_snapshots")


@cache
def derivation_sql(table: str) -> str:
    """The SELECT that computes `table`'s rows for the partitions in `keys`."""
    if table not in DERIVED_TABLES:
        raise ValueError(f"unknown derived table {table!r}; choose one of {DERIVED_TABLES}")
    prefix = sql.load("with_previous") if table in _NEEDS_PREVIOUS else ""
    return answers.ANSWERS_CTE + prefix + sql.load(table).replace("/*GONE_KINDS*/", GONE_KINDS_SQL)


def derivation_version(table: str) -> str:
    """A short hash of `table`'s SQL: Dagster's code version, so the UI marks the table stale
    when the SQL that computes it changes."""
    return hashlib.sha256(derivation_sql(table).encode()).hexdigest()[:12]


def derive(conn: duckdb.DuckDBPyConnection, table: str, keys: Sequence[Key]) -> dict[Key, int]:
    """Replace `table`'s rows of the given partitions; returns the rows written per partition.

    The users' earlier answers come from the kept last answers (moved forward to the earliest
    partition's date first), so a day costs the same after a year as after two days; a
    partition older than the kept date reads the whole history."""
    select = derivation_sql(table)  # checks the name before it reaches SQL
    if not keys:
        return {}
    earliest = min(day for day, _ in keys)
    with registered(conn, keys=key_rows(keys)), transaction(conn):
        answers.advance(conn, earliest)
        source = answers.source_for(conn, earliest)
        conn.execute(
            f"DELETE FROM tiktok.{table} t USING keys k "  # noqa: S608 - a known table name
            "WHERE t.snapshot_date = k.snapshot_date AND t.cohort = k.cohort"
        )
        conn.execute(f"INSERT INTO tiktok.{table} BY NAME {select}", source.parameters)  # noqa: S608
        counts = conn.execute(
            f"SELECT snapshot_date, cohort, count(*) FROM tiktok.{table} "  # noqa: S608
            "SEMI JOIN keys USING (snapshot_date, cohort) GROUP BY ALL"
        ).fetchall()
    written = {key: 0 for key in keys}
    written.update({(d, c): n for d, c, n in counts})
    return written
