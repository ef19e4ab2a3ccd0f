"""TikTok's terms: data no longer available through the API is deleted. An account whose latest
answer (in any cohort) says it is gone (not found, refused...) loses everything the API
returned about it: profile text, avatar and links, extra fields and (unless the project's data
agreement allows keeping them) its counts, in `user_info` and in every derived table. Its rows
stay, redacted, so coverage and attrition remain countable, and a tombstone per account and
cohort records since when and why. An account that answers again is a new, live account: its
tombstones go, its old rows stay redacted.

The terms also say data is refreshed at least every 15 days. A user removed from every cohort
is never asked again, so its data would age past that: on the day its last ok answer reaches
the allowed age (after that day's checks), it is forgotten the same way (tombstone kind
`expired`; counts removed too, whatever the counts setting says: that setting is about
accounts gone, not about data kept unrefreshed). Put back in a cohort and answered again, it
is live again.

Deleting rows does not remove their bytes from the DuckDB file: UPDATE, DELETE, CHECKPOINT and
VACUUM leave them in freed blocks (measured, see test_research_terms.py). `rewrite_file` copies
the database into a new file and replaces the old one, which is the guarantee: after a pass that
redacted anything, no byte of the redacted values is left in the warehouse file. (Copies the
operating system or a backup kept elsewhere are outside it.)
"""

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from research_pipeline.errors import WarehouseError
from research_pipeline.planner import TERMS_MAX_DAYS
from research_pipeline.tiktok.constants import COUNT_FIELDS
from research_pipeline.tiktok.error_kinds import USER_GONE_KINDS
from research_pipeline.warehouse.answers import (
    ANSWER_KIND,
    ANSWERS_CTE,
    WHOLE_HISTORY,
    refold_changed,
)
from research_pipeline.warehouse.connection import open_with_lock_wait
from research_pipeline.warehouse.raw import Key
from research_pipeline.warehouse.registry import PER_USER_DERIVED_TABLES
from research_pipeline.warehouse.transactions import transaction

GONE_KINDS = USER_GONE_KINDS  # the one list (tiktok.error_kinds)
# What TikTok's terms have us forget of an account that is gone (and what previews never show).
EXPIRED = "expired"  # tombstone kind: a former member's data, past the allowed age unrefreshed
PROFILE_COLUMNS = ("display_name", "bio_description", "avatar_url", "bio_url", "extra_fields")
_PROFILE = (*PROFILE_COLUMNS, "is_verified")


@dataclass
class ForgetReport:
    accounts: list[tuple[str, str, date]] = field(default_factory=list)  # newly forgotten
    rows_redacted: int = 0  # rows marked forgotten, their values (if any) removed
    rows_with_values_removed: int = 0  # of those, rows that held a value the API returned
    derived_rows_deleted: int = 0
    partitions: list[Key] = field(default_factory=list)  # summaries to derive again
    tombstones: int = 0  # in all, after the pass
    returned: int = 0  # tombstones removed: the account answers again

    @property
    def changed(self) -> bool:
        """Whether a value the API returned left a table (the file then needs its rewrite). A
        gone account's new answer (re-checked, still gone) is marked forgotten but held no
        value: no rewrite of a months-long file for it."""
        return bool(self.rows_with_values_removed or self.derived_rows_deleted or self.partitions)


# Who is gone, and since when: the first gone answer after the last ok one, so the whole history
# of final answers (answers.WHOLE_HISTORY), not only the kept last ones.
_GONE = f"""
CREATE OR REPLACE TEMP TABLE gone AS
{ANSWERS_CTE}
kinds AS (SELECT username, snapshot_date, {ANSWER_KIND} AS kind FROM answers),
latest AS (
    SELECT username, arg_max(kind, snapshot_date) AS kind FROM kinds GROUP BY username
),
last_ok AS (
    SELECT username, max(snapshot_date) AS last_ok FROM kinds WHERE kind = 'ok' GROUP BY 1
)
SELECT l.username, l.kind, min(a.snapshot_date) AS since
FROM latest l LEFT JOIN last_ok o USING (username)
JOIN kinds a ON a.username = l.username AND list_contains($gone_kinds, a.kind)
     AND a.snapshot_date > coalesce(o.last_ok, DATE '1900-01-01')
WHERE list_contains($gone_kinds, l.kind)
GROUP BY ALL
UNION ALL
SELECT l.username, '{EXPIRED}', o.last_ok + $max_age
FROM latest l JOIN last_ok o USING (username)
WHERE $expire AND NOT list_contains($gone_kinds, l.kind)
  AND o.last_ok <= (SELECT max(snapshot_date) FROM kinds) - $max_age
  AND l.username NOT IN (SELECT unnest($members::VARCHAR[]))
"""  # noqa: S608 - constants of this module


