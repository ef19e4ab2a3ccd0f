"""The DuckDB warehouse: schema `tiktok`, its DDL, and every write and derivation, as SQL.

The only module with DDL. Every statement takes its values as parameters; cohort names are also
checked against a strict pattern before they get here. Writes are idempotent: a row is keyed by
(snapshot_date, cohort, username) and replaced (delete, then insert, in one transaction), never
duplicated, and a partition's derived rows are replaced the same way. The large tables have no
PRIMARY KEY on purpose: DuckDB keeps such an index in memory (gigabytes for a year of a 100k
cohort) while our writes already guarantee the key, and an asset check verifies it.
"""

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from research_pipeline.tiktok.models import RequestRecord, UserInfoResult

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS tiktok;

CREATE TABLE IF NOT EXISTS tiktok.user_info (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    username VARCHAR NOT NULL,
    fetched_at TIMESTAMP NOT NULL,            -- UTC
    status VARCHAR NOT NULL,                  -- 'ok' or the API error code
    error_message VARCHAR,
    log_id VARCHAR,
    display_name VARCHAR,
    bio_description VARCHAR,
    avatar_url VARCHAR,
    is_verified BOOLEAN,
    follower_count BIGINT,
    following_count BIGINT,
    likes_count BIGINT,
    video_count BIGINT,
    is_final BOOLEAN NOT NULL                 -- false: retries ran out, fetch again on resume
);

CREATE TABLE IF NOT EXISTS tiktok.snapshots (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    users BIGINT NOT NULL,
    completed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (snapshot_date, cohort)
);

CREATE TABLE IF NOT EXISTS tiktok.api_requests (
    requested_at TIMESTAMP NOT NULL,          -- UTC
    snapshot_date DATE,
    cohort VARCHAR,
    username VARCHAR NOT NULL,
    http_status INTEGER,
    status VARCHAR NOT NULL,
    log_id VARCHAR
);

CREATE TABLE IF NOT EXISTS tiktok.follower_snapshots (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    username VARCHAR NOT NULL,
    follower_count BIGINT,
    following_count BIGINT,
    previous_snapshot_date DATE,
    days_since_previous INTEGER,
    follower_delta BIGINT,
    following_delta BIGINT,
    follower_growth_per_day DOUBLE
);

CREATE TABLE IF NOT EXISTS tiktok.engagement_snapshots (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    username VARCHAR NOT NULL,
    likes_count BIGINT,
    video_count BIGINT,
    likes_per_video DOUBLE,
    likes_per_follower DOUBLE,
    previous_snapshot_date DATE,
    likes_delta BIGINT,
    video_delta BIGINT,
    likes_gained_per_day DOUBLE
);

CREATE TABLE IF NOT EXISTS tiktok.cohort_summary (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    users BIGINT,
    ok BIGINT,
    errors BIGINT,
    errors_by_code VARCHAR,                   -- JSON object: code -> users
    median_followers DOUBLE,
    total_followers BIGINT,
    total_likes BIGINT,
    median_likes_per_video DOUBLE,
    median_follower_growth_per_day DOUBLE,
    PRIMARY KEY (snapshot_date, cohort)
);
"""

USER_INFO_COLUMNS = (
    "snapshot_date",
    "cohort",
    "username",
    "fetched_at",
    "status",
    "error_message",
    "log_id",
    "display_name",
    "bio_description",
    "avatar_url",
    "is_verified",
    "follower_count",
    "following_count",
    "likes_count",
    "video_count",
    "is_final",
)

REQUEST_COLUMNS = (
    "requested_at",
    "snapshot_date",
    "cohort",
    "username",
    "http_status",
    "status",
    "log_id",
)

# Column lists are constants of this module: nothing from outside is interpolated.
_INSERT_USER_INFO = "INSERT INTO tiktok.user_info ({}) SELECT * FROM batch".format(  # noqa: S608
    ", ".join(USER_INFO_COLUMNS)
)
_INSERT_REQUESTS = "INSERT INTO tiktok.api_requests ({}) SELECT * FROM ledger".format(  # noqa: S608
    ", ".join(REQUEST_COLUMNS)
)


def connect(
    path: str | Path, read_only: bool = False, wait_seconds: float = 60.0
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (creating its folder) with the schema in place.

    DuckDB lets one process write a file at a time, and our writers hold it only for a batch:
    while another process holds the lock, wait (with backoff) instead of failing."""
    if str(path) != ":memory:" and not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.01
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    if not read_only:
        ensure_schema(conn)
    return conn


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(SCHEMA_SQL)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


