"""The raw snapshot (`tiktok.user_info`), the request ledger (`tiktok.api_requests`) and the
record of finished partitions (`tiktok.snapshots`).

Writes are idempotent: a row is keyed by (snapshot_date, cohort, username) and replaced (delete,
then insert, in one transaction), never duplicated. Rows reach SQL as temporary tables under a
name of this module's choosing (`transactions.registered`), never through a Python variable
DuckDB finds by name.
"""

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

import duckdb

from research_pipeline.errors import WarehouseError
from research_pipeline.tiktok.constants import (
    COUNT_FIELDS,
    NOT_A_TRY_STATUSES,
    NOT_SPENT_STATUSES,
    USER_INFO_FIELDS,
)
from research_pipeline.tiktok.models import RequestRecord, UserInfoResult
from research_pipeline.warehouse.answers import refold_changed
from research_pipeline.warehouse.transactions import Rows, registered, transaction

Key = tuple[date, str]  # (snapshot_date, cohort): one partition


def _field_type(name: str) -> str:
    return "BOOLEAN" if name == "is_verified" else "BIGINT" if name in COUNT_FIELDS else "VARCHAR"


# The columns this module writes, with their types in the schema (a test holds them equal).
USER_INFO_TYPES = (
    ("snapshot_date", "DATE"), ("cohort", "VARCHAR"), ("username", "VARCHAR"),
    ("fetched_at", "TIMESTAMP"), ("status", "VARCHAR"), ("error_kind", "VARCHAR"),
    ("error_message", "VARCHAR"), ("log_id", "VARCHAR"),
    *((name, _field_type(name)) for name in USER_INFO_FIELDS),
    ("is_final", "BOOLEAN"), ("source", "VARCHAR"), ("served_at", "TIMESTAMP"),
    ("extra_fields", "JSON"),
)  # fmt: skip
USER_INFO_COLUMNS = tuple(name for name, _ in USER_INFO_TYPES)

REQUEST_TYPES = (
    ("requested_at", "TIMESTAMP"), ("snapshot_date", "DATE"), ("cohort", "VARCHAR"),
    ("username", "VARCHAR"), ("http_status", "INTEGER"), ("status", "VARCHAR"),
    ("error_kind", "VARCHAR"), ("log_id", "VARCHAR"), ("source", "VARCHAR"),
    ("message", "VARCHAR"),
)  # fmt: skip
REQUEST_COLUMNS = tuple(name for name, _ in REQUEST_TYPES)

KEY_TYPES = (("snapshot_date", "DATE"), ("cohort", "VARCHAR"))
MEMBER_TYPES = (*KEY_TYPES, ("username", "VARCHAR"))


# Column lists are constants of this module: nothing from outside is interpolated.
_INSERT_USER_INFO = "INSERT INTO tiktok.user_info ({0}) SELECT {0} FROM batch".format(  # noqa: S608
    ", ".join(USER_INFO_COLUMNS)
)
_INSERT_REQUESTS = "INSERT INTO tiktok.api_requests ({0}) SELECT {0} FROM ledger".format(  # noqa: S608
    ", ".join(REQUEST_COLUMNS)
)
# The same, leaving out requests the ledger already holds (a journal stored twice).
_INSERT_UNRECORDED_REQUESTS = _INSERT_REQUESTS + (
    " ANTI JOIN tiktok.api_requests r USING (requested_at, username)"
)


