"""Panels: the planner's cost at scale, the schedule tick, and 30 API days against the quota.

1. plan: 100,000 members in three cohorts (cadences 7 / 3 / 1) with 365 days of rotated history
   in DuckDB: time and peak RSS of `panels.plan_for` (reading the cohort files, the history
   query and the planner), each run in a fresh process. Target < 2 s.
2. tick: the daily schedule's evaluation over the same folder and warehouse, in a fresh process
   with a real Dagster instance. Target < 5 s.
3. days: the issue's panel (2,500 / 800 / 300 users, 200 shared, cadences 7 / 3 / 1) over 30
   API days on the emulator with a 1,000 quota: requests per day against min(quota, due).

Usage: .venv/bin/python -m benchmarks.panel_planning [--members 100000] [--runs 3] [--days 30]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from research_pipeline import panels, warehouse

LAST_DAY = date(2026, 11, 24)
COHORTS = (("creators", 0.70, 7), ("politicians", 0.25, 3), ("press", 0.05, 1))


def build(folder: Path, members: int, days: int) -> None:
    """Cohort files and a warehouse whose history follows each user's cadence."""
    cohorts = folder / "cohorts"
    cohorts.mkdir()
    start = 0
    toml = []
    for name, share, cadence in COHORTS:
        count = int(members * share)
        names = [f"member_{i}" for i in range(start, start + count)]
        (cohorts / f"{name}.txt").write_text("\n".join(names) + "\n")
        toml.append(f"[{name}]\ncadence_days = {cadence}\n")
        start += count
    (cohorts / "cohorts.toml").write_text("\n".join(toml))
    with warehouse.connect(folder / "w.duckdb") as conn:
        first = LAST_DAY - timedelta(days=days)
        for name, share, cadence in COHORTS:
            offset = sum(
                int(members * s) for n, s, _ in COHORTS[: [c[0] for c in COHORTS].index(name)]
            )
            conn.execute(
                """
                INSERT INTO tiktok.user_info (snapshot_date, cohort, username, fetched_at, status,
                    follower_count, following_count, likes_count, video_count, is_final)
                SELECT d::DATE, $cohort, 'member_' || i, d, 'ok', 1000 + i % 977, 10, 5000, 20,
                       true
                FROM range($start, $stop) r(i),
                     range($first::TIMESTAMP, $last::TIMESTAMP, INTERVAL 1 DAY) t(d)
                WHERE (i + datediff('day', $first::DATE, d::DATE)) % $cadence = 0
                """,
                {
                    "cohort": name,
                    "start": offset,
                    "stop": offset + int(members * share),
                    "first": first,
                    "last": LAST_DAY,
                    "cadence": cadence,
                },
            )
        rows = conn.execute("SELECT count(*) FROM tiktok.user_info").fetchall()[0][0]
    print(f"built {members:,} members, {days} days: {rows:,} user_info rows", flush=True)


def measure_plan(folder: str) -> dict:
    started = time.perf_counter()
    specs = panels.cohort_specs(Path(folder) / "cohorts")
    with warehouse.connect(Path(folder) / "w.duckdb", read_only=True) as conn:
        plan = panels.plan_for(conn, specs, LAST_DAY, daily_quota=1000)
    return {"seconds": time.perf_counter() - started, "planned": len(plan.users)}


def measure_tick(folder: str) -> dict:
    from dagster import build_schedule_context, instance_for_test

    os.environ.update(
        {
            "RESEARCH_PIPELINE_COHORTS_DIR": str(Path(folder) / "cohorts"),
            "RESEARCH_PIPELINE_DUCKDB": str(Path(folder) / "w.duckdb"),
            "TIKTOK_CLIENT_KEY": "k",
            "TIKTOK_CLIENT_SECRET": "s",
        }
    )
    from datetime import UTC, datetime

    from research_pipeline.definitions import load_project_defs
    from research_pipeline.defs.tiktok.schedules import daily_snapshot_schedule

    with instance_for_test() as instance:
        defs = load_project_defs()
        instance.add_dynamic_partitions("cohorts", [name for name, *_ in COHORTS])
        started = time.perf_counter()
        context = build_schedule_context(
            instance=instance,
            resources=defs.resources,
            scheduled_execution_time=datetime(2026, 11, 24, 0, 15, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        )
        result = daily_snapshot_schedule.evaluate_tick(context)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "run_requests": len(result.run_requests or [])}


def child(kind: str, folder: str) -> None:
    result = measure_plan(folder) if kind == "plan" else measure_tick(folder)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def in_fresh_process(kind: str, folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.panel_planning", "--child", kind, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def thirty_days(days: int) -> None:
    from research_pipeline.emulator import EmulatorConfig, EmulatorServer
    from research_pipeline.planner import CohortSpec
    from research_pipeline.snapshot import DailySnapshot
    from research_pipeline.tiktok import ClientSettings

    a = [f"creator{i}" for i in range(2500)]
    b = [f"politician{i}" for i in range(600)] + a[:200]
    c = [f"journalist{i}" for i in range(300)]
    specs = [
        CohortSpec("creators", a, 7),
        CohortSpec("politicians", b, 3),
        CohortSpec("press", c, 1),
    ]
    config = EmulatorConfig(rate_limit_per_minute=None, daily_quota=1000)
    with tempfile.TemporaryDirectory() as folder, EmulatorServer(config) as api:
        database = Path(folder) / "w.duckdb"
        settings = ClientSettings(
            "emulator-key", "emulator-secret", api.url, rate_limit_per_minute=None, daily_quota=1000
        )
        print("day  due  planned  requests  share of min(quota, due)")
        shares = []
        for offset in range(days):
            day = LAST_DAY + timedelta(days=offset)
            api.clock.set_date(day)
            api.state.reset_stats()
            daily = DailySnapshot(
                settings, specs, lambda: warehouse.connect(database), log=lambda _: None
            )
            plan = daily.run(day).plan
            sent = api.stats()["user_info_requests"]
            due = plan.due + plan.due_gone
            share = sent / min(1000, due) if due else 1.0
            shares.append(share)
            print(
                f"{offset + 1:>3} {due:>5} {len(plan.users):>8} {sent:>9}  {share:.3f}", flush=True
            )
        print(
            f"requests per day over {days} days, as a share of min(quota, due): "
            f"min {min(shares):.3f}, max {max(shares):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=30, help="API days to simulate (0: skip)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as folder:
        build(Path(folder), args.members, args.history_days)
        for kind, target in (("plan", 2.0), ("tick", 5.0)):
            runs = [in_fresh_process(kind, Path(folder)) for _ in range(args.runs)]
            seconds = [r["seconds"] for r in runs]
            rss = [r["peak_rss_mb"] for r in runs]
            print(
                f"{kind}: seconds min/median/max {spread(seconds)} (target < {target:g} s); "
                f"peak RSS MB {spread(rss)}"
            )
    if args.days:
        thirty_days(args.days)


if __name__ == "__main__":
    main()
