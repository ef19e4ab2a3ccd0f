"""`tiktok/user_info`: the raw snapshot, one row per cohort member per day."""

from datetime import date, timedelta
from functools import partial
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Backoff,
    Config,
    Failure,
    FreshnessPolicy,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    RetryRequested,
    asset,
)
from pydantic import Field

from research_pipeline import panels
from research_pipeline.defs.resources import (
    CohortFolder,
    ResearchApiResource,
    ResearchTerms,
    Warehouse,
)
from research_pipeline.defs.tiktok.checks import (
    DEFAULT_MAX_ERROR_SHARE,
    USER_INFO_CHECKS,
    check_user_info,
)
from research_pipeline.defs.tiktok.common import table_metadata
from research_pipeline.errors import (
    CohortError,
    ConfigurationError,
    SnapshotDateError,
    SnapshotIncompleteError,
    WarehouseError,
)
from research_pipeline.orchestration.names import SNAPSHOT_RETRIES, WAREHOUSE_POOL
from research_pipeline.orchestration.partitions import snapshot_partitions, split_key
from research_pipeline.snapshot import DailySnapshot, retry_wanted
from research_pipeline.warehouse import queries


class UserInfoConfig(Config):
    refetch: bool = Field(
        default=False,
        description="Fetch every user again, even those already stored for this snapshot "
        "(spends quota; normally a re-run only fetches what is missing).",
    )
    max_error_share: float = Field(
        default=DEFAULT_MAX_ERROR_SHARE,
        description="Warn when more than this share of users answer with an error.",
    )


@asset(
    key_prefix="tiktok",
    group_name="tiktok",
    partitions_def=snapshot_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    retry_policy=RetryPolicy(
        max_retries=SNAPSHOT_RETRIES,
        delay=10,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    ),
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    check_specs=USER_INFO_CHECKS,
    # The API serves today only: a day not fetched is lost, so a day without a snapshot is a
    # failure the UI should show, not merely staleness.
    freshness_policy=FreshnessPolicy.time_window(
        fail_window=timedelta(hours=36), warn_window=timedelta(hours=25)
    ),
)
def user_info(
    context: AssetExecutionContext,
    config: UserInfoConfig,
    research_api: ResearchApiResource,
    cohort_folder: CohortFolder,
    warehouse: Warehouse,
    research_terms: ResearchTerms,
) -> MaterializeResult:
    """User info of the day's planned members of each cohort, from the Research API.

    One plan for every cohort (`research_pipeline.planner`) spends the day's quota on the members
    most overdue; a partition holds the members fetched that day. Every request ends with a row:
    its fields, or the API's error code, message and kind. Only the API's today can be fetched;
    a re-run fetches only the planned users not yet answered. The day's run itself is plain
    Python (`research_pipeline.snapshot.DailySnapshot`); this maps it onto Dagster.
    """
    partition_keys = context.partition_keys  # each read asks the instance for the cohorts again
    keys = [split_key(key) for key in partition_keys]
    day = _one_day(keys)
    specs, daily = _daily_snapshot(context, research_api, cohort_folder, warehouse, research_terms)
    cohorts = [cohort for _, cohort in keys]
    missing = sorted(set(cohorts) - {spec.name for spec in specs})
    if missing:
        context.log.warning(
            f"no cohort file for {', '.join(missing)} in {cohort_folder.path}: those partitions "
            "get no rows (add the file back, or ignore them)"
        )
    try:
        run = daily.run(day, cohorts, refetch=config.refetch)
    except (SnapshotDateError, SnapshotIncompleteError, WarehouseError) as exc:
        raise Failure(str(exc), allow_retries=False, metadata={"cause": exc.cause}) from None
    _end_or_retry(context, run, research_api)
    for report in run.reports[:20]:
        context.log.info(f"{report.cohort} {report.snapshot_date}: {report.statuses}")
    with warehouse.session() as conn:
        check_results = check_user_info(
            conn,
            run.partitions,
            run,
            config.max_error_share,
            day,
            research_terms.max_data_age_days,
        )
        _add_partition_metadata(context, conn, run, partition_keys)
        metadata = _run_metadata(run.plan, run)
        metadata.update(table_metadata(conn, "user_info", 0))
        del metadata["dagster/row_count"]  # per partition, above
    return MaterializeResult(metadata=metadata, check_results=check_results)


def _add_partition_metadata(context: AssetExecutionContext, conn, run, partition_keys) -> None:
    """Each partition's own numbers and preview, whatever else the run did."""
    kinds = queries.errors_by_kind(conn, [p.key for p in run.partitions])
    by_key = {(r.snapshot_date, r.cohort): r for r in run.reports}
    for key in partition_keys:
        report = by_key.get(split_key(key))
        if report is not None:
            preview = queries.preview(conn, "user_info", report.snapshot_date, report.cohort)
            context.add_asset_metadata(
                _partition_metadata(report, kinds[split_key(key)], preview), partition_key=key
            )


