"""`research-pipeline demo`: the whole pipeline on embedded defaults, with nothing to set up.

Starts the emulator on a free loopback port, points the pipeline at it, and takes a snapshot of
the sample cohorts for each of the last few days (moving the emulator's clock, since the API
only ever serves today), through real Dagster runs. Emulator answers never go where real ones
do: the demo has its own Dagster home, warehouse and exports under `demo/`, whatever
DAGSTER_HOME or RESEARCH_PIPELINE_DUCKDB say. Then prints the cohort summary and how to open
the UI on it.
"""

import os
import shutil
from datetime import timedelta
from pathlib import Path

import click

from research_pipeline.settings import project_dir

NEXT_STEPS = """
Open the Dagster UI on these runs:
  cd {root} && make demo-ui   (.venv/bin/research-pipeline demo-ui: an emulator for its runs too)
Query the data:
  .venv/bin/python -c "import duckdb; c = duckdb.connect('{database}', read_only=True); print(c.execute('from tiktok.follower_snapshots order by snapshot_date desc limit 10').df())"
"""  # noqa: E501 - one line, so it can be pasted


def demo_dir(root: Path) -> Path:
    """Where the demo keeps everything: demo/ in the project (RESEARCH_PIPELINE_DEMO_DIR moves
    it, for the tests of the demo itself)."""
    return Path(os.environ.get("RESEARCH_PIPELINE_DEMO_DIR") or root / "demo")


def _demo_cohorts(root: Path) -> Path:
    """The demo's own copy of the sample cohorts (examples/cohorts): it never reads or registers
    the researcher's cohorts, and what a researcher adds never joins the demo."""
    folder = demo_dir(root) / "cohorts"
    folder.mkdir(parents=True, exist_ok=True)
    for sample in (root / "examples" / "cohorts").iterdir():
        if sample.is_file():
            shutil.copyfile(sample, folder / sample.name)
    return folder


def demo_environment(root: Path, api) -> dict[str, str]:
    """The settings of every demo process: the demo emulator, and the demo's own Dagster home,
    warehouse, exports and cohorts under demo/. No .env is read (env_file.py)."""
    folder = demo_dir(root)
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if (root / "dagster.yaml").exists():
        shutil.copyfile(root / "dagster.yaml", home / "dagster.yaml")
    return {
        "TIKTOK_API_BASE_URL": api.url,
        "TIKTOK_CLIENT_KEY": api.config.client_key,
        "TIKTOK_CLIENT_SECRET": api.config.client_secret,
        "DAGSTER_HOME": str(home),
        "RESEARCH_PIPELINE_DUCKDB": str(folder / "research.duckdb"),
        "RESEARCH_PIPELINE_EXPORTS_DIR": str(folder / "exports"),
        "RESEARCH_PIPELINE_COHORTS_DIR": str(_demo_cohorts(root)),
        "RESEARCH_PIPELINE_ENV_FILE": "none",
    }


@click.command()
@click.option("--days", type=int, default=4, show_default=True, help="Days of history to take.")
def demo(days: int) -> int:
    """Snapshot the sample cohorts for a few days against the emulator."""
    from research_pipeline.cli.report import print_summary, run_and_report
    from research_pipeline.definitions import load_project_defs
    from research_pipeline.emulator import EmulatorConfig, EmulatorServer
    from research_pipeline.orchestration.instance import dagster_instance
    from research_pipeline.warehouse.connection import published_path

    config = EmulatorConfig(latency_seconds=0.01)
    root = project_dir()
    with EmulatorServer(config) as api:
        os.environ.update(demo_environment(root, api))
        today = api.clock.today()
        with dagster_instance() as instance:
            defs = load_project_defs()  # loading reads the instance's definitions state
            cohorts = sorted(defs.resources["cohort_folder"].files())
            database = defs.resources["warehouse"].database
            click.echo(f"Emulator on {api.url}; Dagster instance in {instance.root_directory}")
            for days_ago in range(days - 1, -1, -1):
                day = today - timedelta(days=days_ago)
                api.clock.set_date(day)
                click.echo(
                    f"\n== snapshot of {day} (emulator clock), cohorts: {', '.join(cohorts)}"
                )
                if not run_and_report(defs, instance, day, cohorts).succeeded:
                    return 1
        print_summary(database, today)
        click.echo(f"\nemulator: {api.stats()['user_info_requests']} user-info requests served")
    click.echo(NEXT_STEPS.format(root=root, database=published_path(database)))
    return 0
