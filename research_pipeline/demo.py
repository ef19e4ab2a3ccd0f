"""`research-pipeline demo`: the whole path on embedded defaults, with nothing to set up.

Starts the emulator on a free loopback port, reads the sample cohorts shipped in `cohorts/`,
fetches them through the client and prints what came back.
"""

import argparse
import time
from pathlib import Path

from research_pipeline.cohorts import cohort_files, read_cohort
from research_pipeline.emulator import EmulatorConfig, EmulatorServer
from research_pipeline.tiktok import ClientSettings, ResearchApiClient

SAMPLE_COHORTS = Path(__file__).resolve().parent.parent / "cohorts"


def add_parser(commands) -> None:
    parser = commands.add_parser("demo", help="run the pipeline end to end against the emulator")
    parser.add_argument("--cohorts-dir", type=Path, default=SAMPLE_COHORTS)
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    config = EmulatorConfig(latency_seconds=0.02)
    with EmulatorServer(config) as api:
        settings = ClientSettings(
            client_key=config.client_key, client_secret=config.client_secret, base_url=api.url
        )
        with ResearchApiClient(settings) as client:
            for name, path in cohort_files(args.cohorts_dir).items():
                cohort = read_cohort(path, name)
                started = time.perf_counter()
                results = sorted(client.iter_user_info(cohort.usernames), key=lambda r: r.username)
                elapsed = time.perf_counter() - started
                print(f"\ncohort {name}: {len(results)} users in {elapsed:.2f}s")
                print(f"  {'username':<24} {'status':<16} {'followers':>12} {'likes':>14}")
                for r in results:
                    print(
                        f"  {r.username:<24} {r.status:<16} "
                        f"{_blank_none(r.fields.get('follower_count')):>12} "
                        f"{_blank_none(r.fields.get('likes_count')):>14}"
                    )
            quota = client.quota
            print(f"\nrequests spent: {quota.used} (quota left today: {quota.remaining})")
    return 0


def _blank_none(value) -> str:
    return "" if value is None else str(value)