# -- raw snapshot ---------------------------------------------------------------------------


def final_usernames(conn, snapshot_date: date, cohort: str) -> set[str]:
    """Users already answered for this snapshot: a resumed run does not spend quota on them."""
    rows = conn.execute(
        "SELECT username FROM tiktok.user_info WHERE snapshot_date = ? AND cohort = ? AND is_final",
        [snapshot_date, cohort],
    ).fetchall()
    return {row[0] for row in rows}


def user_info_frame(snapshot_date: date, cohort: str, results: Sequence[UserInfoResult]):
    records = []
    for r in results:
        f = r.fields
        records.append(
            (
                snapshot_date,
                cohort,
                r.username,
                _naive_utc(r.fetched_at),
                r.status,
                r.error_message or None,
                r.log_id or None,
                f.get("display_name"),
                f.get("bio_description"),
                f.get("avatar_url"),
                f.get("is_verified"),
                f.get("follower_count"),
                f.get("following_count"),
                f.get("likes_count"),
                f.get("video_count"),
                r.is_final,
            )
        )
    frame = pd.DataFrame.from_records(records, columns=USER_INFO_COLUMNS)
    for column in ("follower_count", "following_count", "likes_count", "video_count"):
        frame[column] = frame[column].astype("Int64")
    frame["is_verified"] = frame["is_verified"].astype("boolean")
    return frame


def save_fetched(
    conn,
    snapshot_date: date,
    cohort: str,
    results: Sequence[UserInfoResult],
    requests: Sequence[RequestRecord],
) -> None:
    """Store a batch of answers and the requests that paid for them, in one transaction."""
    conn.execute("BEGIN TRANSACTION")
    try:
        if results:
            batch = user_info_frame(snapshot_date, cohort, results)  # noqa: F841 - read by SQL
            conn.execute(
                "DELETE FROM tiktok.user_info WHERE snapshot_date = ? AND cohort = ? "
                "AND username IN (SELECT username FROM batch)",
                [snapshot_date, cohort],
            )
            conn.execute(_INSERT_USER_INFO)
        if requests:
            ledger = pd.DataFrame.from_records(  # noqa: F841 - read by SQL
                [
                    (
                        _naive_utc(r.requested_at),
                        snapshot_date,
                        cohort,
                        r.username,
                        r.http_status,
                        r.status,
                        r.log_id or None,
                    )
                    for r in requests
                ],
                columns=REQUEST_COLUMNS,
            )
            ledger["http_status"] = ledger["http_status"].astype("Int64")
            conn.execute(_INSERT_REQUESTS)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def finish_snapshot(conn, snapshot_date: date, cohort: str, members: Iterable[str]) -> int:
    """Drop rows of users no longer in the cohort and record the partition as complete."""
    member_frame = pd.DataFrame({"username": list(members)})  # noqa: F841 - read by SQL
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(
            "DELETE FROM tiktok.user_info WHERE snapshot_date = ? AND cohort = ? "
            "AND username NOT IN (SELECT username FROM member_frame)",
            [snapshot_date, cohort],
        )
        users = conn.execute(
            "SELECT count(*) FROM tiktok.user_info WHERE snapshot_date = ? AND cohort = ?",
            [snapshot_date, cohort],
        ).fetchone()[0]
        conn.execute(
            "INSERT OR REPLACE INTO tiktok.snapshots VALUES (?, ?, ?, ?)",
            [snapshot_date, cohort, users, _naive_utc(datetime.now(UTC))],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return users


def requests_spent_since(conn, since: datetime) -> int:
    return conn.execute(
        "SELECT count(*) FROM tiktok.api_requests WHERE requested_at >= ?", [_naive_utc(since)]
    ).fetchone()[0]


def requests_spent_today(conn, now: datetime | None = None) -> int:
    """Today's spend (UTC day) from the ledger: what the daily quota has left for us."""
    now = now or datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return requests_spent_since(conn, midnight)


def unfinished_count(conn, partitions: Sequence[tuple[date, str]]) -> int:
    """Rows whose retries ran out on a transient error: a re-run asks for these users again."""
    keys = pd.DataFrame(partitions, columns=["snapshot_date", "cohort"])  # noqa: F841 - read by SQL
    return conn.execute(
        "SELECT count(*) FROM tiktok.user_info SEMI JOIN keys USING (snapshot_date, cohort) "
        "WHERE NOT is_final"
    ).fetchone()[0]


def status_counts(conn, snapshot_date: date, cohort: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM tiktok.user_info WHERE snapshot_date = ? AND cohort = ? "
        "GROUP BY status ORDER BY status",
        [snapshot_date, cohort],
    ).fetchall()
    return dict(rows)


def preview(conn, table: str, snapshot_date: date, cohort: str, limit: int = 10) -> pd.DataFrame:
    if table not in DERIVED_TABLES + ("user_info",):
        raise ValueError(f"unknown table {table!r}")
    return conn.execute(
        f"SELECT * FROM tiktok.{table} WHERE snapshot_date = ? AND cohort = ? "  # noqa: S608
        "ORDER BY 3 LIMIT ?",
        [snapshot_date, cohort, limit],
    ).df()


# -- export ---------------------------------------------------------------------------------

EXPORTABLE_TABLES = (
    "user_info",
    "follower_snapshots",
    "engagement_snapshots",
    "cohort_summary",
    "api_requests",
)


def export_table(
    conn,
    table: str,
    out: Path,
    file_format: str,
    cohort: str | None = None,
    since: date | None = None,
) -> int:
    """Write a table (optionally one cohort, from a date on) to Parquet or CSV for R or pandas;
    returns the number of rows written."""
    if table not in EXPORTABLE_TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(EXPORTABLE_TABLES)}")
    if file_format not in ("parquet", "csv"):
        raise ValueError(f"unknown format {file_format!r}; choose parquet or csv")
    date_column = "requested_at" if table == "api_requests" else "snapshot_date"
    query = f"SELECT * FROM tiktok.{table} WHERE (? IS NULL OR cohort = ?) "  # noqa: S608
    query += f"AND (?::DATE IS NULL OR {date_column} >= ?::DATE) ORDER BY ALL"
    relation = conn.sql(query, params=[cohort, cohort, since, since])
    out.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "parquet":
        relation.write_parquet(str(out))
    else:
        relation.write_csv(str(out))
    return len(relation)


