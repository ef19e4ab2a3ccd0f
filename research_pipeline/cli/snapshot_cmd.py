"""`research-pipeline snapshot`: carry out today's plan, through a real Dagster run."""

from contextlib import ExitStack

import click

from research_pipeline.cli import collection
from research_pipeline.errors import CohortError

# Exit codes beyond 0/1/2: the run succeeded but the day's plan could not be finished; a
# signal (Ctrl-C, SIGTERM) stopped it, as shells report 128 + SIGINT.
PLAN_INCOMPLETE = 3
INTERRUPTED = 130


@click.command()
@click.option(
    "--cohort", "cohorts", multiple=True, help="Only this cohort (repeatable); default: all."
)
def snapshot(cohorts: tuple[str, ...]) -> int:
    """Carry out today's plan: fetch the members due today, store them, derive the tables.

    "Today" is the API's date (its Date header), never this machine's clock. Exits 0 when the
    day's plan is done (other members may stay due for later days), 3 when the quota ran out
    before it was (or the API was down), 1 when the run failed, 130 when Ctrl-C or SIGTERM
    stopped it (what was answered is stored; nobody is asked twice by the next run).
    """
    with ExitStack() as stack:
        with collection.loading():
            # Dagster and DuckDB load here, not at import: `snapshot --help` and a mistyped
            # option answer without them.
            from research_pipeline.definitions import load_project_defs
            from research_pipeline.orchestration.instance import dagster_instance
            from research_pipeline.settings import PipelineSettings
            from research_pipeline.tiktok import ClientSettings

            client = ClientSettings.from_env()
            pipeline = PipelineSettings.from_env()
            instance = stack.enter_context(dagster_instance())
            defs = load_project_defs()
        return _snapshot(instance, defs, client, pipeline, cohorts)


def _snapshot(instance, defs, client, pipeline, cohorts: tuple[str, ...]) -> int:
    from research_pipeline.cli.plan_cmd import api_today, current_plan
    from research_pipeline.cli.report import print_summary, run_and_report
    from research_pipeline.settings import requests_per_day

    folder = defs.resources["cohort_folder"]
    files = folder.files()
    chosen = list(cohorts) or sorted(files)
    unknown = [c for c in chosen if c not in files]
    if unknown:
        raise CohortError(
            f"no cohort file for: {', '.join(unknown)} in {folder.path} "
            "(see `research-pipeline cohorts list`)"
        )
    if not chosen:
        raise CohortError(
            f"no cohorts in {folder.path}: add one with `research-pipeline cohorts add NAME FILE`"
        )
    today = api_today(client)
    click.echo(f"plan: {current_plan(today, pipeline, requests_per_day()).summary()}")
    outcome = run_and_report(defs, instance, today, chosen)
    if outcome.succeeded:
        print_summary(defs.resources["warehouse"].database, today)
    if outcome.interrupted:
        click.echo("interrupted: the answers received are stored; run again to go on", err=True)
        return INTERRUPTED
    if not outcome.succeeded:
        return 1
    if outcome.plan_incomplete:
        click.echo(f"plan not finished: {outcome.plan_incomplete}", err=True)
        return PLAN_INCOMPLETE
    return 0
