"""Derivation scaling: does deriving one day cost more when the history is longer?

Synthetic histories of one cohort of --users members, written day by day as the pipeline writes
them, in three shapes:
  daily       every member answered ok every day (the easy case);
  rotated-1   members refreshed every 3 days in rotation; at each refresh 1% of members answer
              with an error and 1% are not asked (quota ran out); 2% join in the last 30 days,
              2% leave after two thirds of the history;
  rotated-10  the same with 10% errors and 10% not asked.
For each shape and history length the last day is derived as a daily run does: the kept last
answers are those the previous day's derivation left (restored before every run), then the
follower and engagement snapshots and the cohort summary are derived for the last day. Side by
side in the same run and on the same file: the same algorithm in pandas (read the kept answers
and the day's rows, fold, compute, write the same three tables and the kept answers), the
chart's query and the planner's read. Three runs; min / median / max of each, and the ratio to
the 2-day history per run.

Usage: .venv/bin/python -m benchmarks.derivation_scaling [--users 100000] [--days 2 30 365]
"""

import argparse
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from research_pipeline import warehouse
from research_pipeline.warehouse import answers, panel, queries
from research_pipeline.warehouse.transactions import transaction

COHORT = "bench"
LAST_DAY = date(2026, 11, 24)
SHAPES = {  # name: (refresh every k days, share in error, share not asked, members join/leave)
    "daily": (1, 0.0, 0.0, False),
    "rotated-1": (3, 0.01, 0.01, True),
    "rotated-10": (3, 0.10, 0.10, True),
}


def build_history(path: Path, users: int, days: int, shape: str) -> None:
    every, errors, missing, churn = SHAPES[shape]
    first = LAST_DAY - timedelta(days=days - 1)
    with warehouse.connect(path) as conn:
        for offset in range(days):  # one day at a time, as the pipeline writes them
            day = first + timedelta(days=offset)
            params = {"day": day, "t": offset, "users": users, "every": every, "cohort": COHORT,
                      "churn": churn, "days": days}  # fmt: skip
            members = """
                SELECT i FROM range($users) r(i)
                WHERE NOT ($churn AND i % 50 = 0 AND $t > 2 * $days / 3)   -- 2% leave
                  AND NOT ($churn AND i % 50 = 1 AND $t < $days - 30)      -- 2% join late
            """
            conn.execute(
                f"""
                INSERT INTO tiktok.cohort_members
                SELECT $day, $cohort, 'user_' || i, $every FROM ({members})
                """,  # noqa: S608 - constants of this script
                params,
            )
            conn.execute(
                f"""
                INSERT INTO tiktok.user_info (snapshot_date, cohort, username, fetched_at, status,
                    error_kind, error_message, log_id, display_name, bio_description, avatar_url,
                    is_verified, follower_count, following_count, likes_count, video_count,
                    is_final, source)
                WITH asked AS (
                    SELECT i, hash(i, $t) % 10000 / 10000.0 AS roll FROM ({members})
                    WHERE (i + $t) % $every = 0
                ),
                answered AS (SELECT * FROM asked WHERE roll >= $missing)
                SELECT $day, $cohort, 'user_' || i, $day::TIMESTAMP,
                       CASE WHEN roll < $missing + $errors THEN 'invalid_params' ELSE 'ok' END,
                       CASE WHEN roll < $missing + $errors THEN 'private' END,
                       CASE WHEN roll < $missing + $errors THEN 'is private' END,
                       'log', 'name', 'bio', 'url', false,
                       CASE WHEN roll >= $missing + $errors
                            THEN (1000 + i % 5000 + $t * (i % 7))::BIGINT END,
                       CASE WHEN roll >= $missing + $errors THEN 100 END,
                       CASE WHEN roll >= $missing + $errors
                            THEN (50000 + i % 9000 + $t * (i % 11))::BIGINT END,
                       CASE WHEN roll >= $missing + $errors
                            THEN (10 + $t // 7 + i % 3)::BIGINT END,
                       true, 'emulator'
                FROM answered
                """,  # noqa: S608 - constants of this script
                {**params, "errors": errors, "missing": missing},
            )
        with transaction(conn):  # what the previous day's derivation left
            answers.advance(conn, LAST_DAY - timedelta(days=1))
        conn.execute("CREATE TABLE bench_kept AS SELECT * FROM tiktok.last_answers")


def _restore_kept(conn) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM tiktok.last_answers")
        conn.execute("INSERT INTO tiktok.last_answers SELECT * FROM bench_kept")
        conn.execute("DELETE FROM tiktok.last_answers_as_of")
        conn.execute("INSERT INTO tiktok.last_answers_as_of VALUES (?)", [LAST_DAY - timedelta(1)])


def derive_sql(conn) -> float:
    _restore_kept(conn)
    started = time.perf_counter()
    for table in warehouse.DERIVED_TABLES:
        warehouse.derive(conn, table, [(LAST_DAY, COHORT)])
    return time.perf_counter() - started


_COUNTS = ["follower_count", "following_count", "likes_count", "video_count"]