def _end_or_retry(context: AssetExecutionContext, run, research_api) -> None:
    """What the run's end means for Dagster: an interrupt fails the step for good ("stop
    spending now"); users left transient ask for a step retry (never after a stop)."""
    if run.new_day:
        context.log.warning(
            f"the API's day changed to {run.new_day}: {run.new_day_answers} answers are stored "
            f"under {run.new_day}; the members not reached are planned again on {run.new_day}"
        )
    if run.interrupted:  # "stop spending now": the run ends, and Dagster must not retry it
        raise Failure(
            run.interrupt_message,
            allow_retries=False,
            metadata={"interrupted": True, "cause": "interrupted"},
        )
    if retry_wanted(run, context.retry_number, SNAPSHOT_RETRIES):
        context.log.warning(
            f"{run.unfinished} users ended with transient errors (429/5xx/timeouts); their rows "
            f"are stored and the step is retried in {research_api.retry_delay_seconds:g}s "
            "for them only."
        )
        raise RetryRequested(
            max_retries=SNAPSHOT_RETRIES, seconds_to_wait=research_api.retry_delay_seconds
        )


def _daily_snapshot(context, research_api, cohort_folder, warehouse, research_terms):
    """The cohorts, and the day's run over the resources (plain Python, no Dagster inside)."""
    try:
        specs = panels.cohort_specs(Path(cohort_folder.path))
        daily = DailySnapshot(
            research_api.settings(),
            specs,
            warehouse.session,
            coordination=warehouse.coordination(),  # shared with every process of the project
            read_views=[partial(warehouse.session, read_only=True), warehouse.published_view],
            allow_mixed_sources=research_terms.allow_mixed_sources,
            deadline_seconds=research_api.run_deadline_seconds,
            tries_per_user_per_day=research_api.tries_per_user_per_day,
            log=context.log.info,
            warn=context.log.warning,
        )
    except (CohortError, ConfigurationError) as exc:
        raise Failure(str(exc), allow_retries=False) from None
    return specs, daily


def _one_day(keys) -> date:
    days = sorted({day for day, _ in keys})
    if len(days) > 1:
        raise Failure(
            f"one run fetches one API day; this one has {len(days)} ({days[0]} to {days[-1]}). "
            "The API serves today only: materialize today's partitions.",
            allow_retries=False,
        )
    return days[0]


def _partition_metadata(report, errors_by_kind: dict, preview) -> dict:
    """This partition's own numbers: one cohort on one day, whatever else the run did."""
    statuses = report.statuses
    rows = sum(statuses.values())
    return {
        "dagster/row_count": MetadataValue.int(rows),
        "rows": MetadataValue.int(rows),
        "ok": MetadataValue.int(statuses.get("ok", 0)),
        "errors": MetadataValue.int(rows - statuses.get("ok", 0)),
        "errors_by_code": MetadataValue.json({k: v for k, v in statuses.items() if k != "ok"}),
        "errors_by_kind": MetadataValue.json(errors_by_kind),
        "members": MetadataValue.int(report.members),
        "planned": MetadataValue.int(report.planned),
        "already_stored": MetadataValue.int(report.already_stored),
        "copied_from_another_cohort": MetadataValue.int(report.copied),
        # A user in several cohorts costs one request, credited to the first cohort asking.
        "requests_spent": MetadataValue.int(report.requests_spent),
        "preview": MetadataValue.md(preview.markdown()),
    }


def _run_metadata(plan, run) -> dict:
    """The run's plan and quota, the same on every partition the run materialized."""
    per_partition = "\n".join(
        f"| {r.snapshot_date} | {r.cohort} | {r.members} | {r.planned} | "
        f"{r.statuses.get('ok', 0)} | {r.already_stored} | {r.copied} | {r.requests_spent} |"
        for r in run.reports
    )
    metadata = {
        "run_requests_spent": MetadataValue.int(run.requests),
        "run_planned_users": MetadataValue.int(len(plan.users)),
        "due_users_waiting": MetadataValue.int(len(plan.left_waiting) + run.unreached),
        "demand_per_day": MetadataValue.float(round(plan.demand_per_day, 1)),
        "plan": MetadataValue.text(plan.summary()),
        "run_partitions": MetadataValue.md(
            "| date | cohort | members | planned | ok | already stored | copied | requests |\n"
            "|---|---|---|---|---|---|---|---|\n" + per_partition
        ),
    }
    if run.quota_left is not None:  # no figure at all when no quota is configured: no fake -1
        metadata["quota_left_today"] = MetadataValue.int(run.quota_left)
    return metadata
