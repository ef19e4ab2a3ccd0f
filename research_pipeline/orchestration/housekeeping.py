"""Dagster's own history kept for a while, not for ever.

Every run leaves its record, its event log and its captured step output (compute logs, files
under $DAGSTER_HOME/storage even when the history is in PostgreSQL). An hourly schedule makes
~9,000 runs a year: the UI slows down and the disk fills. Finished runs older than
RESEARCH_PIPELINE_KEEP_RUNS_DAYS are deleted with their logs; the data never depends on them
(the warehouse keeps every answer and its ledger), and alerts have long been sent.
"""

from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, RunsFilter
from dagster._core.storage.dagster_run import FINISHED_STATUSES

_BATCH = 200


def forget_old_runs(instance: DagsterInstance, keep_days: int, now: datetime | None = None) -> int:
    """Delete finished runs last updated more than `keep_days` ago, with their event logs and
    captured output; returns how many. Runs still going are never touched."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    deleted = 0
    while True:
        records = instance.get_run_records(
            RunsFilter(statuses=list(FINISHED_STATUSES), updated_before=cutoff), limit=_BATCH
        )
        if not records:
            return deleted
        for record in records:
            run_id = record.dagster_run.run_id
            try:
                instance.compute_log_manager.delete_logs(prefix=[run_id])
            except NotImplementedError:
                pass  # a log manager that keeps its own (cloud storage with its own lifecycle)
            instance.delete_run(run_id)
            deleted += 1
