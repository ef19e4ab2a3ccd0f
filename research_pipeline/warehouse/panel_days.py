"""Every member-day accounted for: `tiktok.panel_days`, one row per (cohort, member, API day)
from the day the member joined the cohort to the day it left, with why its value is there or
not.

A researcher treats the gaps differently by their cause: by design (the cadence did not call
for the member), by the panel's size (the quota ran short), by the account (private, not found:
informative), by the infrastructure (an outage, a stopped run, credentials, a day not run).
The status comes from what was stored, never guessed afterwards: the answer of the day, the
tombstone of an account forgotten, and each plan's decision as it was made and how its asking
ended (`tiktok.plan_decisions`, written by the snapshot). Derived again in full for a cohort,
so re-deriving from the same answers and plans gives the same table.
"""

import hashlib
from collections.abc import Sequence
from datetime import date, timedelta

import duckdb

from research_pipeline.member_days import GROUPS, STATUSES
from research_pipeline.warehouse import sql
from research_pipeline.warehouse.derivation import GONE_KINDS_SQL
from research_pipeline.warehouse.transactions import Rows, registered, transaction

# Days before a cohort's latest panel day derived again by each run (see derive_panel_days).
REDERIVED_DAYS = 15
_SELECT = sql.load("panel_days").replace("/*GONE_KINDS*/", GONE_KINDS_SQL)


def panel_days_version() -> str:
    """A short hash of the panel's SQL: Dagster's code version of the asset."""
    return hashlib.sha256(_SELECT.encode()).hexdigest()[:12]


def derive_panel_days(
    conn: duckdb.DuckDBPyConnection, cohorts: Sequence[str], full: bool = False
) -> int:
    """Derive the panel of `cohorts` again from the stored answers, tombstones and plans, from
    REDERIVED_DAYS before each cohort's latest panel day on (`full`, or a cohort without a
    panel yet: every day); returns the rows written. What can change a past day comes within
    that window: a journal stored the next day, a forgetting pass (an account is forgotten the
    day it answers gone), a day not run (filled when the next run comes); older days stay as
    derived, so a run costs the same after a year as after a week."""
    if full:
        starts = [(c, None) for c in cohorts]
    else:
        latest = dict(
            conn.execute(
                "SELECT cohort, max(snapshot_date) FROM tiktok.panel_days "
                "WHERE list_contains(?, cohort) GROUP BY 1",
                [list(cohorts)],
            ).fetchall()
        )
        starts = [(c, _window_start(latest.get(c))) for c in cohorts]
    chosen = Rows([("cohort", "VARCHAR"), ("start", "DATE")], starts)
    with registered(conn, chosen=chosen), transaction(conn):
        conn.execute(
            "DELETE FROM tiktok.panel_days p USING chosen c WHERE p.cohort = c.cohort "
            "AND (c.start IS NULL OR p.snapshot_date >= c.start)"
        )
        return conn.execute(f"INSERT INTO tiktok.panel_days BY NAME {_SELECT}").fetchall()[0][0]  # noqa: S608 - constant


def _window_start(latest: date | None) -> date | None:
    return None if latest is None else latest - timedelta(days=REDERIVED_DAYS)


def status_counts(conn: duckdb.DuckDBPyConnection, day: date, cohort: str) -> dict[str, int]:
    """Members of `cohort` on `day` by status (only statuses that occur)."""
    rows = conn.execute(
        "SELECT status, count(*) FROM tiktok.panel_days WHERE snapshot_date = ? AND cohort = ? "
        "GROUP BY 1 ORDER BY 1",
        [day, cohort],
    ).fetchall()
    return dict(rows)


def completeness(conn: duckdb.DuckDBPyConnection, cohort: str) -> dict[str, int]:
    """The cohort's member-days in all, and by group of GROUPS (observed, and of the rest by
    design, by quota, by account, by infrastructure)."""
    by_status = dict(
        conn.execute(
            "SELECT status, count(*) FROM tiktok.panel_days WHERE cohort = ? GROUP BY 1", [cohort]
        ).fetchall()
    )
    counts = {group: 0 for group in GROUPS}
    for status, n in by_status.items():
        counts[STATUSES[status][0]] += n
    return {"member_days": sum(by_status.values()), **counts}