def forget_gone_accounts(
    conn: duckdb.DuckDBPyConnection,
    keep_counts: bool = False,
    members: Collection[str] | None = None,
    max_age_days: int = TERMS_MAX_DAYS,
) -> ForgetReport:
    """Redact every account whose latest answer says it is gone, and, when today's `members`
    (of every cohort) are given, the data of users outside them older than `max_age_days`
    (counted back from the latest API day stored); idempotent. One transaction: the gone are
    found, tombstoned, their rows redacted and their derived rows deleted, or nothing is."""
    report = ForgetReport()
    with transaction(conn):
        _find_gone(conn, members, max_age_days)
        report.returned = _update_tombstones(conn)
        _rows_to_redact(conn, keep_counts)
        # Every summary the accounts counted in: not only the days they have a row, but every
        # later day of their cohorts (a summary aggregates each member's latest answer, which
        # may be days old in a rotating panel). A day with no summary yet (today's, before its
        # cohort_summary step) has nothing to correct: its step derives it without them.
        report.partitions = conn.execute(
            """
            SELECT DISTINCT s.snapshot_date, s.cohort FROM tiktok.cohort_summary s
            JOIN (SELECT cohort, min(snapshot_date) AS first FROM todo GROUP BY cohort) t
              ON s.cohort = t.cohort AND s.snapshot_date >= t.first
            ORDER BY ALL
            """
        ).fetchall()
        report.accounts = conn.execute(
            "SELECT username, kind, since FROM gone SEMI JOIN todo USING (username) ORDER BY 1"
        ).fetchall()
        _redact(conn, keep_counts, report)
        refold_changed(conn, "todo")
        report.derived_rows_deleted = _delete_derived_rows(conn, keep_counts)
        report.tombstones = conn.execute("SELECT count(*) FROM tiktok.tombstones").fetchall()[0][0]
        conn.execute("DROP TABLE gone")
        conn.execute("DROP TABLE todo")
    return report


def _find_gone(conn, members: Collection[str] | None, max_age_days: int) -> None:
    """The temp table `gone`: accounts gone by their latest answer, and former members expired."""
    conn.execute(
        _GONE,
        {
            **WHOLE_HISTORY.parameters,
            "expire": members is not None,
            "members": sorted(members or ()),
            "max_age": max_age_days,
            "gone_kinds": list(GONE_KINDS),  # a parameter, never a tuple's repr in SQL
        },
    )


def _update_tombstones(conn) -> int:
    """A tombstone per gone account and cohort; those back again lose theirs (returned: how
    many)."""
    returned = conn.execute(
        "DELETE FROM tiktok.tombstones WHERE username NOT IN (SELECT username FROM gone)"
    ).fetchall()[0][0]
    conn.execute("""
        INSERT INTO tiktok.tombstones
        SELECT g.username, c.cohort, g.since, g.kind, now()::TIMESTAMP
        FROM gone g JOIN (SELECT DISTINCT username, cohort FROM tiktok.user_info) c
          USING (username)
        ON CONFLICT (username, cohort) DO UPDATE SET since = excluded.since,
                                                     kind = excluded.kind
    """)
    return returned


def _rows_to_redact(conn, keep_counts: bool) -> None:
    """The temp table `todo`: rows of the gone that still hold a value to remove."""
    conn.execute(
        """
        CREATE OR REPLACE TEMP TABLE todo AS
        SELECT rowid AS id, snapshot_date, cohort, username FROM tiktok.user_info
        WHERE username IN (SELECT username FROM gone)
          AND (forgotten_at IS NULL OR display_name IS NOT NULL
               OR bio_description IS NOT NULL OR avatar_url IS NOT NULL
               OR bio_url IS NOT NULL OR extra_fields IS NOT NULL
               OR ((NOT $keep OR username IN (SELECT username FROM gone WHERE kind = $x))
                   AND follower_count IS NOT NULL))
        """,
        {"keep": keep_counts, "x": EXPIRED},
    )


