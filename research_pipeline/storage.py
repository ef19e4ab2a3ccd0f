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

from research_pipeline.tiktok.constants import USER_INFO_FIELDS
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
    "snapshot_date", "cohort", "username", "fetched_at", "status", "error_message", "log_id",
    *USER_INFO_FIELDS, "is_final",
)  # fmt: skip

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
        ensure_schema(conn, path)
    return conn


_SCHEMA_READY: set[str] = set()


def ensure_schema(conn: duckdb.DuckDBPyConnection, database: str | Path | None = None) -> None:
    """Create what is missing. With `database`, only once per process and file: the writers
    open the file for every batch, and seven no-op CREATEs each time add up."""
    if database is not None and str(database) in _SCHEMA_READY:
        return
    conn.execute(SCHEMA_SQL)
    if database is not None and str(database) != ":memory:":
        _SCHEMA_READY.add(str(database))


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


# -- raw snapshot ---------------------------------------------------------------------------

Key = tuple[date, str]  # (snapshot_date, cohort): one partition


def keys_frame(keys: Iterable[Key]) -> pd.DataFrame:
    return pd.DataFrame(list(keys), columns=["snapshot_date", "cohort"])


def final_usernames(conn, keys: Sequence[Key]) -> dict[Key, set[str]]:
    """Users already answered for each snapshot: a resumed run spends no quota on them."""
    wanted = keys_frame(keys)  # noqa: F841 - read by SQL
    rows = conn.execute(
        "SELECT snapshot_date, cohort, username FROM tiktok.user_info "
        "SEMI JOIN wanted USING (snapshot_date, cohort) WHERE is_final"
    ).fetchall()
    found: dict[Key, set[str]] = {key: set() for key in keys}
    for snapshot_date, cohort, username in rows:
        found[(snapshot_date, cohort)].add(username)
    return found