def naive_utc(moment: datetime) -> datetime:
    """DuckDB TIMESTAMP columns hold UTC without a zone."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def key_rows(keys: Iterable[Key]) -> Rows:
    return Rows(KEY_TYPES, list(keys))


def member_rows(members: dict[Key, Sequence[str]]) -> Rows:
    return Rows(MEMBER_TYPES, [(d, c, u) for (d, c), names in members.items() for u in names])


def final_usernames(conn: duckdb.DuckDBPyConnection, keys: Sequence[Key]) -> dict[Key, set[str]]:
    """Users already answered for each snapshot: a resumed run spends no quota on them."""
    with registered(conn, wanted=key_rows(keys)):
        rows = conn.execute(
            "SELECT snapshot_date, cohort, username FROM tiktok.user_info "
            "SEMI JOIN wanted USING (snapshot_date, cohort) WHERE is_final"
        ).fetchall()
    found: dict[Key, set[str]] = {key: set() for key in keys}
    for snapshot_date, cohort, username in rows:
        found[(snapshot_date, cohort)].add(username)
    return found


def copy_answers_from_other_cohorts(
    conn: duckdb.DuckDBPyConnection, wanted: Sequence[tuple[date, str, str]]
) -> set[tuple[date, str, str]]:
    """Fill the `wanted` (snapshot_date, cohort, username) rows from another cohort's answer
    for the same user on the same date: one API answer serves every cohort the user is in.
    Returns the rows that were filled."""
    columns = ", ".join(USER_INFO_COLUMNS)
    with registered(conn, wanted=Rows(MEMBER_TYPES, wanted)), transaction(conn):
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE copied AS
            SELECT w.snapshot_date, w.cohort, a.* EXCLUDE (snapshot_date, cohort)
            FROM wanted w JOIN (
                SELECT * FROM tiktok.user_info
                WHERE is_final AND snapshot_date IN (SELECT DISTINCT snapshot_date FROM wanted)
                QUALIFY row_number() OVER (PARTITION BY snapshot_date, username
                                           ORDER BY fetched_at DESC) = 1
            ) a USING (snapshot_date, username);
            DELETE FROM tiktok.user_info u USING copied c WHERE u.snapshot_date = c.snapshot_date
                AND u.cohort = c.cohort AND u.username = c.username;
            INSERT INTO tiktok.user_info ({columns}) SELECT {columns} FROM copied;
        """)  # noqa: S608 - column names are this module's constants
        refold_changed(conn, "copied")
        filled = set(conn.execute("SELECT snapshot_date, cohort, username FROM copied").fetchall())
        conn.execute("DROP TABLE copied")
    return filled


def answered_in_other_cohorts(
    conn: duckdb.DuckDBPyConnection, wanted: Sequence[tuple[date, str, str]]
) -> set[tuple[date, str, str]]:
    """The `wanted` (snapshot_date, cohort, username) rows another cohort's answer of the same
    day can fill (copy_answers_from_other_cohorts, without writing: a read-only view)."""
    with registered(conn, wanted=Rows(MEMBER_TYPES, wanted)):
        rows = conn.execute("""
            SELECT w.snapshot_date, w.cohort, w.username FROM wanted w
            SEMI JOIN tiktok.user_info a
              ON a.is_final AND a.snapshot_date = w.snapshot_date AND a.username = w.username
        """).fetchall()
    return set(rows)


def user_info_rows(rows: Sequence[tuple[date, str, UserInfoResult]], source: str) -> Rows:
    records = [
        (
            snapshot_date,
            cohort,
            r.username,
            naive_utc(r.fetched_at),
            r.status,
            r.error_kind,
            r.error_message or None,
            r.log_id or None,
            *(r.fields.get(name) for name in USER_INFO_FIELDS),
            r.is_final,
            source,
            naive_utc(r.served_at) if r.served_at else None,
            json.dumps(r.extra, ensure_ascii=False, default=str) if r.extra else None,
        )
        for snapshot_date, cohort, r in rows
    ]
    return Rows(USER_INFO_TYPES, records)


def request_rows(requests: Sequence[tuple[date, str, RequestRecord]], source: str) -> Rows:
    return Rows(
        REQUEST_TYPES,
        [
            (
                naive_utc(r.requested_at),
                snapshot_date,
                cohort,
                r.username,
                r.http_status,
                r.status,
                r.error_kind,
                r.log_id or None,
                source,
                r.message[:1000] or None,
            )
            for snapshot_date, cohort, r in requests
        ],
    )


def save_fetched(
    conn: duckdb.DuckDBPyConnection,
    rows: Sequence[tuple[date, str, UserInfoResult]],
    requests: Sequence[tuple[date, str, RequestRecord]],
    source: str = "",
    skip_recorded_requests: bool = False,
) -> None:
    """Store a batch of answers (each for a partition) and the requests that paid for them, in
    one transaction; an answer already stored for the same partition and user is replaced.
    `source` says where they came from: the API's host, or 'emulator'. With
    `skip_recorded_requests`, a request already in the ledger (same time and user) is not added
    again."""
    source = source or None
    with transaction(conn):
        if rows:
            with registered(conn, batch=user_info_rows(rows, source)):
                conn.execute(
                    "DELETE FROM tiktok.user_info u USING batch b WHERE u.snapshot_date = "
                    "b.snapshot_date AND u.cohort = b.cohort AND u.username = b.username"
                )
                conn.execute(_INSERT_USER_INFO)
                refold_changed(conn, "batch")
        if requests:
            with registered(conn, ledger=request_rows(requests, source)):
                conn.execute(
                    _INSERT_UNRECORDED_REQUESTS if skip_recorded_requests else _INSERT_REQUESTS
                )