# -- derived snapshots ----------------------------------------------------------------------

DERIVED_TABLES = ("follower_snapshots", "engagement_snapshots", "cohort_summary")


def previous_snapshot_date(conn, snapshot_date: date, cohort: str) -> date | None:
    row = conn.execute(
        "SELECT max(snapshot_date) FROM tiktok.snapshots WHERE cohort = ? AND snapshot_date < ?",
        [cohort, snapshot_date],
    ).fetchone()
    return row[0] if row else None


def _previous_values_sql() -> str:
    """Each ok user of (date, cohort) with their latest earlier ok row.

    Most users were in the cohort's previous snapshot, which is looked up directly; only users
    missing there are searched for further back, so the cost grows with the cohort, not with the
    length of the history. Parameters: $d (date), $c (cohort), $p (previous snapshot date).
    """
    return """
        WITH cur AS (
            SELECT * FROM tiktok.user_info
            WHERE snapshot_date = $d AND cohort = $c AND status = 'ok'
        ),
        at_previous AS (
            SELECT p.* FROM tiktok.user_info p SEMI JOIN cur USING (username)
            WHERE p.snapshot_date = $p AND p.cohort = $c AND p.status = 'ok'
        ),
        missing AS (SELECT username FROM cur ANTI JOIN at_previous USING (username)),
        further_back AS (
            SELECT username, arg_max(p, snapshot_date) AS row
            FROM (SELECT username, snapshot_date, p FROM tiktok.user_info p
                  SEMI JOIN missing USING (username)
                  WHERE p.cohort = $c AND p.snapshot_date < $p AND p.status = 'ok')
            GROUP BY username
        ),
        prev AS (
            SELECT username, snapshot_date, follower_count, following_count, likes_count,
                   video_count FROM at_previous
            UNION ALL
            SELECT username, row.snapshot_date, row.follower_count, row.following_count,
                   row.likes_count, row.video_count FROM further_back
        )
        SELECT cur.*, prev.snapshot_date AS prev_date,
               prev.follower_count AS prev_followers, prev.following_count AS prev_following,
               prev.likes_count AS prev_likes, prev.video_count AS prev_videos,
               datediff('day', prev.snapshot_date, cur.snapshot_date) AS days
        FROM cur LEFT JOIN prev USING (username)
    """


