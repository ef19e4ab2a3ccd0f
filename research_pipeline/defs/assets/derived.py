"""Follower and engagement snapshots and the cohort summary, derived in DuckDB SQL."""

from collections.abc import Callable

from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster_duckdb import DuckDBResource

from research_pipeline import storage
from research_pipeline.defs.constants import WAREHOUSE_POOL
from research_pipeline.defs.partitions import snapshot_partitions, split_key
from research_pipeline.defs.resources import open_warehouse

USER_INFO = AssetKey(["tiktok", "user_info"])


def _derive_each_partition(
    context: AssetExecutionContext,
    warehouse: DuckDBResource,
    table: str,
    derive: Callable[..., int],
) -> MaterializeResult:
    rows = 0
    with open_warehouse(warehouse) as conn:
        for key in context.partition_keys:
            snapshot_date, cohort = split_key(key)
            count = derive(conn, snapshot_date, cohort)
            context.log.info(f"{table} {cohort} {snapshot_date}: {count} rows")
            rows += count
        table_preview = storage.preview(conn, table, snapshot_date, cohort)
    return MaterializeResult(
        metadata={
            "rows": MetadataValue.int(rows),
            "preview": MetadataValue.md(table_preview.to_markdown(index=False)),
        }
    )


_COMMON = dict(
    key_prefix="tiktok",
    group_name="tiktok",
    partitions_def=snapshot_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)


@asset(deps=[USER_INFO], **_COMMON)
def follower_snapshots(context: AssetExecutionContext, warehouse: DuckDBResource):
    """Per user: followers and following, the previous snapshot present for that user (not
    necessarily yesterday), deltas and follower growth per day (NULL without a previous one)."""
    return _derive_each_partition(
        context, warehouse, "follower_snapshots", storage.derive_follower_snapshots
    )


@asset(deps=[USER_INFO], **_COMMON)
def engagement_snapshots(context: AssetExecutionContext, warehouse: DuckDBResource):
    """Per user: likes, videos, likes per video and per follower (NULL where the denominator is
    0), and likes and videos gained since the previous snapshot."""
    return _derive_each_partition(
        context, warehouse, "engagement_snapshots", storage.derive_engagement_snapshots
    )


@asset(
    deps=[
        USER_INFO,
        AssetKey(["tiktok", "follower_snapshots"]),
        AssetKey(["tiktok", "engagement_snapshots"]),
    ],
    **_COMMON,
)
def cohort_summary(context: AssetExecutionContext, warehouse: DuckDBResource):
    """Per (date, cohort): users, ok, errors by code, median and total followers, total likes,
    median likes per video and median follower growth per day."""
    return _derive_each_partition(
        context, warehouse, "cohort_summary", storage.derive_cohort_summary
    )
