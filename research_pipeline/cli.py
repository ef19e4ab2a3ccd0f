"""The `research-pipeline` command."""

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from research_pipeline.cohorts import CohortError, check_cohort_name, read_cohort
from research_pipeline.emulator import EmulatorConfig, EmulatorServer

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _limit(value: str) -> int | None:
    return None if value.lower() in ("off", "none", "0") else int(value)


def add_emulator_parser(commands) -> None:
    parser = commands.add_parser(
        "emulator",
        help="run the offline Research API emulator on loopback",
        description="Serve the documented token and user-info endpoints with a synthetic "
        "population, limits and injectable faults. Point TIKTOK_API_BASE_URL at it.",
    )
    defaults = EmulatorConfig()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--client-key", default=defaults.client_key)
    parser.add_argument("--client-secret", default=defaults.client_secret)
    parser.add_argument(
        "--rate-limit",
        type=_limit,
        default=defaults.rate_limit_per_minute,
        help="requests per minute, or 'off' (default: %(default)s)",
    )
    parser.add_argument(
        "--daily-quota",
        type=_limit,
        default=defaults.daily_quota,
        help="requests per UTC day, or 'off' (default: %(default)s)",
    )
    parser.add_argument("--token-lifetime", type=float, default=defaults.token_lifetime_seconds)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of HTTP 500s")
    parser.add_argument("--malformed-rate", type=float, default=0.0)
    parser.add_argument("--reset-rate", type=float, default=0.0)
    parser.add_argument("--burst-429-every", type=int, default=None)
    parser.add_argument("--retry-after", type=float, default=defaults.retry_after_seconds)
    parser.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        help="the emulator's UTC date (YYYY-MM-DD); default: today",
    )
    parser.set_defaults(func=run_emulator)


def run_emulator(args: argparse.Namespace) -> int:
    config = EmulatorConfig(
        seed=args.seed,
        client_key=args.client_key,
        client_secret=args.client_secret,
        rate_limit_per_minute=args.rate_limit,
        daily_quota=args.daily_quota,
        token_lifetime_seconds=args.token_lifetime,
        latency_seconds=args.latency_ms / 1000,
        error_rate=args.error_rate,
        malformed_rate=args.malformed_rate,
        reset_rate=args.reset_rate,
        burst_429_every=args.burst_429_every,
        retry_after_seconds=args.retry_after,
    )
    server = EmulatorServer(config, host=args.host, port=args.port)
    if args.date:
        server.clock.set_date(args.date)
    print(f"Research API emulator on {server.url} (date {server.clock.today()}); Ctrl-C stops it")
    print(f"  export TIKTOK_API_BASE_URL={server.url} TIKTOK_CLIENT_KEY={config.client_key}")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


# -- Dagster instance and runs ----------------------------------------------------------------


@contextmanager
def dagster_instance() -> Iterator:
    """The instance in $DAGSTER_HOME, so runs from the CLI show in `dagster dev`. Unset, it is
    the current folder when that holds dagster.yaml (the repository), else ~/.research-pipeline."""
    from dagster import DagsterInstance

    if not os.environ.get("DAGSTER_HOME"):
        home = Path.cwd() if (Path.cwd() / "dagster.yaml").exists() else None
        home = home or Path.home() / ".research-pipeline"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home.resolve())
    with DagsterInstance.get() as instance:
        yield instance


def run_and_report(defs, instance, snapshot_date: date, cohorts: Sequence[str]) -> bool:
    """Run the snapshot job; print one line per run and the reason of any failure."""
    from research_pipeline.defs.runs import run_snapshot

    ok = True
    for result in run_snapshot(defs, instance, snapshot_date, cohorts, QUIET_RUN_CONFIG):
        # In a ranged run every partition's event carries the run's totals: read one.
        spent = next(
            (
                event.materialization.metadata["requests_spent"].value
                for event in result.get_asset_materialization_events()
                if "requests_spent" in event.materialization.metadata
            ),
            0,
        )
        state = "succeeded" if result.success else "FAILED"
        print(f"run {result.run_id[:8]} {state}; API requests spent: {spent}")
        for event in result.all_events:
            if event.is_step_failure:
                print(f"  {event.step_key}: {event.step_failure_data.error.message.strip()}")
        ok = ok and result.success
    return ok


def print_summary(database: str, snapshot_date: date) -> None:
    from research_pipeline import storage

    with storage.connect(database, read_only=True) as conn:
        summary = conn.execute(
            "SELECT cohort, users, ok, errors, errors_by_code, median_followers, total_likes, "
            "round(median_follower_growth_per_day, 2) AS median_growth_per_day "
            "FROM tiktok.cohort_summary WHERE snapshot_date = ? ORDER BY cohort",
            [snapshot_date],
        ).df()
        history = conn.execute(
            "SELECT snapshot_date, cohort, sum(follower_delta) AS followers_gained, "
            "count(previous_snapshot_date) AS users_with_previous "
            "FROM tiktok.follower_snapshots GROUP BY ALL ORDER BY 1, 2"
        ).df()
    print(f"\ncohort summary for {snapshot_date} (tiktok.cohort_summary):")
    print(summary.to_string(index=False))
    print("\nfollowers gained since each user's previous snapshot (tiktok.follower_snapshots):")
    print(history.to_string(index=False))


# -- cohorts and snapshot commands -------------------------------------------------------------


def run_cohorts_validate(args: argparse.Namespace) -> int:
    cohort = read_cohort(Path(args.file), name=args.name or _stem_or_default(args.file))
    print(cohort.report(limit=args.show))
    return 1 if cohort.problem_count else 0