def _replace_partition(
    conn, table: str, snapshot_date: date, cohort: str, insert_sql: str, params: dict
) -> int:
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(
            f"DELETE FROM tiktok.{table} WHERE snapshot_date = ? AND cohort = ?",  # noqa: S608
            [snapshot_date, cohort],
        )
        conn.execute(insert_sql, params)
        count = conn.execute(
            f"SELECT count(*) FROM tiktok.{table} WHERE snapshot_date = ? AND cohort = ?",  # noqa: S608
            [snapshot_date, cohort],
        ).fetchone()[0]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return count


def _derivation_params(conn, snapshot_date: date, cohort: str) -> dict:
    previous = previous_snapshot_date(conn, snapshot_date, cohort)
    # With no earlier snapshot, a date before any data makes every lookup come back empty.
    return {"d": snapshot_date, "c": cohort, "p": previous or date(1970, 1, 1)}


def derive_follower_snapshots(conn, snapshot_date: date, cohort: str) -> int:
    sql = f"""
        INSERT INTO tiktok.follower_snapshots
        SELECT snapshot_date, cohort, username, follower_count, following_count, prev_date, days,
               follower_count - prev_followers, following_count - prev_following,
               (follower_count - prev_followers) / nullif(days, 0)
        FROM ({_previous_values_sql()})
    """  # noqa: S608 - no values interpolated, only a fixed SQL fragment
    params = _derivation_params(conn, snapshot_date, cohort)
    return _replace_partition(conn, "follower_snapshots", snapshot_date, cohort, sql, params)


def derive_engagement_snapshots(conn, snapshot_date: date, cohort: str) -> int:
    sql = f"""
        INSERT INTO tiktok.engagement_snapshots
        SELECT snapshot_date, cohort, username, likes_count, video_count,
               likes_count / nullif(video_count, 0), likes_count / nullif(follower_count, 0),
               prev_date, likes_count - prev_likes, video_count - prev_videos,
               (likes_count - prev_likes) / nullif(days, 0)
        FROM ({_previous_values_sql()})
    """  # noqa: S608 - no values interpolated, only a fixed SQL fragment
    params = _derivation_params(conn, snapshot_date, cohort)
    return _replace_partition(conn, "engagement_snapshots", snapshot_date, cohort, sql, params)


def derive_cohort_summary(conn, snapshot_date: date, cohort: str) -> int:
    sql = """
        INSERT INTO tiktok.cohort_summary
        WITH raw AS (
            SELECT * FROM tiktok.user_info WHERE snapshot_date = $d AND cohort = $c
        ),
        codes AS (
            SELECT coalesce(
                to_json(map_from_entries(list({'k': status, 'v': n} ORDER BY status)))::VARCHAR,
                '{}') AS errors_by_code
            FROM (SELECT status, count(*) AS n FROM raw WHERE status <> 'ok' GROUP BY status)
        ),
        f AS (SELECT * FROM tiktok.follower_snapshots WHERE snapshot_date = $d AND cohort = $c),
        e AS (SELECT * FROM tiktok.engagement_snapshots WHERE snapshot_date = $d AND cohort = $c)
        SELECT $d, $c,
               (SELECT count(*) FROM raw),
               (SELECT count(*) FROM raw WHERE status = 'ok'),
               (SELECT count(*) FROM raw WHERE status <> 'ok'),
               (SELECT errors_by_code FROM codes),
               (SELECT median(follower_count) FROM f),
               (SELECT sum(follower_count) FROM f),
               (SELECT sum(likes_count) FROM e),
               (SELECT median(likes_per_video) FROM e),
               (SELECT median(follower_growth_per_day) FROM f)
        WHERE EXISTS (SELECT 1 FROM raw)
    """
    params = {"d": snapshot_date, "c": cohort}
    return _replace_partition(conn, "cohort_summary", snapshot_date, cohort, sql, params)
