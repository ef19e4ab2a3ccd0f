"""Follower and engagement snapshots and the cohort summary, derived in DuckDB SQL."""

from collections.abc import Callable
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from research_pipeline.charts import write_cohort_chart
from research_pipeline.defs.resources import Warehouse
from research_pipeline.defs.tiktok.common import WAREHOUSE_ASSET, table_metadata
from research_pipeline.defs.tiktok.terms import gone_accounts
from research_pipeline.defs.tiktok.user_info import user_info
from research_pipeline.orchestration.partitions import split_key
from research_pipeline.warehouse import derive, queries
from research_pipeline.warehouse.derive import derivation_version


def _derive_partitions(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    table: str,
    extra_metadata: Callable[..., dict] | None = None,
) -> MaterializeResult:
    """Derive every partition of the step in one SQL statement (set work, not a loop)."""
    keys = [split_key(key) for key in context.partition_keys]
    with warehouse.session() as conn:
        written = derive(conn, table, keys)
        context.log.info(f"{table}: {sum(written.values())} rows for {len(keys)} partition(s)")
        snapshot_date, cohort = keys[-1]
        table_preview = queries.preview(conn, table, snapshot_date, cohort)
        metadata = {
            "rows": MetadataValue.int(sum(written.values())),
            "preview": MetadataValue.md(table_preview.to_markdown(index=False)),
            **table_metadata(conn, table, sum(written.values())),
        }
        if extra_metadata is not None:
            metadata.update(extra_metadata(conn, keys, warehouse))
    return MaterializeResult(metadata=metadata)


def _summary_metadata(conn, keys, warehouse: Warehouse) -> dict:
    """Numbers the UI can plot over time, and a chart page per cohort."""
    median_followers, median_growth = queries.summary_medians(conn, keys[-1])
    metadata = {
        "median_followers": MetadataValue.float(median_followers),
        "median_follower_growth_per_day": MetadataValue.float(median_growth),
    }
    if warehouse.database != ":memory:":
        charts = Path(warehouse.database).resolve().parent / "charts"
        pages = [write_cohort_chart(conn, cohort, day, charts) for day, cohort in keys]
        pages = [page for page in pages if page is not None]
        if pages:
            metadata["chart"] = MetadataValue.url(pages[-1].as_uri())
            metadata["charts_folder"] = MetadataValue.path(str(charts))
    return metadata


@asset(
    deps=[user_info, gone_accounts],
    code_version=derivation_version("follower_snapshots"),
    **WAREHOUSE_ASSET,
)
def follower_snapshots(context: AssetExecutionContext, warehouse: Warehouse):
    """Per user: followers and following, the previous snapshot present for that user (not
    necessarily yesterday), deltas and follower growth per day (NULL without a previous one)."""
    return _derive_partitions(context, warehouse, "follower_snapshots")


@asset(
    deps=[user_info, gone_accounts],
    code_version=derivation_version("engagement_snapshots"),
    **WAREHOUSE_ASSET,
)
def engagement_snapshots(context: AssetExecutionContext, warehouse: Warehouse):
    """Per user: likes, videos, likes per video and per follower (NULL where the denominator is
    0), and likes and videos gained since the previous snapshot."""
    return _derive_partitions(context, warehouse, "engagement_snapshots")


@asset(
    deps=[user_info, gone_accounts, follower_snapshots, engagement_snapshots],
    code_version=derivation_version("cohort_summary"),
    **WAREHOUSE_ASSET,
)
def cohort_summary(context: AssetExecutionContext, warehouse: Warehouse):
    """Per (date, cohort): users, ok, errors by code, median and total followers, total likes,
    median likes per video and median follower growth per day."""
    return _derive_partitions(context, warehouse, "cohort_summary", _summary_metadata)
