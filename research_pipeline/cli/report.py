"""What the CLI prints about runs and the warehouse after them."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import click
from dagster import AssetKey, DagsterInstance, Definitions

from research_pipeline import warehouse
from research_pipeline.orchestration.runs import run_snapshot
from research_pipeline.warehouse import queries

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass
class RunsOutcome:
    succeeded: bool = True
    requests: int = 0
    plan_incomplete: str = ""  # why the day's plan was not finished, when it was not


def run_and_report(
    defs: Definitions, instance: DagsterInstance, snapshot_date: date, cohorts: Sequence[str]
) -> RunsOutcome:
    """Run the snapshot job; print one line per run and the reason of any failure."""
    outcome = RunsOutcome()
    for result in run_snapshot(defs, instance, snapshot_date, cohorts, QUIET_RUN_CONFIG):
        spent = _requests_spent(instance, result.run_id)
        outcome.requests += spent
        state = "succeeded" if result.success else "FAILED"
        click.echo(f"run {result.run_id[:8]} {state}; API requests spent: {spent}")
        for event in result.all_events:
            if event.is_step_failure:
                click.echo(f"  {event.step_key}: {event.step_failure_data.error.message.strip()}")
        for evaluation in result.get_asset_check_evaluations():
            if evaluation.check_name == "plan_completed" and not evaluation.passed:
                why = evaluation.metadata.get("why")
                outcome.plan_incomplete = str(why.value) if why else "see the run's checks"
        outcome.succeeded = outcome.succeeded and result.success
    return outcome


def _requests_spent(instance: DagsterInstance, run_id: str) -> int:
    """Requests of a run, from its user_info materialization (failed steps have none: then the
    run's log has them, but the ledger is the truth: `tiktok.api_requests`)."""
    for record in instance.fetch_materializations(
        AssetKey(["tiktok", "user_info"]), limit=1000
    ).records:
        if record.run_id != run_id:
            continue
        value = record.asset_materialization.metadata.get("requests_spent")
        return int(value.value) if value is not None else 0
    return 0


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