def derive_pandas(conn) -> float:
    """The same algorithm in pandas: fold the kept answers with the days since, join the day's
    ok rows to each user's previous ok answer, summarise every member's latest answer, and
    write the same three tables and the kept answers."""
    _restore_kept(conn)
    started = time.perf_counter()
    as_of = LAST_DAY - timedelta(days=1)
    kept = conn.execute("SELECT * FROM tiktok.last_answers").df()
    recent = conn.execute(
        "SELECT username, snapshot_date, status, error_kind, follower_count, following_count, "
        "likes_count, video_count FROM tiktok.user_info WHERE is_final AND snapshot_date >= ?",
        [as_of],
    ).df()
    day_rows = conn.execute(
        "SELECT * FROM tiktok.user_info WHERE snapshot_date = ? AND cohort = ?",
        [LAST_DAY, COHORT],
    ).df()
    members = conn.execute(
        "SELECT username, cadence_days FROM tiktok.cohort_members "
        "WHERE snapshot_date = ? AND cohort = ?",
        [LAST_DAY, COHORT],
    ).df()
    pool = pd.concat([kept, recent], ignore_index=True)
    pool["snapshot_date"] = pd.to_datetime(pool["snapshot_date"])
    day = pd.Timestamp(LAST_DAY)
    earlier = pool[pool.snapshot_date < day].sort_values("snapshot_date")
    # the fold: each user's last final answer and last ok answer with counts before the day
    last_final = earlier.drop_duplicates("username", keep="last")
    ok_rows = earlier[(earlier.status == "ok") & earlier.follower_count.notna()]
    last_ok = ok_rows.drop_duplicates("username", keep="last")
    new_kept = pd.concat([last_final, last_ok]).drop_duplicates()
    # follower and engagement snapshots
    cur = day_rows[(day_rows.status == "ok") & day_rows.follower_count.notna()]
    prev = last_ok[["username", "snapshot_date", *_COUNTS]]
    joined = cur.merge(prev, on="username", how="left", suffixes=("", "_prev"))
    days = (pd.Timestamp(LAST_DAY) - joined.snapshot_date_prev).dt.days
    follower_delta = joined.follower_count - joined.follower_count_prev
    likes_delta = joined.likes_count - joined.likes_count_prev
    nonzero = days.where(days != 0)
    followers = pd.DataFrame({
        "snapshot_date": LAST_DAY, "cohort": COHORT, "username": joined.username,
        "follower_count": joined.follower_count, "following_count": joined.following_count,
        "previous_snapshot_date": joined.snapshot_date_prev.dt.date,
        "days_since_previous": days, "follower_delta": follower_delta,
        "following_delta": joined.following_count - joined.following_count_prev,
        "follower_growth_per_day": follower_delta / nonzero,
    })  # fmt: skip
    engagement = pd.DataFrame({
        "snapshot_date": LAST_DAY, "cohort": COHORT, "username": joined.username,
        "likes_count": joined.likes_count, "video_count": joined.video_count,
        "likes_per_video": joined.likes_count / joined.video_count.where(joined.video_count != 0),
        "likes_per_follower": joined.likes_count
        / joined.follower_count.where(joined.follower_count != 0),
        "previous_snapshot_date": joined.snapshot_date_prev.dt.date,
        "likes_delta": likes_delta, "video_delta": joined.video_count - joined.video_count_prev,
        "likes_gained_per_day": likes_delta / nonzero,
    })  # fmt: skip
    # the summary over every member's latest answer on or before the day
    latest = pool[pool.snapshot_date <= day].sort_values("snapshot_date")
    latest = latest.drop_duplicates("username", keep="last")
    m = members.merge(latest, on="username", how="left")
    age = (day - m.snapshot_date).dt.days
    gone = m.error_kind.isin(["not_found", "private", "banned"])
    allowed = m.cadence_days.clip(upper=15).where(~gone, (4 * m.cadence_days).clip(7, 28))
    ok = m[m.status == "ok"]
    summary = pd.DataFrame([{
        "snapshot_date": LAST_DAY, "cohort": COHORT, "users": len(day_rows),
        "ok": int((day_rows.status == "ok").sum()), "errors": int((day_rows.status != "ok").sum()),
        "errors_by_code": day_rows[day_rows.status != "ok"].status.value_counts().to_json(),
        "median_followers": ok.follower_count.median(),
        "total_followers": ok.follower_count.sum(), "total_likes": ok.likes_count.sum(),
        "median_likes_per_video": (ok.likes_count / ok.video_count.where(ok.video_count != 0))
        .median(),
        "median_follower_growth_per_day": followers.follower_growth_per_day.median(),
        "members": len(m), "fetched": int(day_rows.is_final.sum()),
        "fresh": int((age <= allowed).sum()), "stale": int((age > allowed).sum()),
        "never_fetched": int(m.snapshot_date.isna().sum()), "max_age_days": age.max(),
        "errors_by_kind": day_rows[day_rows.status != "ok"].error_kind.value_counts().to_json(),
    }])  # fmt: skip
    # the same writes
    frames = {"f": followers, "e": engagement, "s": summary, "k": new_kept}
    for name, frame in frames.items():  # pandas frames, as a pandas derivation would write them
        conn.register(name, frame)
    with transaction(conn):
        for table, frame in (("follower_snapshots", "f"), ("engagement_snapshots", "e"),
                             ("cohort_summary", "s")):  # fmt: skip
            conn.execute(
                f"DELETE FROM tiktok.{table} WHERE snapshot_date = ? AND cohort = ?",  # noqa: S608
                [LAST_DAY, COHORT],
            )
            conn.execute(f"INSERT INTO tiktok.{table} BY NAME SELECT * FROM {frame}")  # noqa: S608
        conn.execute("DELETE FROM tiktok.last_answers")
        conn.execute("INSERT INTO tiktok.last_answers BY NAME SELECT * FROM k")
        conn.execute("DELETE FROM tiktok.last_answers_as_of")
        conn.execute("INSERT INTO tiktok.last_answers_as_of VALUES (?)", [LAST_DAY])
    return time.perf_counter() - started