_SENT_TYPES = (
    ("snapshot_date", "DATE"),
    ("username", "VARCHAR"),
    ("sent", "BIGINT"),
    ("sent_at", "TIMESTAMP"),
)


def record_unrecorded_requests(
    conn: duckdb.DuckDBPyConnection, sent: Sequence[tuple[str, str, int, str]], source: str
) -> int:
    """Add to the ledger the requests that ended runs sent but never recorded (a process
    killed between sending and saving): `sent` is (API day, username, requests sent, first
    sent_at) as noted before each request (research_pipeline.coordination). Each missing one
    becomes a row with status 'unrecorded', counted as spent (TikTok counted it). Returns the
    rows added."""
    if not sent:
        return 0
    rows = [
        (date.fromisoformat(day), username, count, naive_utc(datetime.fromisoformat(at)))
        for day, username, count, at in sent
    ]
    with registered(conn, sent=Rows(_SENT_TYPES, rows)), transaction(conn):
        added = conn.execute(
            """
            INSERT INTO tiktok.api_requests (requested_at, snapshot_date, cohort, username,
                http_status, status, error_kind, log_id, source, message)
            WITH recorded AS (
                SELECT snapshot_date, username, count(*) AS n FROM tiktok.api_requests
                SEMI JOIN sent USING (snapshot_date, username) GROUP BY ALL
            ),
            missing AS (
                SELECT s.*, s.sent - coalesce(r.n, 0) AS lost
                FROM sent s LEFT JOIN recorded r USING (snapshot_date, username)
                WHERE s.sent > coalesce(r.n, 0)
            )
            SELECT sent_at, snapshot_date, NULL, username, NULL, 'unrecorded', NULL, NULL,
                   $source, 'sent by a run that ended before recording its answer (counted '
                   || 'by the next run from the requests noted before sending)'
            FROM missing, range(lost)
            """,
            {"source": source or None},
        ).fetchall()[0][0]
    return added


def finish_snapshots(
    conn: duckdb.DuckDBPyConnection, members: dict[Key, Sequence[str]]
) -> dict[Key, dict[str, int]]:
    """Drop rows of users no longer in their cohort, record each partition as complete, and
    return its row count per status."""
    with registered(conn, keys=key_rows(members), members=member_rows(members)):
        with transaction(conn):
            conn.execute("""
                CREATE OR REPLACE TEMP TABLE dropped AS
                SELECT u.snapshot_date, u.username FROM tiktok.user_info u SEMI JOIN keys k
                  USING (snapshot_date, cohort) ANTI JOIN members m
                  USING (snapshot_date, cohort, username);
                DELETE FROM tiktok.user_info u USING keys k
                WHERE u.snapshot_date = k.snapshot_date AND u.cohort = k.cohort
                  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.snapshot_date = u.snapshot_date
                                  AND m.cohort = u.cohort AND m.username = u.username)
            """)
            refold_changed(conn, "dropped")
            conn.execute("DROP TABLE dropped")
            counts = conn.execute("""
                SELECT snapshot_date, cohort, status, count(*) FROM tiktok.user_info
                SEMI JOIN keys USING (snapshot_date, cohort) GROUP BY ALL
            """).fetchall()
            conn.execute("""
                INSERT OR REPLACE INTO tiktok.snapshots
                SELECT k.snapshot_date, k.cohort, count(u.username), now()::TIMESTAMP
                FROM keys k LEFT JOIN tiktok.user_info u USING (snapshot_date, cohort) GROUP BY ALL
            """)
    statuses: dict[Key, dict[str, int]] = {key: {} for key in members}
    for snapshot_date, cohort, status, count in sorted(counts):
        statuses[(snapshot_date, cohort)][status] = count
    return statuses


