"""Reads: what the asset checks, metadata, charts, schedule and CLI ask of the warehouse."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb

from research_pipeline.tables import Table
from research_pipeline.tiktok.constants import COUNT_FIELDS
from research_pipeline.warehouse import answers
from research_pipeline.warehouse.derivation import DERIVED_TABLES
from research_pipeline.warehouse.forget import PROFILE_COLUMNS
from research_pipeline.warehouse.raw import Key, key_rows
from research_pipeline.warehouse.transactions import Rows, registered

_RAW_ROWS = "SELECT u.* FROM tiktok.user_info u SEMI JOIN keys USING (snapshot_date, cohort)"


def preview(
    conn: duckdb.DuckDBPyConnection, table: str, snapshot_date: date, cohort: str, limit: int = 10
) -> Table:
    """The first rows of one partition of a table, for the UI. Never the profile text: a
    preview is kept in Dagster's event log, where no later forgetting pass can reach it
    (TikTok's terms): usernames, statuses and counts only."""
    if table not in DERIVED_TABLES + ("user_info",):
        raise ValueError(f"unknown table {table!r}")
    columns = "* EXCLUDE (" + ", ".join(PROFILE_COLUMNS) + ")" if table == "user_info" else "*"
    return _table(
        conn.execute(
            f"SELECT {columns} FROM tiktok.{table} WHERE snapshot_date = ? AND cohort = ? "  # noqa: S608
            "ORDER BY 3 LIMIT ?",
            [snapshot_date, cohort, limit],
        )
    )


def _table(result: duckdb.DuckDBPyConnection) -> Table:
    rows = result.fetchall()
    return Table([column[0] for column in result.description], rows)


@dataclass(frozen=True)
class RawCheckCounts:
    duplicate_rows: int
    rows_with_negative_counts: int
    rows: int
    error_rows: int


_ANY_NEGATIVE_COUNT = " OR ".join(f"{column} < 0" for column in COUNT_FIELDS)


def raw_check_counts(
    conn: duckdb.DuckDBPyConnection, members: dict[Key, Sequence[str]]
) -> RawCheckCounts:
    """What the checks on `tiktok/user_info` look at, over the given partitions."""
    with registered(conn, keys=key_rows(members)):
        duplicates, negatives, total, errors = conn.execute(f"""
            SELECT count(*) - count(DISTINCT (snapshot_date, cohort, username)),
                   count(*) FILTER (WHERE {_ANY_NEGATIVE_COUNT}),
                   count(*),
                   count(*) FILTER (WHERE status <> 'ok')
            FROM ({_RAW_ROWS})
        """).fetchall()[0]  # noqa: S608 - fixed SQL, no values interpolated
    return RawCheckCounts(duplicates, negatives, total, errors)


def summary_numbers(conn: duckdb.DuckDBPyConnection, key: Key) -> dict[str, float | None]:
    """One partition's summary: the figures worth plotting from day to day."""
    names = (
        "median_followers", "total_followers", "median_follower_growth_per_day", "members",
        "fetched", "fresh", "stale", "never_fetched",
    )  # fmt: skip
    rows = conn.execute(
        f"SELECT {', '.join(names)} FROM tiktok.cohort_summary "  # noqa: S608 - constants
        "WHERE snapshot_date = ? AND cohort = ?",
        list(key),
    ).fetchall()
    return dict(zip(names, rows[0], strict=True)) if rows else dict.fromkeys(names)


def cohort_trajectories(conn: duckdb.DuckDBPyConnection, cohort: str, until: date) -> list[tuple]:
    """Per summarised day: total followers and likes over all members' latest answers, members,
    and members fresh within the cadence. Days without a snapshot are absent, not zero."""
    return conn.execute(
        "SELECT snapshot_date, total_followers, total_likes, members, fresh "
        "FROM tiktok.cohort_summary WHERE cohort = ? AND snapshot_date <= ? "
        "AND total_followers IS NOT NULL ORDER BY snapshot_date",
        [cohort, until],
    ).fetchall()


def panel_statuses(conn: duckdb.DuckDBPyConnection, cohort: str, until: date) -> list[tuple]:
    """(day, username, status) of the cohort's member-days up to `until` (tiktok.panel_days)."""
    return conn.execute(
        "SELECT snapshot_date, username, status FROM tiktok.panel_days "
        "WHERE cohort = ? AND snapshot_date <= ? ORDER BY ALL",
        [cohort, until],
    ).fetchall()


def cohort_summary_on(conn: duckdb.DuckDBPyConnection, snapshot_date: date) -> Table:
    return _table(
        conn.execute(
            "SELECT cohort, members, fetched, ok, errors, fresh, stale, gone, "
            "never_fetched AS never, max_age_days, median_followers, total_followers, "
            "round(median_follower_growth_per_day, 2) AS median_growth_per_day "
            "FROM tiktok.cohort_summary WHERE snapshot_date = ? ORDER BY cohort",
            [snapshot_date],
        )
    )


def followers_gained_by_day(conn: duckdb.DuckDBPyConnection) -> Table:
    return _table(
        conn.execute(
            "SELECT snapshot_date, cohort, sum(follower_delta) AS followers_gained, "
            "count(previous_snapshot_date) AS users_with_previous "
            "FROM tiktok.follower_snapshots GROUP BY ALL ORDER BY 1, 2"
        )
    )


def table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(column, DuckDB type) of a `tiktok` table, for the UI's column schema."""
    return conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'tiktok' AND table_name = ? AND table_catalog = current_database() "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()


_MEMBER_LAST_ANSWERS = f"""{answers.ANSWERS_CTE}
members AS (
    SELECT cohort, username, cadence_days FROM tiktok.cohort_members
    WHERE snapshot_date = $day AND cohort IN (SELECT cohort FROM cohorts)
),
last AS (
    SELECT username, max(snapshot_date) AS last_day,
           arg_max({answers.ANSWER_KIND}, snapshot_date) AS kind
    FROM answers
    WHERE snapshot_date <= $day AND username IN (SELECT username FROM members)
    GROUP BY username
)
SELECT m.cohort, m.username, m.cadence_days, l.last_day, l.kind
FROM members m LEFT JOIN last l USING (username)
ORDER BY m.cohort, m.username
"""  # noqa: S608 - constants of the answers module


def member_last_answers(
    conn: duckdb.DuckDBPyConnection, day: date, cohorts: Sequence[str]
) -> list[tuple]:
    """Per member of `cohorts` on `day`: (cohort, username, cohort cadence, day of the user's
    last final answer on or before `day` or None, 'ok' or its error kind or None)."""
    source = answers.source_for(conn, day)
    with registered(conn, cohorts=Rows([("cohort", "VARCHAR")], [(c,) for c in cohorts])):
        return conn.execute(
            _MEMBER_LAST_ANSWERS,
            {**source.parameters, "day": day},
        ).fetchall()


def errors_by_kind(conn: duckdb.DuckDBPyConnection, keys: Sequence[Key]) -> dict[Key, dict]:
    """Per partition: error rows by kind (not_found, private, ...)."""
    with registered(conn, keys=key_rows(keys)):
        rows = conn.execute(
            "SELECT snapshot_date, cohort, coalesce(error_kind, 'other'), count(*) "
            "FROM tiktok.user_info SEMI JOIN keys USING (snapshot_date, cohort) "
            "WHERE status <> 'ok' GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    found: dict[Key, dict] = {key: {} for key in keys}
    for day, cohort, kind, count in rows:
        found[(day, cohort)][kind] = count
    return found


def cohorts_with_data(conn: duckdb.DuckDBPyConnection) -> list[str]:
    return [c for (c,) in conn.execute(
        "SELECT DISTINCT cohort FROM tiktok.user_info ORDER BY 1").fetchall()]  # fmt: skip


def last_summary_date(conn: duckdb.DuckDBPyConnection, cohort: str) -> date | None:
    return conn.execute(
        "SELECT max(snapshot_date) FROM tiktok.cohort_summary WHERE cohort = ?", [cohort]
    ).fetchall()[0][0]


def last_snapshot_date(conn: duckdb.DuckDBPyConnection, cohort: str) -> date | None:
    return conn.execute(
        "SELECT max(snapshot_date) FROM tiktok.user_info WHERE cohort = ?", [cohort]
    ).fetchall()[0][0]


def ledger_counts(conn: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(every request the ledger holds, those of them 'unrecorded': sent by a run that died
    before recording them, added by the next run) in tiktok.api_requests."""
    [(rows, unrecorded)] = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'unrecorded') FROM tiktok.api_requests"
    ).fetchall()
    return rows, unrecorded


def live_data_older_than(
    conn: duckdb.DuckDBPyConnection, day: date, max_age: int, gone_kinds: Sequence[str]
) -> list[tuple[str, int]]:
    """(username, age in days) of every user whose data the warehouse holds, member of a
    cohort today or not, last answered more than `max_age` days before `day` and not gone
    (their data is forgotten) nor already forgotten as expired (a tombstone): TikTok's terms
    reach all the data we keep."""
    return conn.execute(
        "SELECT username, datediff('day', last_refreshed, ?::DATE) AS age "
        "FROM tiktok.last_refreshed WHERE last_answer NOT IN (SELECT unnest(?::VARCHAR[])) "
        "AND username NOT IN (SELECT username FROM tiktok.tombstones) "
        "AND datediff('day', last_refreshed, ?::DATE) > ? ORDER BY age DESC, username",
        [day, list(gone_kinds), day, max_age],
    ).fetchall()


def members_on(conn: duckdb.DuckDBPyConnection, day: date) -> list[str]:
    """Every user that is a member of some cohort on `day` (the latest membership recorded)."""
    return [
        user
        for (user,) in conn.execute(
            "SELECT DISTINCT username FROM tiktok.cohort_members WHERE snapshot_date = "
            "(SELECT max(snapshot_date) FROM tiktok.cohort_members WHERE snapshot_date <= ?)",
            [day],
        ).fetchall()
    ]