def _check_same_results(conn) -> None:
    """SQL and pandas must write the same rows: a peer that computes something else proves
    nothing."""
    got = {}
    for name, derive_with in (("SQL", derive_sql), ("pandas", derive_pandas)):
        derive_with(conn)
        got[name] = [
            conn.execute(
                "SELECT count(*), sum(follower_delta), sum(days_since_previous), "
                "round(sum(follower_growth_per_day), 3) FROM tiktok.follower_snapshots"
            ).fetchall(),
            conn.execute(
                "SELECT count(*), sum(likes_delta), round(sum(likes_per_video), 3) "
                "FROM tiktok.engagement_snapshots"
            ).fetchall(),
            conn.execute(
                "SELECT users, ok, errors, median_followers, total_followers, total_likes, "
                "members, fetched, fresh, stale, never_fetched, max_age_days, "
                "round(median_follower_growth_per_day, 6) FROM tiktok.cohort_summary"
            ).fetchall(),
            conn.execute("SELECT * FROM tiktok.last_answers ORDER BY ALL").fetchall(),
        ]
    assert got["SQL"] == got["pandas"], "pandas and SQL disagree"


def chart_query(conn) -> float:
    started = time.perf_counter()
    queries.cohort_trajectories(conn, COHORT, LAST_DAY)
    return time.perf_counter() - started


def planner_read(conn) -> float:
    started = time.perf_counter()
    panel.last_final_answers(conn, LAST_DAY)
    return time.perf_counter() - started


def first_derivation(conn) -> float:
    """After an upgrade nothing is kept: the first derivation folds the whole history once."""
    with transaction(conn):
        conn.execute("DELETE FROM tiktok.last_answers")
        conn.execute("DELETE FROM tiktok.last_answers_as_of")
    started = time.perf_counter()
    for table in warehouse.DERIVED_TABLES:
        warehouse.derive(conn, table, [(LAST_DAY, COHORT)])
    return time.perf_counter() - started


MEASURES = {"SQL": derive_sql, "pandas": derive_pandas, "chart": chart_query,
            "planner": planner_read}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, nargs="+", default=[2, 30, 365])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    cold: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for shape in args.shapes:
            for days in args.days:
                path = Path(folder) / f"{shape}_{days}.duckdb"
                started = time.perf_counter()
                build_history(path, args.users, days, shape)
                built = time.perf_counter() - started
                with warehouse.connect(path) as conn:
                    rows = conn.execute("SELECT count(*) FROM tiktok.user_info").fetchall()[0][0]
                    times = {name: [] for name in MEASURES}
                    for _ in range(args.runs):  # side by side, interleaved
                        for name, measure in MEASURES.items():
                            times[name].append(measure(conn))
                    results[(shape, days)] = times
                    _check_same_results(conn)
                    cold[(shape, days)] = first_derivation(conn)
                print(f"{shape:>10} {days:>4} days: {rows:>10,} answers, built in {built:5.1f} s",
                      flush=True)  # fmt: skip
                path.unlink()
    print(f"\nderive the last day, {args.users:,} members, {args.runs} runs: min / median / max s")
    print(
        "| shape | history (days) | SQL s | SQL vs 2 days, per run | pandas s | pandas / SQL "
        "(median) | chart query s | planner read s | first derivation s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (shape, days), times in results.items():
        base = results.get((shape, args.days[0]))["SQL"]
        ratios = " / ".join(f"{t / b:.2f}x" for t, b in zip(times["SQL"], base, strict=True))
        pandas_ratio = statistics.median(times["pandas"]) / statistics.median(times["SQL"])
        print(f"| {shape} | {days} | {_mmm(times['SQL'])} | {ratios} | {_mmm(times['pandas'])} | "
              f"{pandas_ratio:.1f}x | {_mmm(times['chart'])} | {_mmm(times['planner'])} | "
              f"{cold[(shape, days)]:.2f} |")  # fmt: skip


def _mmm(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


if __name__ == "__main__":
    main()
