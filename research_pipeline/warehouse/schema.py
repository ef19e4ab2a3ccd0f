"""The warehouse's schema and its upgrades: a numbered list of changes, applied in order.

A researcher keeps a warehouse for years, across releases. Each change below is applied once,
in one transaction with the version it brings, when a connection opens the file for writing:
a warehouse of any earlier release gains what is new and keeps every row. A file written by a
newer release than this one is refused rather than guessed at.

Version 1 is the schema of the release of 2026-11-24, which had no version table: a file with
`tiktok.user_info` and no `tiktok.schema_version` is at version 1.

The large tables have no PRIMARY KEY on purpose: DuckDB keeps such an index in memory
(gigabytes for a year of a 100k cohort), while our writes (delete, then insert, in one
transaction) already keep (snapshot_date, cohort, username) unique, and an asset check verifies it.
"""

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from research_pipeline.errors import WarehouseError


@dataclass(frozen=True)
class Upgrade:
    version: int
    description: str
    sql: str = ""
    run: Callable[[duckdb.DuckDBPyConnection], None] | None = None


_V1_TABLES = """
CREATE TABLE tiktok.user_info (
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

CREATE TABLE tiktok.snapshots (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    users BIGINT NOT NULL,
    completed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (snapshot_date, cohort)
);

CREATE TABLE tiktok.api_requests (
    requested_at TIMESTAMP NOT NULL,          -- UTC
    snapshot_date DATE,
    cohort VARCHAR,
    username VARCHAR NOT NULL,
    http_status INTEGER,
    status VARCHAR NOT NULL,
    log_id VARCHAR
);

CREATE TABLE tiktok.follower_snapshots (
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

CREATE TABLE tiktok.engagement_snapshots (
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

CREATE TABLE tiktok.cohort_summary (
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

# What kind of failure an error row is (not_found, private, banned, rate_limited, server_error,
# other), and where every row came from (the API's host, or 'emulator'). Rows written before
# these columns existed came from an unrecorded source: their source stays NULL, honestly.
_V2_KIND_AND_SOURCE = """
ALTER TABLE tiktok.user_info ADD COLUMN error_kind VARCHAR;
ALTER TABLE tiktok.user_info ADD COLUMN source VARCHAR;
ALTER TABLE tiktok.api_requests ADD COLUMN error_kind VARCHAR;
ALTER TABLE tiktok.api_requests ADD COLUMN source VARCHAR;
UPDATE tiktok.user_info SET error_kind = CASE
    WHEN status = 'ok' THEN NULL
    WHEN status = 'rate_limit_exceeded' THEN 'rate_limited'
    WHEN status IN ('internal_error', 'timeout', 'connection_error', 'malformed_response')
        THEN 'server_error'
    WHEN error_message ILIKE '%private%' THEN 'private'
    WHEN error_message ILIKE '%banned%' THEN 'banned'
    WHEN error_message ILIKE '%cannot find%' OR error_message ILIKE '%not found%'
        OR error_message ILIKE '%not exist%' THEN 'not_found'
    ELSE 'other' END;