def requests_spent_on(conn: duckdb.DuckDBPyConnection, day: date) -> int:
    """Requests spent on API day `day`: what the daily quota (reset at 00:00 UTC, the API's
    day) has left for us, counted by the API's date, never this machine's. Every answered
    request counts, failed ones (5xx) included, as TikTok counts them; a 429 does not (the API
    refused it before doing any work), nor a connection never opened (the ledger keeps both,
    apart, for the audit)."""
    return conn.execute(
        "SELECT count(*) FROM tiktok.api_requests WHERE snapshot_date = ? "
        "AND status NOT IN (SELECT unnest(?::VARCHAR[]))",
        [day, list(NOT_SPENT_STATUSES)],
    ).fetchall()[0][0]


def tries_on(conn: duckdb.DuckDBPyConnection, day: date) -> dict[str, int]:
    """Per user, the requests that tried it on API day `day`, whatever run or retry sent them
    (those a killed run sent included): the daily try budget is counted from here."""
    rows = conn.execute(
        "SELECT username, count(*) FROM tiktok.api_requests WHERE snapshot_date = ? "
        "AND status NOT IN (SELECT unnest(?::VARCHAR[])) GROUP BY username",
        [day, list(NOT_A_TRY_STATUSES)],
    ).fetchall()
    return dict(rows)


def last_request_on(conn: duckdb.DuckDBPyConnection, day: date) -> tuple[str, str, datetime] | None:
    """(status, message, requested_at in UTC) of the day's latest request, or None."""
    rows = conn.execute(
        "SELECT status, coalesce(message, ''), requested_at FROM tiktok.api_requests "
        "WHERE snapshot_date = ? AND status <> 'unrecorded' ORDER BY requested_at DESC LIMIT 1",
        [day],
    ).fetchall()
    if not rows:
        return None
    status, message, at = rows[0]
    return status, message, at.replace(tzinfo=UTC)


def last_answers_on(
    conn: duckdb.DuckDBPyConnection, day: date, limit: int
) -> list[tuple[str, int | None, str]]:
    """(status, http_status, message) of the day's last `limit` answered requests, newest first
    (429s and expired tokens left out: they say nothing of whether the API is up)."""
    return conn.execute(
        "SELECT status, http_status, coalesce(message, '') FROM tiktok.api_requests "
        "WHERE snapshot_date = ? AND status NOT IN (SELECT unnest(?::VARCHAR[])) "
        "AND status <> 'unrecorded' ORDER BY requested_at DESC LIMIT ?",
        [day, list(NOT_A_TRY_STATUSES), limit],
    ).fetchall()


def unfinished_count(conn: duckdb.DuckDBPyConnection, keys: Sequence[Key]) -> int:
    """Rows whose retries ran out on a transient error: a re-run asks for these users again."""
    with registered(conn, keys=key_rows(keys)):
        return conn.execute(
            "SELECT count(*) FROM tiktok.user_info SEMI JOIN keys USING (snapshot_date, cohort) "
            "WHERE NOT is_final"
        ).fetchall()[0][0]


def record_source(conn: duckdb.DuckDBPyConnection, source: str, allow_mixed: bool = False) -> None:
    """Note that answers from `source` go into this warehouse (check_source first)."""
    if check_source(conn, source, allow_mixed):
        conn.execute(
            "INSERT INTO tiktok.sources VALUES (?, now()::TIMESTAMP) ON CONFLICT DO NOTHING",
            [source],
        )


def check_source(conn: duckdb.DuckDBPyConnection, source: str, allow_mixed: bool = False) -> bool:
    """Whether `source` is new to this warehouse, refusing (before any request is spent) to
    mix the emulator's answers with the real API's: data cited in a paper must never be a
    blend of the two without anyone having said so."""
    known = [s for (s,) in conn.execute("SELECT source FROM tiktok.sources").fetchall()]
    if source in known:
        return False
    kinds = {"emulator" if s == "emulator" else "the real API" for s in known}
    kind = "emulator" if source == "emulator" else "the real API"
    if kinds and kind not in kinds and not allow_mixed:
        raise WarehouseError(
            f"this warehouse holds answers from {', '.join(sorted(known))}; refusing to add "
            f"answers from {source} ({kind}). Use another RESEARCH_PIPELINE_DUCKDB for it, or set "
            "RESEARCH_PIPELINE_ALLOW_MIXED_SOURCES=1 if mixing is what you want (every row keeps "
            "its source)"
        )
    return True


def latest_request_day(conn: duckdb.DuckDBPyConnection) -> date | None:
    """The latest API day the ledger holds a request of (a day the API went back to is refused)."""
    return conn.execute("SELECT max(snapshot_date) FROM tiktok.api_requests").fetchall()[0][0]
