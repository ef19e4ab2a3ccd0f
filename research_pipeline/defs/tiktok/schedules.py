"""The daily snapshot, right after the quota resets, within what the quota can serve."""

from collections.abc import Sequence
from datetime import date

import duckdb
from dagster import (
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from research_pipeline.defs.resources import CohortFolder, ResearchApiResource, Warehouse
from research_pipeline.defs.tiktok.jobs import snapshot_job
from research_pipeline.errors import WarehouseError
from research_pipeline.orchestration.partitions import cohort_partitions, snapshot_key
from research_pipeline.warehouse import raw


def plan_daily_runs(
    needs: Sequence[tuple[str, int]], quota_left: int | None
) -> tuple[list[str], list[str]]:
    """Cohorts to run today (in order, while the quota lasts) and those that must wait.

    `needs` holds (cohort, users still to fetch). A cohort is never started with less quota than
    it needs: half a cohort would leave a gap in every series of that day.
    """
    run, wait = [], []
    left = quota_left
    for cohort, needed in needs:
        if needed == 0:
            continue
        if left is None or needed <= left:
            run.append(cohort)
            left = None if left is None else left - needed
        else:
            wait.append(cohort)
    return run, wait


def _needs_and_quota(warehouse: Warehouse, cohorts, today: date, daily_quota: int | None):
    sizes = {name: len(cohort.usernames) for name, cohort in cohorts.items()}
    try:
        with warehouse.session(read_only=True) as conn:
            spent = raw.requests_spent_today(conn)
            stored = raw.final_usernames(conn, [(today, name) for name in sizes])
    except (WarehouseError, duckdb.Error, OSError):
        # No warehouse yet (first run) or a writer holds it: plan on the full quota.
        return list(sizes.items()), daily_quota
    needs = [(name, size - len(stored[(today, name)])) for name, size in sizes.items()]
    return needs, None if daily_quota is None else max(0, daily_quota - spent)


@schedule(job=snapshot_job, cron_schedule="15 0 * * *", execution_timezone="UTC")
def daily_snapshot_schedule(
    context: ScheduleEvaluationContext,
    research_api: ResearchApiResource,
    cohort_folder: CohortFolder,
    warehouse: Warehouse,
):
    """Requests today's partition for every cohort that today's remaining quota can serve."""
    today = context.scheduled_execution_time.date()
    registered = context.instance.get_dynamic_partitions(cohort_partitions.name)
    files = cohort_folder.files()
    cohorts = {name: cohort_folder.read(name) for name in registered if name in files}
    if not cohorts:
        return SkipReason("no cohorts registered: add a file to the cohorts folder")
    needs, quota_left = _needs_and_quota(
        warehouse, cohorts, today, research_api.settings().daily_quota
    )
    run, wait = plan_daily_runs(needs, quota_left)
    if wait:
        context.log.warning(
            f"quota left today ({quota_left}) cannot serve cohorts {', '.join(wait)}: they wait"
        )
    if not run:
        return SkipReason(
            f"nothing to fetch within today's quota ({quota_left} left); "
            f"waiting: {', '.join(wait) or 'none'}"
        )
    return [
        RunRequest(run_key=f"{today}:{name}", partition_key=str(snapshot_key(today, name)))
        for name in run
    ]