"""

# Panels refreshed in rotation: who was in each cohort on each day (and at what cadence), so
# coverage and cohort aggregates can count members never or long ago fetched; the summary's
# coverage columns; and the API's own time of each answer (its Date header), which dates it.
_V3_PANELS = """
CREATE TABLE tiktok.cohort_members (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    username VARCHAR NOT NULL,
    cadence_days INTEGER NOT NULL
);
ALTER TABLE tiktok.user_info ADD COLUMN served_at TIMESTAMP;
ALTER TABLE tiktok.cohort_summary ADD COLUMN members BIGINT;
ALTER TABLE tiktok.cohort_summary ADD COLUMN fetched BIGINT;
ALTER TABLE tiktok.cohort_summary ADD COLUMN fresh BIGINT;
ALTER TABLE tiktok.cohort_summary ADD COLUMN stale BIGINT;
ALTER TABLE tiktok.cohort_summary ADD COLUMN never_fetched BIGINT;
ALTER TABLE tiktok.cohort_summary ADD COLUMN max_age_days INTEGER;
ALTER TABLE tiktok.cohort_summary ADD COLUMN errors_by_kind VARCHAR;
"""

# Every documented user-info field in its own column (bio_url was missing), fields an answer
# carries beyond those asked for kept as JSON (not a failure), and the API's message (or the raw
# text of an answer of no known shape, secrets scrubbed) on every request of the ledger.
_V4_FIELDS_AND_MESSAGES = """
ALTER TABLE tiktok.user_info ADD COLUMN bio_url VARCHAR;
ALTER TABLE tiktok.user_info ADD COLUMN extra_fields JSON;
ALTER TABLE tiktok.api_requests ADD COLUMN message VARCHAR;
"""

# TikTok's terms: data refreshed within 15 days (a view of each user's last answer), data of
# accounts no longer available removed (rows are redacted in place, `forgotten_at` says when; a
# tombstone per account and cohort keeps attrition countable), and every source a warehouse has
# taken answers from, so emulator and real answers are never mixed by accident.
_V5_RESEARCH_TERMS = """
ALTER TABLE tiktok.user_info ADD COLUMN forgotten_at TIMESTAMP;
CREATE TABLE tiktok.tombstones (
    username VARCHAR NOT NULL,
    cohort VARCHAR NOT NULL,
    since DATE NOT NULL,                      -- first answer of the account's current absence
    kind VARCHAR NOT NULL,                    -- not_found, private or banned
    forgotten_at TIMESTAMP NOT NULL,
    PRIMARY KEY (username, cohort)
);
CREATE TABLE tiktok.sources (
    source VARCHAR PRIMARY KEY,               -- the API's host, or 'emulator'
    first_seen TIMESTAMP NOT NULL
);
INSERT INTO tiktok.sources
    SELECT source, min(fetched_at) FROM tiktok.user_info WHERE source IS NOT NULL GROUP BY 1;
CREATE VIEW tiktok.last_refreshed AS
    SELECT username,
           max(snapshot_date) AS last_refreshed,
           arg_max(CASE WHEN status = 'ok' THEN 'ok' ELSE coalesce(error_kind, 'other') END,
                   snapshot_date) AS last_answer,
           current_date - max(snapshot_date) AS age_days
    FROM tiktok.user_info WHERE is_final GROUP BY username;
"""

# Each user's last final and last ok answer dated before `as_of`, so the daily queries (previous
# answer, latest answer, last refresh) read the cohort, not the history (warehouse.answers).
# Empty at first: the first derivation fills it from the history, once.
_V6_LAST_ANSWERS = """
CREATE TABLE tiktok.last_answers (
    username VARCHAR NOT NULL,
    snapshot_date DATE NOT NULL,
    status VARCHAR NOT NULL,
    error_kind VARCHAR,
    follower_count BIGINT,
    following_count BIGINT,
    likes_count BIGINT,
    video_count BIGINT
);
CREATE TABLE tiktok.last_answers_as_of (as_of DATE NOT NULL);
CREATE OR REPLACE VIEW tiktok.last_refreshed AS
    WITH answers AS (
        SELECT username, snapshot_date, status, error_kind FROM tiktok.last_answers
        UNION ALL
        SELECT username, snapshot_date, status, error_kind FROM tiktok.user_info
        WHERE is_final AND snapshot_date >= coalesce(
            (SELECT max(as_of) FROM tiktok.last_answers_as_of), DATE '0001-01-01')
    )
    SELECT username,
           max(snapshot_date) AS last_refreshed,
           arg_max(CASE WHEN status = 'ok' THEN 'ok' ELSE coalesce(error_kind, 'other') END,
                   snapshot_date) AS last_answer,
           current_date - max(snapshot_date) AS age_days
    FROM answers GROUP BY username;