def _redact(conn, keep_counts: bool, report: ForgetReport) -> None:
    """Empty the `todo` rows: the profile always, the counts too unless kept by setting (never
    for expired former members)."""
    for columns, which in (
        (_PROFILE if keep_counts else _PROFILE + COUNT_FIELDS, "kind <> $x"),
        (_PROFILE + COUNT_FIELDS, "kind = $x"),
    ):
        gone_of_kind = f"SELECT username FROM gone WHERE {which}"  # noqa: S608 - constants
        rows = f"WHERE rowid IN (SELECT id FROM todo) AND username IN ({gone_of_kind})"  # noqa: S608
        report.rows_with_values_removed += conn.execute(
            f"SELECT count(*) FROM tiktok.user_info {rows} "  # noqa: S608 - constant column names
            f"AND NOT ({' AND '.join(f'{c} IS NULL' for c in columns)})",
            {"x": EXPIRED},
        ).fetchall()[0][0]
        report.rows_redacted += conn.execute(
            f"UPDATE tiktok.user_info SET {', '.join(f'{c} = NULL' for c in columns)}, "  # noqa: S608 - constant column names
            f"forgotten_at = coalesce(forgotten_at, now()::TIMESTAMP) {rows}",
            {"x": EXPIRED},
        ).fetchall()[0][0]


def _delete_derived_rows(conn, keep_counts: bool) -> int:
    """The gone's rows of every per-user derived table (the registry's list); with counts kept,
    only expired former members'."""
    deleted_for = "" if not keep_counts else "WHERE kind = $x"
    deleted = 0
    for table in PER_USER_DERIVED_TABLES:
        deleted += conn.execute(
            f"DELETE FROM tiktok.{table} "  # noqa: S608 - constant table names
            f"WHERE username IN (SELECT username FROM gone {deleted_for})",
            {"x": EXPIRED} if keep_counts else {},
        ).fetchall()[0][0]
    return deleted


def rewrite_marker(database: str | Path) -> Path:
    """Exists from before a forgetting pass commits until its file rewrite is done: a run that
    finds it (after a crash, a full disk, a lock) rewrites the file first."""
    database = Path(database)
    return database.with_name(database.name + ".rewrite-needed")


def mark_rewrite_needed(database: str | Path) -> None:
    marker = rewrite_marker(database)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write("a forgetting pass removed values that may stay in freed blocks\n")
        handle.flush()
        os.fsync(handle.fileno())


def rewrite_pending(database: str | Path) -> bool:
    real = Path(database).resolve()
    return rewrite_marker(database).exists() or real.with_name(real.name + ".rewrite").exists()


def rewrite_file(database: str | Path) -> None:
    """Copy the warehouse into a new file and put it in the old one's place, so that values
    deleted or overwritten are not left in the file's freed blocks.

    The writer lock on the old file is held from before the copy until after the new file has
    taken its name: no batch of another process can land in a file about to be replaced (its
    writers open the path again on every try, so after the swap they write the new file). A
    copy that fails (a full disk) is removed and the old file is left as it was, the marker too:
    the next run tries again. A warehouse path that is a link (a lab keeps data on another
    disk) is rewritten at its target, in the target's folder: the link stays a link, and the
    file it points to is the one that keeps nothing (before: the link was replaced by a file
    and the target kept the forgotten values)."""
    given = Path(database)
    database = given.resolve()
    fresh = database.with_name(database.name + ".rewrite")
    fresh.unlink(missing_ok=True)
    try:
        conn = open_with_lock_wait(str(database), read_only=False)
    except duckdb.Error as exc:
        raise _rewrite_error(database, exc) from None
    try:
        conn.execute("CHECKPOINT")
        name = conn.execute("SELECT current_database()").fetchall()[0][0]
        conn.execute("ATTACH ? AS fresh", [str(fresh)])
        conn.execute(f'COPY FROM DATABASE "{name}" TO fresh')  # a name DuckDB gave
        conn.execute("DETACH fresh")
        with open(fresh, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(fresh, database)  # while the old file's lock is still ours
    except (duckdb.Error, OSError) as exc:
        fresh.unlink(missing_ok=True)
        raise _rewrite_error(database, exc) from None
    finally:
        conn.close()
    Path(str(database) + ".wal").unlink(missing_ok=True)
    rewrite_marker(given).unlink(missing_ok=True)


def _rewrite_error(database: Path, exc: Exception) -> WarehouseError:
    return WarehouseError(
        f"could not rewrite {database} after forgetting accounts ({str(exc).splitlines()[0]}): "
        "the file is as it was, its tables redacted, but removed values may remain in its "
        "freed blocks. The next run tries again; free space (the rewrite needs the file's size "
        "again) or close what holds the file"
    )
