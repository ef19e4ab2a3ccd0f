"""What the planner reads (each user's last final answer) and what a run records about its
panels (who was in each cohort that day, at which cadence)."""

from collections.abc import Mapping, Sequence
from datetime import date

import duckdb

from research_pipeline.warehouse import answers
from research_pipeline.warehouse.transactions import Rows, registered, transaction

_LAST_FINAL = f"""{answers.ANSWERS_CTE}
latest AS (
    SELECT username, max(snapshot_date) AS day,
           arg_max({answers.ANSWER_KIND}, snapshot_date) AS kind
    FROM answers WHERE snapshot_date <= $up_to GROUP BY username
)
SELECT username, day, kind FROM latest
"""  # noqa: S608 - constants of the answers module


def last_final_answers(conn: duckdb.DuckDBPyConnection, up_to: date) -> dict[str, tuple]:
    """username -> (API day, 'ok' or error kind) of the user's last final answer on or before
    `up_to`, whichever cohort it was asked for (from the kept last answers when they allow)."""
    source = answers.source_for(conn, up_to)
    rows = conn.execute(_LAST_FINAL, {**source.parameters, "up_to": up_to}).fetchall()
    return {username: (day, kind) for username, day, kind in rows}


_MEMBERSHIP_TYPES = (
    ("snapshot_date", "DATE"), ("cohort", "VARCHAR"), ("username", "VARCHAR"),
    ("cadence_days", "INTEGER"),
)  # fmt: skip


def record_members(
    conn: duckdb.DuckDBPyConnection,
    day: date,
    members: Mapping[str, Sequence[str]],
    cadence_days: Mapping[str, int],
) -> None:
    """Replace the membership of each cohort on `day` (the cohort files as they were then) with
    the cohort's cadence, against which its coverage counts a member fresh or stale."""
    frame = Rows(
        _MEMBERSHIP_TYPES,
        [(day, c, u, cadence_days[c]) for c, names in members.items() for u in names],
    )
    cohorts = Rows([("cohort", "VARCHAR")], [(c,) for c in members])
    with registered(conn, frame=frame, cohorts=cohorts), transaction(conn):
        conn.execute(
            "DELETE FROM tiktok.cohort_members WHERE snapshot_date = ? "
            "AND cohort IN (SELECT cohort FROM cohorts)",
            [day],
        )
        conn.execute("INSERT INTO tiktok.cohort_members SELECT * FROM frame")


_DECISION_TYPES = (
    ("snapshot_date", "DATE"), ("cohort", "VARCHAR"), ("username", "VARCHAR"),
    ("decision", "VARCHAR"), ("plan_rank", "INTEGER"), ("day_budget", "INTEGER"),
)  # fmt: skip


def record_plan(conn: duckdb.DuckDBPyConnection, rows: Sequence[tuple]) -> None:
    """Keep each plan's decision per member: (day, cohort, username, decision, rank, budget).
    A later plan of the same day replaces an earlier one, except that a member the earlier
    plan asked for stays 'planned' when the later finds it not due (it was answered)."""
    frame = Rows(_DECISION_TYPES, rows)
    with registered(conn, frame=frame), transaction(conn):
        conn.execute("""
            INSERT INTO tiktok.plan_decisions
            SELECT f.*, NULL, now()::TIMESTAMP FROM frame f
            ANTI JOIN tiktok.plan_decisions d USING (snapshot_date, cohort, username)
        """)
        conn.execute("""
            UPDATE tiktok.plan_decisions d SET decision = f.decision, plan_rank = f.plan_rank,
                day_budget = f.day_budget, ended_because = NULL, decided_at = now()::TIMESTAMP
            FROM frame f
            WHERE d.snapshot_date = f.snapshot_date AND d.cohort = f.cohort
              AND d.username = f.username
              AND NOT (d.decision = 'planned' AND f.decision = 'not_due')
              AND d.decided_at < now()::TIMESTAMP
        """)


def record_ending(
    conn: duckdb.DuckDBPyConnection, day: date, cohorts: Sequence[str], ending: str
) -> None:
    """How the asking of `day`'s planned members of `cohorts` ended (done, quota, outage,
    credentials, interrupted, deadline): the status of a planned member left without an
    answer. A run killed before it could say stays NULL: interrupted."""
    conn.execute(
        "UPDATE tiktok.plan_decisions SET ended_because = ? WHERE snapshot_date = ? "
        "AND list_contains(?, cohort) AND decision = 'planned' AND ended_because IS NULL",
        [ending, day, list(cohorts)],
    )
