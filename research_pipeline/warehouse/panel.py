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
