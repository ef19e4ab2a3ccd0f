"""What the CLI prints about runs and the warehouse after them."""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import click
from dagster import DagsterInstance, Definitions
from dagster._core.execution.plan.objects import ErrorSource

from research_pipeline import warehouse
from research_pipeline.errors import WarehouseError
from research_pipeline.orchestration.runs import run_snapshot
from research_pipeline.warehouse import queries

# The run's log on the terminal, one line a message: Dagster's console (with its stack traces)
# only behind `-v` (research_pipeline/defs/loggers.py).
QUIET_RUN_CONFIG = {
    "loggers": {
        "console": {"config": {"log_level": "CRITICAL"}},
        "one_line_console": {"config": {"log_level": "INFO"}},
    }
}
VERBOSE_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _run_config() -> dict:
    context = click.get_current_context(silent=True)
    verbose = bool(context and (context.find_root().obj or {}).get("verbose"))
    return VERBOSE_RUN_CONFIG if verbose else QUIET_RUN_CONFIG


@dataclass
class RunsOutcome:
    succeeded: bool = True
    requests: int = 0
    plan_incomplete: str = ""  # why the day's plan was not finished, when it was not
    interrupted: bool = False  # Ctrl-C or SIGTERM stopped a run


def run_and_report(
    defs: Definitions, instance: DagsterInstance, snapshot_date: date, cohorts: Sequence[str]
) -> RunsOutcome:
    """Run the snapshot job; print one line per run, the reason of any failure, and the requests
    spent, from the ledger (a failed run spends too, and says so), apart from those a run that
    died had sent, which this run's recovery adds to the ledger."""
    outcome = RunsOutcome()
    database = defs.resources["warehouse"].database
    before = _ledger_requests(database)
    results = run_snapshot(
        defs, instance, snapshot_date, cohorts, _run_config(), log=lambda line: click.echo(line)
    )
    for result in results:
        state = "succeeded" if result.success else "FAILED"
        click.echo(f"run {result.run_id[:8]} {state}")
        for event in result.all_events:
            if event.is_step_failure:
                failure = event.step_failure_data
                click.echo(f"  {event.step_key}: {_failure_text(failure)}")
                outcome.interrupted = outcome.interrupted or _was_interrupted(failure)
        for folder in _withdrawn_exports(result):
            click.echo(
                f"  withdrawn under TikTok's terms: {folder} held data of accounts no longer "
                "available; export the cohort again"
            )
        for evaluation in result.get_asset_check_evaluations():
            if evaluation.check_name == "plan_completed" and not evaluation.passed:
                why = evaluation.metadata.get("why")
                outcome.plan_incomplete = str(why.value) if why else "see the run's checks"
        outcome.succeeded = outcome.succeeded and result.success
        if not result.success:
            _tell_failure(instance, snapshot_date, cohorts, result)
        elif not outcome.plan_incomplete:
            _tell_recovery(instance, snapshot_date, result)
    rows, unrecorded = _ledger_requests(database)
    unrecorded -= before[1]
    outcome.requests = rows - before[0] - unrecorded
    spent = f"API requests spent: {outcome.requests}"
    if unrecorded:  # the ledger grew by them in this run, but a run that died spent them
        spent += f" (and {unrecorded} sent by a run that died before recording them, counted now)"
    click.echo(spent)
    return outcome


def _tell_failure(instance, day, cohorts, result) -> None:
    """A failed CLI run tells the alert channels itself (the daemon's sensor may not watch it,
    or may not run): once per day and cause, as the sensor would."""
    from research_pipeline.defs.tiktok.alerts import failed_day, step_failures, tell_once
    from research_pipeline.notify import NotificationError, alert_channels_from_env

    reasons, cause = step_failures(result.all_events)
    alert = failed_day(day, cohorts, reasons, cause, f"run {result.run_id} in the Dagster UI")
    channels = alert_channels_from_env(os.environ)
    try:
        said = tell_once(instance, channels, day, f"failed:{cause}", alert, result.run_id)
    except NotificationError as exc:
        said = str(exc)
    if channels.configured:
        click.echo(f"  {said}")


def _tell_recovery(instance, day, result) -> None:
    """A day told as failed (by the CLI or the daemon) carried out now: told once."""
    from research_pipeline.defs.tiktok.alerts import tell_recovery
    from research_pipeline.notify import NotificationError, alert_channels_from_env

    channels = alert_channels_from_env(os.environ)
    if not channels.configured:
        return
    try:
        said = tell_recovery(instance, channels, day, result.run_id)
    except NotificationError as exc:
        said = str(exc)
    if said.startswith("alert sent") or "not delivered" in said:
        click.echo(f"  {said}")


def _withdrawn_exports(result) -> list[str]:
    """Export folders the run's forgetting pass removed (the gone_accounts materialization)."""
    folders = []
    for materialization in result.asset_materializations_for_node("tiktok__gone_accounts"):
        entry = materialization.metadata.get("exports_withdrawn_folders")
        folders += list(entry.value) if entry is not None else []
    return folders


def _failure_text(failure) -> str:
    """A step's failure in one line: its own message, never Dagster's wrapper and trace."""
    message = (failure.error.message if failure.error else "").strip()
    return message.removeprefix("dagster._core.definitions.events.Failure: ").splitlines()[0]


def _was_interrupted(failure) -> bool:
    """The day's run stopped for a signal (its Failure says so), or Dagster stopped a step."""
    user = failure.user_failure_data
    if user is not None and "interrupted" in (user.metadata or {}):
        return True
    return failure.error_source == ErrorSource.INTERRUPT


def _ledger_requests(database: str) -> tuple[int, int]:
    """The ledger's requests, and those a dead run left unrecorded (`queries.ledger_counts`);
    none before the first snapshot."""
    try:
        with warehouse.connect(database, read_only=True) as conn:
            return queries.ledger_counts(conn)
    except WarehouseError:
        return 0, 0


def print_summary(database: str, snapshot_date: date) -> None:
    with warehouse.connect(database, read_only=True) as conn:
        summary = queries.cohort_summary_on(conn, snapshot_date)
        history = queries.followers_gained_by_day(conn)
    click.echo(f"\ncohort summary for {snapshot_date} (tiktok.cohort_summary):")
    click.echo(summary.text())
    click.echo(
        "\nfollowers gained since each user's previous snapshot (tiktok.follower_snapshots):"
    )
    click.echo(history.text())
