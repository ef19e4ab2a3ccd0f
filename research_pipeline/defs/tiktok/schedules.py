"""The daily snapshot: one run that carries out the day's plan for every cohort.

It ticks every hour from 00:15 UTC (RESEARCH_PIPELINE_SNAPSHOT_CRON, read when the code location
loads, changes it): the first tick does the day's work; the later ones find nothing due and
skip, unless the quota came back late after midnight (seen for hours from the real API), a run
failed or an outage stopped it, in which case they carry out what is still due (within the
hour, while the day lasts; never against a spent quota: the plan then has no budget). The day
is the API's (its Date header), as for the CLI; a tick while a run of that day is in flight
queues nothing."""

from pathlib import Path

import duckdb
from dagster import (
    DagsterInstance,
    DagsterRun,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from research_pipeline import panels
from research_pipeline.defs.resources import CohortFolder, ResearchApiResource, Warehouse
from research_pipeline.defs.tiktok.alerts import run_scope
from research_pipeline.defs.tiktok.jobs import snapshot_job
from research_pipeline.errors import ResearchPipelineError, WarehouseError
from research_pipeline.orchestration.partitions import check_partition_day, cohort_partitions
from research_pipeline.orchestration.recovery import recover_dead_runs
from research_pipeline.orchestration.runs import partition_range_tags
from research_pipeline.planner import Plan
from research_pipeline.settings import PipelineSettings


def todays_plan(
    research_api: ResearchApiResource, cohort_folder: CohortFolder, warehouse: Warehouse, day
) -> Plan:
    """The plan the run will carry out (the asset plans again at run time, from the same data
    and the same way: panels.plan_from_warehouse)."""
    specs = panels.cohort_specs(Path(cohort_folder.path))
    quota = research_api.settings().daily_quota
    try:
        return panels.plan_from_warehouse(
            warehouse.database,
            specs,
            day,
            daily_quota=quota,
            tries_per_day=research_api.tries_per_user_per_day,
        )
    except (WarehouseError, duckdb.Error, OSError):
        # A writer holds the warehouse, or it is damaged: plan on an empty history (the run
        # plans from the real one, or says what is wrong).
        return panels.plan_for(None, specs, day, daily_quota=quota)


@schedule(
    job=snapshot_job,
    cron_schedule=PipelineSettings.from_env().snapshot_cron,
    execution_timezone="UTC",
)
def daily_snapshot_schedule(
    context: ScheduleEvaluationContext,
    research_api: ResearchApiResource,
    cohort_folder: CohortFolder,
    warehouse: Warehouse,
):
    """Requests one run over today's partitions of every cohort: the day's plan, in one stream."""
    tick = context.scheduled_execution_time
    today = _api_day(context, research_api)
    try:
        check_partition_day(today)
    except ResearchPipelineError as exc:
        return SkipReason(str(exc))
    in_flight = _run_in_flight(context.instance, today)
    if in_flight is not None:
        return SkipReason(
            f"a run of {today} is in flight ({in_flight.run_id[:8]}): nothing queued; the "
            "next tick carries out what it leaves"
        )
    registered = context.instance.get_dynamic_partitions(cohort_partitions.name)
    files = cohort_folder.files()
    cohorts = [name for name in registered if name in files]
    if not cohorts:
        return SkipReason("no cohorts registered: add a file to the cohorts folder")
    for line in recover_dead_runs(context.instance):  # a killed CLI run must not block the day
        context.log.warning(line)
    plan = todays_plan(research_api, cohort_folder, warehouse, today)
    context.log.info(plan.summary())
    if not plan.users:
        return SkipReason(f"nothing to fetch: {plan.summary()}")
    # One run over the registered range: a partition whose file is gone is skipped by the asset.
    return RunRequest(run_key=tick.isoformat(), tags=partition_range_tags(today, registered))


def _api_day(context: ScheduleEvaluationContext, research_api: ResearchApiResource):
    """The API's day; the tick's own when the API cannot be asked (the run then says why)."""
    try:
        return research_api.api_today()
    except ResearchPipelineError as exc:
        context.log.warning(f"the API's date could not be read ({exc}): planning the tick's day")
        return context.scheduled_execution_time.date()


def _run_in_flight(instance: DagsterInstance, day) -> DagsterRun | None:
    """A snapshot run of `day` queued or under way."""
    runs = instance.get_runs(
        filters=RunsFilter(job_name=snapshot_job.name, statuses=IN_PROGRESS_RUN_STATUSES)
    )
    return next((run for run in runs if run_scope(instance, run)[0] == day), None)
