"""Orchestration overhead: one run over many cohort partitions vs one run per partition.

200 cohorts x 5 users for one date against the in-process emulator (no latency, no limits),
each variant on a fresh DuckDB file and a fresh Dagster instance, measured in one process.
Usage: .venv/bin/python -m benchmarks.orchestration_overhead [--cohorts 200] [--users 5]
"""

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from dagster import instance_for_test

from research_pipeline.definitions import load_project_defs
from research_pipeline.emulator import EmulatorConfig, EmulatorServer
from research_pipeline.orchestration.runs import register_cohorts, run_snapshot

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def setup(folder: Path, api: EmulatorServer, cohorts: int, users: int):
    cohort_dir = folder / "cohorts"
    cohort_dir.mkdir(parents=True)
    names = [f"cohort_{n:03d}" for n in range(cohorts)]
    for n, name in enumerate(names):
        members = [f"member_{n}_{i}" for i in range(users)]
        (cohort_dir / f"{name}.txt").write_text("\n".join(members) + "\n")
    os.environ.update(
        {
            "TIKTOK_CLIENT_KEY": "emulator-key",
            "TIKTOK_CLIENT_SECRET": "emulator-secret",
            "TIKTOK_API_BASE_URL": api.url,
            "TIKTOK_RATE_LIMIT_PER_MINUTE": "off",
            "TIKTOK_DAILY_QUOTA": "off",
            "RESEARCH_PIPELINE_COHORTS_DIR": str(cohort_dir),
            "RESEARCH_PIPELINE_DUCKDB": str(folder / "w.duckdb"),
        }
    )
    return load_project_defs(), names


def timed_runs(api, cohorts, users, batches) -> tuple[float, int, bool]:
    """Run `batches(names)` (a list of cohort lists, one run each) on fresh storage."""
    with tempfile.TemporaryDirectory() as folder, instance_for_test() as instance:
        defs, names = setup(Path(folder), api, cohorts, users)
        register_cohorts(instance, names)
        today = api.clock.today()
        started = time.perf_counter()
        ok, runs = True, 0
        for batch in batches(names):
            for result in run_snapshot(defs, instance, today, batch, QUIET):
                ok = ok and result.success
                runs += 1
        return time.perf_counter() - started, runs, ok


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--cohorts", type=int, default=200)
    parser.add_argument("--users", type=int, default=5)
    args = parser.parse_args()
    config = EmulatorConfig(rate_limit_per_minute=None, daily_quota=None)
    with EmulatorServer(config) as api:
        one, _, ok1 = timed_runs(api, 1, args.users, lambda names: [names])
        single, runs_s, ok2 = timed_runs(api, args.cohorts, args.users, lambda names: [names])
        each, runs_e, ok3 = timed_runs(
            api, args.cohorts, args.users, lambda names: [[n] for n in names]
        )
    assert ok1 and ok2 and ok3, "a run failed"
    n = args.cohorts
    print(f"{n} cohorts x {args.users} users, one date; in-process emulator, no latency")
    print(f"{'variant':<34} {'runs':>5} {'total s':>8} {'s/partition':>12}")
    print(f"{'one one-cohort run':<34} {1:>5} {one:>8.2f} {one:>12.3f}")
    print(f"{'single run over all partitions':<34} {runs_s:>5} {single:>8.2f} {single / n:>12.3f}")
    print(f"{'one run per partition':<34} {runs_e:>5} {each:>8.2f} {each / n:>12.3f}")
    print(
        f"single run / one-cohort run: {single / one:.2f}x; "
        f"per-partition runs / single run: {each / single:.1f}x"
    )


if __name__ == "__main__":
    main()
