"""What the CLI prints about runs and the warehouse after them."""

from collections.abc import Sequence
from datetime import date

import click
from dagster import DagsterInstance, Definitions

from research_pipeline import warehouse
from research_pipeline.orchestration.runs import run_snapshot
from research_pipeline.warehouse import queries

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_and_report(
    defs: Definitions, instance: DagsterInstance, snapshot_date: date, cohorts: Sequence[str]
) -> bool:
    """Run the snapshot job; print one line per run and the reason of any failure."""
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
        click.echo(f"run {result.run_id[:8]} {state}; API requests spent: {spent}")
        for event in result.all_events:
            if event.is_step_failure:
                click.echo(f"  {event.step_key}: {event.step_failure_data.error.message.strip()}")
        ok = ok and result.success
    return ok


def print_summary(database: str, snapshot_date: date) -> None:
    with warehouse.connect(database, read_only=True) as conn:
        summary = queries.cohort_summary_on(conn, snapshot_date)
        history = queries.followers_gained_by_day(conn)
    click.echo(f"\ncohort summary for {snapshot_date} (tiktok.cohort_summary):")
    click.echo(summary.to_string(index=False))
    click.echo(
        "\nfollowers gained since each user's previous snapshot (tiktok.follower_snapshots):"
    )
    click.echo(history.to_string(index=False))