def copy_answers_from_other_cohorts(conn, wanted: pd.DataFrame) -> set[tuple[date, str, str]]:
    """Fill (snapshot_date, cohort, username) rows from another cohort's answer for the same
    user on the same date: one API answer serves every cohort the user is in. Returns the
    rows that were filled."""
    conn.execute("BEGIN TRANSACTION")
    try:
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
            INSERT INTO tiktok.user_info ({", ".join(USER_INFO_COLUMNS)})
                SELECT {", ".join(USER_INFO_COLUMNS)} FROM copied;
        """)  # noqa: S608 - column names are this module's constants
        filled = set(conn.execute("SELECT snapshot_date, cohort, username FROM copied").fetchall())
        conn.execute("DROP TABLE copied")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return filled


def user_info_frame(rows: Sequence[tuple[date, str, UserInfoResult]]) -> pd.DataFrame:
    records = []
    for snapshot_date, cohort, r in rows:
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
                *(f.get(name) for name in USER_INFO_FIELDS),
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
    rows: Sequence[tuple[date, str, UserInfoResult]],
    requests: Sequence[tuple[date, str, RequestRecord]],
) -> None:
    """Store a batch of answers (each for a partition) and the requests that paid for them, in
    one transaction; an answer already stored for the same partition and user is replaced."""
    conn.execute("BEGIN TRANSACTION")
    try:
        if rows:
            batch = user_info_frame(rows)  # noqa: F841 - read by SQL
            conn.execute(
                "DELETE FROM tiktok.user_info u USING batch b WHERE u.snapshot_date = "
                "b.snapshot_date AND u.cohort = b.cohort AND u.username = b.username"
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
                    for snapshot_date, cohort, r in requests
                ],
                columns=REQUEST_COLUMNS,
            )
            ledger["http_status"] = ledger["http_status"].astype("Int64")
            conn.execute(_INSERT_REQUESTS)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def finish_snapshots(conn, members: dict[Key, Sequence[str]]) -> dict[Key, dict[str, int]]:
    """Drop rows of users no longer in their cohort, record each partition as complete, and
    return its row count per status."""
    keys = keys_frame(members)  # noqa: F841 - read by SQL
    member_frame = pd.DataFrame(  # noqa: F841 - read by SQL
        [(d, c, u) for (d, c), names in members.items() for u in names],
        columns=["snapshot_date", "cohort", "username"],
    )
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("""
            DELETE FROM tiktok.user_info u USING keys k
            WHERE u.snapshot_date = k.snapshot_date AND u.cohort = k.cohort
              AND NOT EXISTS (SELECT 1 FROM member_frame m WHERE m.snapshot_date = u.snapshot_date
                              AND m.cohort = u.cohort AND m.username = u.username)
        """)
        counts = conn.execute("""
            SELECT snapshot_date, cohort, status, count(*) FROM tiktok.user_info
            SEMI JOIN keys USING (snapshot_date, cohort) GROUP BY ALL
        """).fetchall()
        conn.execute("""
            INSERT OR REPLACE INTO tiktok.snapshots
            SELECT k.snapshot_date, k.cohort, count(u.username), now()::TIMESTAMP
            FROM keys k LEFT JOIN tiktok.user_info u USING (snapshot_date, cohort) GROUP BY ALL
        """)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    statuses: dict[Key, dict[str, int]] = {key: {} for key in members}
    for snapshot_date, cohort, status, count in sorted(counts):
        statuses[(snapshot_date, cohort)][status] = count
    return statuses


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

# Every ok user of each wanted partition (`keys`), with their latest earlier ok row. Most users
# were in their cohort's previous snapshot, found directly by date (DuckDB prunes the scan to
# that date); only users missing there are looked for further back, so the cost grows with the
# cohort, not with the length of the history.
_WITH_PREVIOUS = """
    WITH k AS (
        SELECT k.snapshot_date, k.cohort,
               coalesce((SELECT max(s.snapshot_date) FROM tiktok.snapshots s
                         WHERE s.cohort = k.cohort AND s.snapshot_date < k.snapshot_date),
                        DATE '1970-01-01') AS prev
        FROM keys k
    ),
    cur AS (
        SELECT u.*, k.prev FROM tiktok.user_info u JOIN k USING (snapshot_date, cohort)
        WHERE u.status = 'ok'
    ),
    at_previous AS (
        SELECT c.snapshot_date, c.cohort, c.username, p.snapshot_date AS prev_date,
               p.follower_count AS prev_followers, p.following_count AS prev_following,
               p.likes_count AS prev_likes, p.video_count AS prev_videos
        FROM cur c JOIN tiktok.user_info p
          ON p.cohort = c.cohort AND p.username = c.username AND p.snapshot_date = c.prev
        WHERE p.status = 'ok' AND p.snapshot_date IN (SELECT prev FROM k)
    ),
    missing AS (
        SELECT c.snapshot_date, c.cohort, c.username, c.prev FROM cur c
        ANTI JOIN at_previous USING (snapshot_date, cohort, username)
    ),
    further_back AS (
        SELECT m.snapshot_date, m.cohort, m.username,
               max(p.snapshot_date) AS prev_date,
               arg_max(p.follower_count, p.snapshot_date) AS prev_followers,
               arg_max(p.following_count, p.snapshot_date) AS prev_following,
               arg_max(p.likes_count, p.snapshot_date) AS prev_likes,
               arg_max(p.video_count, p.snapshot_date) AS prev_videos
        FROM missing m JOIN tiktok.user_info p
          ON p.cohort = m.cohort AND p.username = m.username AND p.snapshot_date < m.prev
        WHERE p.status = 'ok'
        GROUP BY ALL
    ),
    prev AS (SELECT * FROM at_previous UNION ALL BY NAME SELECT * FROM further_back),
    joined AS (
        SELECT cur.*, prev.* EXCLUDE (snapshot_date, cohort, username),
               datediff('day', prev.prev_date, cur.snapshot_date) AS days
        FROM cur LEFT JOIN prev USING (snapshot_date, cohort, username)
    )
