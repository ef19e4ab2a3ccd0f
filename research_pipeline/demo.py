"""`research-pipeline demo`: the whole pipeline on embedded defaults, with nothing to set up.

Starts the emulator on a free loopback port, points the pipeline at it, and takes a snapshot of
the sample cohorts for each of the last few days (moving the emulator's clock, since the API
only ever serves today), through real Dagster runs recorded in $DAGSTER_HOME and written to the
DuckDB file. Then prints the cohort summary and how to open the UI.
"""

import argparse
import os
from datetime import timedelta
from pathlib import Path

from research_pipeline.emulator import EmulatorConfig, EmulatorServer

REPO_ROOT = Path(__file__).resolve().parent.parent
NEXT_STEPS = """
Open the Dagster UI on these runs:
  cd {root} && make ui        (DAGSTER_HOME=$PWD .venv/bin/dagster dev)
Query the data:
  .venv/bin/python -c "import duckdb; c = duckdb.connect('data/research.duckdb', read_only=True);
  print(c.sql('from tiktok.follower_snapshots order by snapshot_date desc limit 10'))"
"""


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo", help="snapshot the sample cohorts for a few days against the emulator"
    )
    parser.add_argument("--days", type=int, default=4, help="days of history (default: 4)")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    config = EmulatorConfig(latency_seconds=0.01)
    with EmulatorServer(config) as api:
        os.environ.update(
            {
                "TIKTOK_API_BASE_URL": api.url,
                "TIKTOK_CLIENT_KEY": config.client_key,
                "TIKTOK_CLIENT_SECRET": config.client_secret,
            }
        )
        os.environ.setdefault("RESEARCH_PIPELINE_COHORTS_DIR", str(REPO_ROOT / "cohorts"))
        os.environ.setdefault("RESEARCH_PIPELINE_DUCKDB", str(REPO_ROOT / "data/research.duckdb"))
        from research_pipeline.cli import dagster_instance, print_summary, run_and_report
        from research_pipeline.defs.definitions import build_defs

        defs = build_defs()
        cohorts = sorted(defs.resources["cohort_folder"].files())
        today = api.clock.today()
        with dagster_instance() as instance:
            print(f"Emulator on {api.url}; Dagster instance in {instance.root_directory}")
            for days_ago in range(args.days - 1, -1, -1):
                day = today - timedelta(days=days_ago)
                api.clock.set_date(day)
                print(f"\n== snapshot of {day} (emulator clock), cohorts: {', '.join(cohorts)}")
                if not run_and_report(defs, instance, day, cohorts):
                    return 1
        print_summary(os.environ["RESEARCH_PIPELINE_DUCKDB"], today)
        print(f"\nemulator: {api.stats()['user_info_requests']} user-info requests served")
    print(NEXT_STEPS.format(root=REPO_ROOT))
    return 0