"""

# Coverage words with one meaning: gone accounts counted apart, never as fresh (the summaries
# are derived again by the next run of their partitions).
_V7_GONE_IN_COVERAGE = """
ALTER TABLE tiktok.cohort_summary ADD COLUMN gone BIGINT;
"""

# Every member-day accounted for (warehouse.panel_days): each plan's decision per member is kept
# (asked, deferred by the budget with its rank, not due) and how the asking of the planned ended,
# so a day's gap says why it is one, never guessed afterwards; the panel itself, one row per
# member and day with its status; the summary's counts by status.
_V8_MEMBER_DAYS = """
CREATE TABLE tiktok.plan_decisions (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    username VARCHAR NOT NULL,
    decision VARCHAR NOT NULL,                -- planned, deferred or not_due
    plan_rank INTEGER,                        -- place in the day's order of due users
    day_budget INTEGER,                       -- requests the plan could spend; NULL: no cap
    ended_because VARCHAR,                    -- how the asking of the planned ended
    decided_at TIMESTAMP NOT NULL
);
CREATE TABLE tiktok.panel_days (
    snapshot_date DATE NOT NULL,
    cohort VARCHAR NOT NULL,
    username VARCHAR NOT NULL,
    status VARCHAR NOT NULL,                  -- warehouse.panel_days.STATUSES
    plan_rank INTEGER,
    day_budget INTEGER
);
ALTER TABLE tiktok.cohort_summary ADD COLUMN members_by_status VARCHAR;
"""

UPGRADES: tuple[Upgrade, ...] = (
    Upgrade(1, "the tables of the release of 2026-11-24", _V1_TABLES),
    Upgrade(2, "error_kind and source on user_info and api_requests", _V2_KIND_AND_SOURCE),
    Upgrade(3, "cohort_members, served_at, coverage in cohort_summary", _V3_PANELS),
    Upgrade(4, "bio_url, extra_fields, api_requests.message", _V4_FIELDS_AND_MESSAGES),
    Upgrade(5, "forgotten_at, tombstones, sources, last_refreshed view", _V5_RESEARCH_TERMS),
    Upgrade(6, "last_answers: each user's last answers, kept", _V6_LAST_ANSWERS),
    Upgrade(7, "cohort_summary.gone: accounts no longer available, apart", _V7_GONE_IN_COVERAGE),
    Upgrade(8, "plan_decisions, panel_days, cohort_summary.members_by_status", _V8_MEMBER_DAYS),
)
LATEST_VERSION = UPGRADES[-1].version


def current_version(conn: duckdb.DuckDBPyConnection) -> int:
    tables = {
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'tiktok' "
            "AND table_catalog = current_database()"
        ).fetchall()
    }
    if "schema_version" in tables:
        return conn.execute(
            "SELECT coalesce(max(version), 0) FROM tiktok.schema_version"
        ).fetchall()[0][0]
    return 1 if "user_info" in tables else 0


def upgrade(conn: duckdb.DuckDBPyConnection, database: str = "") -> int:
    """Bring the schema to LATEST_VERSION in one transaction; returns the version found."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS tiktok")
    found = current_version(conn)
    if found > LATEST_VERSION:
        raise WarehouseError(
            f"{database or 'the warehouse'} has schema version {found}, newer than this release "
            f"knows ({LATEST_VERSION}): upgrade research-pipeline before using it"
        )
    if found == LATEST_VERSION:
        return found
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tiktok.schema_version (version INTEGER PRIMARY KEY, "
            "description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        for step in UPGRADES:
            if step.version <= found:
                continue
            if step.sql:
                conn.execute(step.sql)
            if step.run is not None:
                step.run(conn)
            conn.execute(
                "INSERT INTO tiktok.schema_version VALUES (?, ?, now()::TIMESTAMP)",
                [step.version, step.description],
            )
        if found == 1:  # a file from before versioning: say when its version 1 was recognised
            conn.execute(
                "INSERT INTO tiktok.schema_version VALUES (1, ?, now()::TIMESTAMP)",
                [UPGRADES[0].description + " (found, not created)"],
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