"""

_DERIVE_SQL = {
    "follower_snapshots": _WITH_PREVIOUS  # noqa: S608 - fixed SQL fragments
    + """
        SELECT snapshot_date, cohort, username, follower_count, following_count, prev_date,
               days, follower_count - prev_followers, following_count - prev_following,
               (follower_count - prev_followers) / nullif(days, 0)
        FROM joined
    """,
    "engagement_snapshots": _WITH_PREVIOUS  # noqa: S608 - fixed SQL fragments
    + """
        SELECT snapshot_date, cohort, username, likes_count, video_count,
               likes_count / nullif(video_count, 0), likes_count / nullif(follower_count, 0),
               prev_date, likes_count - prev_likes, video_count - prev_videos,
               (likes_count - prev_likes) / nullif(days, 0)
        FROM joined
    """,
    "cohort_summary": """
        WITH raw AS (
            SELECT u.* FROM tiktok.user_info u SEMI JOIN keys USING (snapshot_date, cohort)
        ),
        counts AS (
            SELECT snapshot_date, cohort, count(*) AS users,
                   count(*) FILTER (WHERE status = 'ok') AS ok,
                   count(*) FILTER (WHERE status <> 'ok') AS errors
            FROM raw GROUP BY ALL
        ),
        codes AS (
            SELECT snapshot_date, cohort,
                   to_json(map_from_entries(list({'k': status, 'v': n} ORDER BY status)))::VARCHAR
                       AS errors_by_code
            FROM (SELECT snapshot_date, cohort, status, count(*) AS n FROM raw
                  WHERE status <> 'ok' GROUP BY ALL)
            GROUP BY ALL
        ),
        f AS (
            SELECT snapshot_date, cohort, median(follower_count) AS median_followers,
                   sum(follower_count) AS total_followers,
                   median(follower_growth_per_day) AS median_growth
            FROM tiktok.follower_snapshots SEMI JOIN keys USING (snapshot_date, cohort)
            GROUP BY ALL
        ),
        e AS (
            SELECT snapshot_date, cohort, sum(likes_count) AS total_likes,
                   median(likes_per_video) AS median_likes_per_video
            FROM tiktok.engagement_snapshots SEMI JOIN keys USING (snapshot_date, cohort)
            GROUP BY ALL
        )
        SELECT snapshot_date, cohort, users, ok, errors, coalesce(errors_by_code, '{}'),
               median_followers, total_followers, total_likes, median_likes_per_video,
               median_growth
        FROM counts
        LEFT JOIN codes USING (snapshot_date, cohort)
        LEFT JOIN f USING (snapshot_date, cohort)
        LEFT JOIN e USING (snapshot_date, cohort)
    """,
}


def derive(conn, table: str, keys: Sequence[Key]) -> dict[Key, int]:
    """Replace `table`'s rows of the given partitions, all in one statement and transaction;
    returns the rows written per partition."""
    if table not in _DERIVE_SQL:
        raise ValueError(f"unknown derived table {table!r}")
    keys = keys_frame(keys)  # noqa: F841 - read by SQL
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(
            f"DELETE FROM tiktok.{table} t USING keys k "  # noqa: S608 - table is checked above
            "WHERE t.snapshot_date = k.snapshot_date AND t.cohort = k.cohort"
        )
        conn.execute(f"INSERT INTO tiktok.{table} {_DERIVE_SQL[table]}")  # noqa: S608
        counts = conn.execute(
            f"SELECT snapshot_date, cohort, count(*) FROM tiktok.{table} "  # noqa: S608
            "SEMI JOIN keys USING (snapshot_date, cohort) GROUP BY ALL"
        ).fetchall()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    written = {(d, c): 0 for d, c in keys.itertuples(index=False)}
    written.update({(d, c): n for d, c, n in counts})
    return written
