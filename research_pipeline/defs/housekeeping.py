"""`housekeeping_job`, daily: runs older than RESEARCH_PIPELINE_KEEP_RUNS_DAYS deleted with
their logs (orchestration.housekeeping). On by default: it spends no quota and touches no data."""

from dagster import Config, DefaultScheduleStatus, OpExecutionContext, job, op, schedule
from pydantic import Field

from research_pipeline.orchestration.housekeeping import forget_old_runs
from research_pipeline.settings import PipelineSettings
from research_pipeline.tiktok.settings import declarations

_KEEP = declarations(PipelineSettings)["keep_runs_days"]


class HousekeepingConfig(Config):
    keep_days: int = Field(
        default=PipelineSettings.from_env().keep_runs_days,
        description=f"{_KEEP.metadata['variable']}: {_KEEP.metadata['meaning']}.",
    )


@op
def forget_old_runs_op(context: OpExecutionContext, config: HousekeepingConfig) -> int:
    deleted = forget_old_runs(context.instance, config.keep_days)
    context.log.info(f"deleted {deleted} run(s) older than {config.keep_days} days, with logs")
    return deleted


@job(description="Delete Dagster runs older than the kept days, with their event logs.")
def housekeeping_job():
    forget_old_runs_op()


@schedule(
    job=housekeeping_job,
    cron_schedule="45 4 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def housekeeping_schedule():
    return {}
