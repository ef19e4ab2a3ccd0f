"""Each user's last answers, kept so that no daily query reads the whole history.

Three questions are asked of every user every day: its latest ok answer before a date (deltas
and rates), its latest final answer on or before a date (cohort aggregates and coverage, the
planner, the 15-day check), and whether that answer says the account is gone. Asked of
`tiktok.user_info` they scan a year of history for a day's work (100k users x 365 days: 36.5 M
rows). Two answers per user are all that can matter from before any date: the last final one
and the last ok one with counts. `tiktok.last_answers` keeps those two for the answers dated
before `tiktok.last_answers_as_of`; with the answers from that date on, read from `user_info`
(a few days of rows: DuckDB skips older row groups by their date range), it answers the three
questions for any date on or after it, at the cost of the cohort rather than of the history.

Derivation moves the date forward (`advance`). Writers that change answers dated before it (a
re-run of an old day, an account forgotten) fold those users again (`refold_changed`) in the
same transaction, so the kept answers are always what `user_info` says. A question about an
earlier date (re-deriving an old partition) reads `user_info` whole, as before.
"""

from dataclasses import dataclass
from datetime import date

import duckdb

from research_pipeline.tiktok.constants import COUNT_FIELDS
from research_pipeline.warehouse import sql

_COLUMNS = ("username", "snapshot_date", "status", "error_kind", *COUNT_FIELDS)
_COLUMN_LIST = ", ".join(_COLUMNS)
_BEGINNING = date(1, 1, 1)

# The answers that can matter for dates >= $since (a CTE named `answers`, then a comma).
ANSWERS_CTE = sql.load("answers")
# What an answer says of its user: 'ok', or the kind of its error ('private', 'not_found', ...).
ANSWER_KIND = "CASE WHEN status = 'ok' THEN 'ok' ELSE coalesce(error_kind, 'other') END"

# For each user of `pool`, its last final answer and its last ok answer with counts (one row
# when they are the same answer), among those dated before $until. Follows a CTE `pool`.
_FOLD = """
folded AS (
    SELECT username,
           arg_max(pool, snapshot_date) AS last_final,
           arg_max(pool, snapshot_date) FILTER (WHERE status = 'ok'
                                                AND follower_count IS NOT NULL) AS last_ok
    FROM pool WHERE snapshot_date < $until GROUP BY username
)
SELECT unnest(last_final) FROM folded
UNION ALL
SELECT unnest(last_ok) FROM folded
WHERE last_ok IS NOT NULL AND last_ok IS DISTINCT FROM last_final
"""


@dataclass(frozen=True)
class AnswerSource:
    """How a query reads the answers: the parameters of ANSWERS_CTE."""

    since: date
    use_state: bool

    @property
    def parameters(self) -> dict:
        return {"since": self.since, "use_state": self.use_state}


def kept_as_of(conn: duckdb.DuckDBPyConnection) -> date | None:
    rows = conn.execute("SELECT max(as_of) FROM tiktok.last_answers_as_of").fetchall()
    return rows[0][0]


# Every final answer ever stored: for questions the kept last answers cannot answer.
WHOLE_HISTORY = AnswerSource(since=_BEGINNING, use_state=False)


def source_for(conn: duckdb.DuckDBPyConnection, earliest: date) -> AnswerSource:
    """Where to read answers for questions about dates >= `earliest`: the kept answers when
    they are dated before it, the whole history otherwise."""
    as_of = kept_as_of(conn)
    if as_of is not None and as_of <= earliest:
        return AnswerSource(since=as_of, use_state=True)
    return WHOLE_HISTORY


def advance(conn: duckdb.DuckDBPyConnection, until: date) -> None:
    """Keep the last answers dated before `until` (never moves back): only users answered since
    the kept date are folded again, so a day costs what that day's answers cost. The first call
    on a warehouse reads the whole history once. Runs in the caller's transaction."""
    as_of = kept_as_of(conn)
    if as_of is not None and as_of >= until:
        return
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE folded AS
        WITH recent AS (
            SELECT {_COLUMN_LIST} FROM tiktok.user_info
            WHERE is_final AND snapshot_date >= $since AND snapshot_date < $until
        ),
        pool AS (
            SELECT {_COLUMN_LIST} FROM tiktok.last_answers
            WHERE username IN (SELECT username FROM recent)
            UNION ALL
            SELECT * FROM recent
        ),
        {_FOLD}
        """,  # noqa: S608 - constant SQL
        {"since": as_of or _BEGINNING, "until": until},
    )
    conn.execute("DELETE FROM tiktok.last_answers WHERE username IN (SELECT username FROM folded)")
    conn.execute(f"INSERT INTO tiktok.last_answers SELECT {_COLUMN_LIST} FROM folded")  # noqa: S608
    conn.execute("DROP TABLE folded")
    conn.execute("DELETE FROM tiktok.last_answers_as_of")
    conn.execute("INSERT INTO tiktok.last_answers_as_of VALUES (?)", [until])


def refold_changed(conn: duckdb.DuckDBPyConnection, changed: str) -> None:
    """After rows of `user_info` changed: `changed` names a relation with (snapshot_date,
    username) of the rows written, redacted or deleted. Users with such rows dated before the
    kept date get their kept answers folded again from `user_info` (rare: an old day re-run, an
    account forgotten); changes from the kept date on need nothing. Runs in the caller's
    transaction."""
    as_of = kept_as_of(conn)
    if as_of is None:
        return
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE refold AS SELECT DISTINCT username FROM {changed} "  # noqa: S608
        "WHERE snapshot_date < ?",
        [as_of],
    )
    if not conn.execute("SELECT count(*) FROM refold").fetchall()[0][0]:
        conn.execute("DROP TABLE refold")
        return
    conn.execute("DELETE FROM tiktok.last_answers WHERE username IN (SELECT username FROM refold)")
    conn.execute(
        f"INSERT INTO tiktok.last_answers WITH pool AS (SELECT {_COLUMN_LIST} "  # noqa: S608
        f"FROM tiktok.user_info WHERE is_final AND username IN (SELECT username FROM refold)), "
        f"{_FOLD}",
        {"until": as_of},
    )
    conn.execute("DROP TABLE refold")
