"""`tiktok/user_info`: the raw snapshot, one row per cohort member per day."""

import json
from datetime import timedelta

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

from research_pipeline.defs.resources import CohortFolder, ResearchApiResource, Warehouse
from research_pipeline.defs.tiktok.checks import (
    DEFAULT_MAX_ERROR_SHARE,
    USER_INFO_CHECKS,
    check_user_info,
)
from research_pipeline.defs.tiktok.metadata import table_metadata
from research_pipeline.errors import (
    CohortError,
    ConfigurationError,
    SnapshotDateError,
    SnapshotIncompleteError,
)
from research_pipeline.orchestration.names import SNAPSHOT_RETRIES, WAREHOUSE_POOL
from research_pipeline.orchestration.partitions import snapshot_partitions, split_key
from research_pipeline.snapshot import Partition, RequestLedger, quota_used_today, take_snapshots
from research_pipeline.warehouse import queries, raw


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
) -> MaterializeResult:
    """User info of every cohort member on the snapshot day, from the Research API.

    Every member ends with a row: its fields, or the API's error code and message. Only today's
    (UTC) partition can be fetched; a re-run fetches only the users not yet answered.
    """
    partitions = []
    for key in context.partition_keys:
        snapshot_date, cohort_name = split_key(key)
        try:
            cohort = cohort_folder.read(cohort_name)
        except CohortError as exc:
            raise Failure(str(exc), allow_retries=False) from None
        if cohort.problem_count:
            context.log.warning(cohort.report())
        partitions.append(Partition(snapshot_date, cohort_name, cohort.usernames))
    warehouse_session = warehouse.session
    ledger = RequestLedger()
    try:
        client = research_api.client(
            on_request=ledger, quota_used_today=quota_used_today(warehouse_session)
        )
    except ConfigurationError as exc:
        raise Failure(f"research_api is misconfigured: {exc}", allow_retries=False) from None
    with client:
        try:
            reports = take_snapshots(
                warehouse_session,
                client,
                ledger,
                partitions,
                refetch=config.refetch,
                log=context.log.info,
            )
        except (SnapshotDateError, SnapshotIncompleteError) as exc:
            raise Failure(str(exc), allow_retries=False) from None
    for report in reports[:20]:
        context.log.info(f"{report.cohort} {report.snapshot_date}: {report.statuses}")
    with warehouse_session() as conn:
        unfinished = raw.unfinished_count(conn, [(r.snapshot_date, r.cohort) for r in reports])
        if unfinished and context.retry_number < SNAPSHOT_RETRIES:
            context.log.warning(
                f"{unfinished} users ended with transient errors (429/5xx/timeouts); their rows "
                f"are stored and the step is retried in {research_api.retry_delay_seconds:g}s "
                "for them only."
            )
            raise RetryRequested(
                max_retries=SNAPSHOT_RETRIES, seconds_to_wait=research_api.retry_delay_seconds
            )
        check_results = check_user_info(
            conn,
            [(p.snapshot_date, p.cohort, p.members) for p in partitions],
            config.max_error_share,
        )
        first = reports[0]
        table_preview = queries.preview(conn, "user_info", first.snapshot_date, first.cohort)
        metadata = _metadata(reports, table_preview)
        metadata.update(table_metadata(conn, "user_info", metadata["rows"].value))
    return MaterializeResult(metadata=metadata, check_results=check_results)


def _metadata(reports, table_preview) -> dict:
    statuses: dict[str, int] = {}
    for report in reports:
        for status, count in report.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    quota_left = reports[-1].quota_left
    per_partition = "\n".join(
        f"| {r.snapshot_date} | {r.cohort} | {r.members} | {r.statuses.get('ok', 0)} | "
        f"{r.already_stored} | {r.requests_spent} |"
        for r in reports
    )
    metadata = {
        "rows": MetadataValue.int(sum(statuses.values())),
        "ok": MetadataValue.int(statuses.get("ok", 0)),
        "errors": MetadataValue.int(sum(v for k, v in statuses.items() if k != "ok")),
        "errors_by_code": MetadataValue.json({k: v for k, v in statuses.items() if k != "ok"}),
        "requests_spent": MetadataValue.int(sum(r.requests_spent for r in reports)),
        "partitions": MetadataValue.md(
            "| date | cohort | members | ok | already stored | requests |\n"
            "|---|---|---|---|---|---|\n" + per_partition
        ),
        "preview": MetadataValue.md(table_preview.to_markdown(index=False)),
        "statuses": MetadataValue.text(json.dumps(statuses, sort_keys=True)),
    }
    if quota_left is not None:  # no figure at all when no quota is configured: no fake -1
        metadata["quota_left_today"] = MetadataValue.int(quota_left)
    return metadata