def _stem_or_default(path: str) -> str:
    """Validation of a file whose name is no cohort name still reads the usernames."""
    stem = Path(path).stem
    try:
        return check_cohort_name(stem)
    except CohortError:
        return "unnamed"


def run_cohorts_add(args: argparse.Namespace) -> int:
    from research_pipeline.defs.constants import cohorts_dir
    from research_pipeline.defs.runs import register_cohorts

    name = check_cohort_name(args.name)
    source = Path(args.file)
    cohort = read_cohort(source, name)
    print(cohort.report())
    if not cohort.usernames:
        print(f"{source}: no valid usernames; nothing added")
        return 1
    folder = cohorts_dir()
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".csv" if source.suffix.lower() == ".csv" else ".txt"
    existing = [p for p in (folder / f"{name}.txt", folder / f"{name}.csv") if p.exists()]
    if existing and not args.replace:
        print(f"cohort {name} exists ({existing[0]}); pass --replace to overwrite it")
        return 1
    for path in existing:
        path.unlink()
    target = folder / f"{name}{suffix}"
    shutil.copyfile(source, target)
    with dagster_instance() as instance:
        register_cohorts(instance, [name])
    print(f"cohort {name}: {len(cohort.usernames)} users in {target}; partition registered")
    return 0


def run_cohorts_list(args: argparse.Namespace) -> int:
    from research_pipeline.cohorts import cohort_files
    from research_pipeline.defs.constants import cohorts_dir
    from research_pipeline.defs.partitions import cohort_partitions

    files = cohort_files(cohorts_dir())
    with dagster_instance() as instance:
        registered = instance.get_dynamic_partitions(cohort_partitions.name)
    print(f"{'cohort':<24} {'users':>8} {'bad lines':>9}  registered  file")
    for name in sorted(set(files) | set(registered)):
        if name in files:
            cohort = read_cohort(files[name], name)
            users, bad, where = len(cohort.usernames), cohort.problem_count, files[name]
        else:
            users, bad, where = 0, 0, "(file missing)"
        mark = "yes" if name in registered else "no"
        print(f"{name:<24} {users:>8} {bad:>9}  {mark:<10}  {where}")
    return 0


def run_snapshot_command(args: argparse.Namespace) -> int:
    from research_pipeline.defs.constants import duckdb_path
    from research_pipeline.defs.definitions import build_defs

    defs = build_defs()
    files = defs.resources["cohort_folder"].files()
    cohorts = args.cohort or sorted(files)
    unknown = [c for c in cohorts if c not in files]
    if unknown:
        print(f"no cohort file for: {', '.join(unknown)} (see `research-pipeline cohorts list`)")
        return 1
    if not cohorts:
        print("no cohorts: add one with `research-pipeline cohorts add NAME FILE`")
        return 1
    today = datetime.now(UTC).date()
    with dagster_instance() as instance:
        ok = run_and_report(defs, instance, today, cohorts)
    if ok:
        print_summary(duckdb_path(), today)
    return 0 if ok else 1


def run_export(args: argparse.Namespace) -> int:
    from research_pipeline import storage
    from research_pipeline.defs.constants import duckdb_path

    out = Path(args.out)
    with storage.connect(duckdb_path(), read_only=True) as conn:
        rows = storage.export_table(conn, args.table, out, args.format, args.cohort, args.since)
    print(f"wrote {rows} rows of tiktok.{args.table} to {out} ({args.format})")
    return 0


def add_pipeline_parsers(commands) -> None:
    cohorts = commands.add_parser("cohorts", help="add, list and validate cohort files")
    sub = cohorts.add_subparsers(dest="cohorts_command", required=True)
    add = sub.add_parser("add", help="copy a file of usernames in as cohort NAME and register it")
    add.add_argument("name")
    add.add_argument("file")
    add.add_argument("--replace", action="store_true", help="overwrite an existing cohort")
    add.set_defaults(func=run_cohorts_add)
    listing = sub.add_parser("list", help="cohort files, their sizes and registration")
    listing.set_defaults(func=run_cohorts_list)
    validate = sub.add_parser("validate", help="report every bad line of a cohort file")
    validate.add_argument("file")
    validate.add_argument("--name", default=None)
    validate.add_argument("--show", type=int, default=50, help="problems to print")
    validate.set_defaults(func=run_cohorts_validate)

    snapshot = commands.add_parser(
        "snapshot", help="materialize today's raw and derived partitions in one run"
    )
    snapshot.add_argument("--cohort", action="append", help="a cohort (repeatable); default: all")
    snapshot.set_defaults(func=run_snapshot_command)

    from research_pipeline.storage import EXPORTABLE_TABLES

    export = commands.add_parser("export", help="write a table to Parquet or CSV (R, pandas)")
    export.add_argument("table", choices=EXPORTABLE_TABLES)
    export.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    export.add_argument("--out", required=True, help="the file to write")
    export.add_argument("--cohort", default=None, help="only this cohort")
    export.add_argument(
        "--since",
        type=date.fromisoformat,
        default=None,
        help="only snapshots on or after this date (YYYY-MM-DD)",
    )
    export.set_defaults(func=run_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="research-pipeline",
        description="Repeatable TikTok Research API snapshots, orchestrated by Dagster.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_emulator_parser(commands)
    add_pipeline_parsers(commands)
    from research_pipeline import demo

    demo.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CohortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
