"""Derivation scaling: does deriving one day cost more when the history is longer?

Builds synthetic histories in DuckDB (a cohort of --users users with 1, 30 and 365 daily
snapshots), then times deriving the last day's follower + engagement snapshots and summary with
the warehouse SQL, and with a pandas implementation of the same derivation as a peer.
Usage: .venv/bin/python -m benchmarks.derivation_scaling [--users 100000] [--days 1 30 365]
"""

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from research_pipeline import warehouse

COHORT = "bench"
LAST_DAY = date(2026, 11, 24)


def build_history(path: Path, users: int, days: int) -> None:
    with warehouse.connect(path) as conn:
        _insert_history(conn, users, days)


def _insert_history(conn, users: int, days: int) -> None:
    first = LAST_DAY - timedelta(days=days - 1)
    for offset in range(days):  # one day at a time, as the pipeline writes them
        day = first + timedelta(days=offset)
        conn.execute(
            """
            INSERT INTO tiktok.user_info (snapshot_date, cohort, username, fetched_at, status,
                error_message, log_id, display_name, bio_description, avatar_url, is_verified,
                follower_count, following_count, likes_count, video_count, is_final)
            SELECT $day, $cohort, 'user_' || i, $day::TIMESTAMP, 'ok', NULL, 'log', 'name', 'bio',
                   'url', false, (1000 + i % 5000 + $t * (i % 7))::BIGINT, 100,
                   (50000 + i % 9000 + $t * (i % 11))::BIGINT, (10 + $t / 7 + i % 3)::BIGINT, true
            FROM range($users) r(i)
            """,
            {"day": day, "cohort": COHORT, "t": offset, "users": users},
        )
        conn.execute("INSERT INTO tiktok.snapshots VALUES (?, ?, ?, now())", [day, COHORT, users])


def derive_sql(path: Path) -> float:
    with warehouse.connect(path) as conn:
        started = time.perf_counter()
        for table in warehouse.DERIVED_TABLES:
            warehouse.derive(conn, table, [(LAST_DAY, COHORT)])
        return time.perf_counter() - started


def derive_pandas(path: Path) -> float:
    """The same derivation the way a notebook would: load the cohort's history, shift per user."""
    conn = duckdb.connect(str(path), read_only=True)
    started = time.perf_counter()
    raw = conn.execute(
        "SELECT snapshot_date, username, status, follower_count, following_count, likes_count, "
        "video_count FROM tiktok.user_info WHERE cohort = ? AND snapshot_date <= ?",
        [COHORT, LAST_DAY],
    ).df()
    ok = raw[raw.status == "ok"].sort_values(["username", "snapshot_date"])
    previous = ok.groupby("username")[
        ["snapshot_date", "follower_count", "likes_count", "video_count", "following_count"]
    ].shift()
    today = ok[ok.snapshot_date == pd.Timestamp(LAST_DAY)]
    prev = previous.loc[today.index]
    days = (today.snapshot_date - prev.snapshot_date).dt.days
    follower_delta = today.follower_count - prev.follower_count
    _ = pd.DataFrame(
        {
            "username": today.username,
            "follower_delta": follower_delta,
            "growth_per_day": follower_delta / days.where(days != 0),
            "likes_delta": today.likes_count - prev.likes_count,
            "likes_per_video": today.likes_count / today.video_count.where(today.video_count != 0),
            "likes_per_follower": today.likes_count
            / today.follower_count.where(today.follower_count != 0),
        }
    )
    _ = (today.follower_count.median(), today.follower_count.sum(), today.likes_count.sum())
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, nargs="+", default=[1, 2, 30, 365])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for days in args.days:
            path = Path(folder) / f"history_{days}.duckdb"
            started = time.perf_counter()
            build_history(path, args.users, days)
            built = time.perf_counter() - started
            sql = min(derive_sql(path) for _ in range(args.repeat))
            pandas = min(derive_pandas(path) for _ in range(args.repeat))
            results[days] = (sql, pandas)
            print(
                f"built {days:>4} days x {args.users} users in {built:6.1f}s "
                f"({path.stat().st_size / 1e6:.0f} MB)",
                flush=True,
            )
    base_sql, base_pandas = results[args.days[0]]
    # With one snapshot there is no previous one to join: the first day with deltas is day 2.
    with_previous = results.get(2, (base_sql, base_pandas))[0]
    print(f"\nderive one day (best of {args.repeat}), {args.users} users")
    header = ("history", "SQL s", "vs 1st", "vs 2 days", "pandas s", "vs 1st", "pandas/SQL")
    print("{:>8} {:>8} {:>7} {:>10} {:>9} {:>7} {:>11}".format(*header))
    for days, (sql, pandas) in results.items():
        print(
            f"{days:>8} {sql:>8.3f} {sql / base_sql:>6.2f}x {sql / with_previous:>9.2f}x "
            f"{pandas:>9.3f} {pandas / base_pandas:>6.2f}x {pandas / sql:>10.1f}x"
        )


if __name__ == "__main__":
    main()
