"""What a run pays for the member-day panel (tiktok.panel_days): each run derives the last 15
days of a cohort again (the window), where a full derivation reads the whole history. Side by
side in one run, for a cohort of --members followed for each of --days, on a synthetic
warehouse (membership every day, a cadence of 7, one answer in 7 member-days, a plan for every
member-day): the full derivation and the window, min/median/max of --runs.

Usage: .venv/bin/python -m benchmarks.panel_days_cost [--runs 3] [--members 10000]
       [--days 30 120 365]
"""

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from research_pipeline import warehouse
from research_pipeline.warehouse.panel_days import derive_panel_days


def synthetic_warehouse(path: Path, members: int, days: int) -> None:
    start = date(2026, 1, 1)
    with warehouse.connect(path) as conn:
        conn.execute(f"""
            INSERT INTO tiktok.cohort_members
            SELECT DATE '{start}' + d::INT, 'big', 'user_' || m, 7
            FROM range({days}) r(d), range({members}) u(m)""")  # noqa: S608 - numbers
        conn.execute(f"""
            INSERT INTO tiktok.plan_decisions
            SELECT DATE '{start}' + d::INT, 'big', 'user_' || m,
                   CASE WHEN (m + d) % 7 = 0 THEN 'planned' ELSE 'not_due' END, NULL, 1000,
                   'done', now()::TIMESTAMP
            FROM range({days}) r(d), range({members}) u(m)""")  # noqa: S608
        conn.execute(f"""
            INSERT INTO tiktok.user_info (snapshot_date, cohort, username, fetched_at, status,
                                          is_final, follower_count)
            SELECT DATE '{start}' + d::INT, 'big', 'user_' || m, now()::TIMESTAMP, 'ok', true, 10
            FROM range({days}) r(d), range({members}) u(m) WHERE (m + d) % 7 = 0""")  # noqa: S608
        derive_panel_days(conn, ["big"], full=True)


def timed(path: Path, full: bool) -> float:
    with warehouse.connect(path) as conn:
        began = time.perf_counter()
        derive_panel_days(conn, ["big"], full=full)
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--days", type=int, nargs="+", default=[30, 120, 365])
    args = parser.parse_args()
    print(f"{args.members:,} members; seconds min / median / max of {args.runs} runs")
    print("history days | full derivation | the run's window (15 days) | full / window")
    with tempfile.TemporaryDirectory() as tmp:
        for days in args.days:
            path = Path(tmp) / f"w{days}.duckdb"
            synthetic_warehouse(path, args.members, days)
            times = {"full": [], "window": []}
            for _ in range(args.runs):
                for variant in times:  # interleaved: the same machine state
                    times[variant].append(timed(path, variant == "full"))
            shown = {v: "/".join(f"{f(t):.2f}" for f in (min, statistics.median, max))
                     for v, t in times.items()}  # fmt: skip
            ratio = statistics.median(times["full"]) / statistics.median(times["window"])
            print(f"{days:>12} | {shown['full']:>15} | {shown['window']:>26} | {ratio:.1f}x")


if __name__ == "__main__":
    main()
