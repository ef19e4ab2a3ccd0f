"""Follower and engagement snapshots and the cohort summary, derived in DuckDB SQL."""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
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
from research_pipeline.charts import write_cohort_chart
from research_pipeline.defs.constants import WAREHOUSE_POOL
from research_pipeline.defs.partitions import snapshot_partitions, split_key
from research_pipeline.defs.resources import open_warehouse

USER_INFO = AssetKey(["tiktok", "user_info"])


def _derive_partitions(
    context: AssetExecutionContext,
    warehouse: DuckDBResource,
    table: str,
    extra_metadata: Callable[..., dict] | None = None,
) -> MaterializeResult:
    """Derive every partition of the step in one SQL statement (set work, not a loop)."""
    keys = [split_key(key) for key in context.partition_keys]
    with open_warehouse(warehouse) as conn:
        written = storage.derive(conn, table, keys)
        context.log.info(f"{table}: {sum(written.values())} rows for {len(keys)} partition(s)")
        snapshot_date, cohort = keys[-1]
        table_preview = storage.preview(conn, table, snapshot_date, cohort)
        metadata = {
            "rows": MetadataValue.int(sum(written.values())),
            "preview": MetadataValue.md(table_preview.to_markdown(index=False)),
        }
        if extra_metadata is not None:
            metadata.update(extra_metadata(conn, keys, warehouse))
    return MaterializeResult(metadata=metadata)


def _summary_metadata(conn, keys, warehouse: DuckDBResource) -> dict:
    """Numbers the UI can plot over time, and a chart page per cohort."""
    frame = pd.DataFrame(keys, columns=["snapshot_date", "cohort"])  # noqa: F841 - read by SQL
    median_followers, median_growth = conn.execute(
        "SELECT median(median_followers), median(median_follower_growth_per_day) "
        "FROM tiktok.cohort_summary SEMI JOIN frame USING (snapshot_date, cohort)"
    ).fetchone()
    metadata = {
        "median_followers": MetadataValue.float(float(median_followers or 0.0)),
        "median_follower_growth_per_day": MetadataValue.float(float(median_growth or 0.0)),
    }
    if warehouse.database != ":memory:":
        charts = Path(warehouse.database).resolve().parent / "charts"
        pages = [write_cohort_chart(conn, cohort, day, charts) for day, cohort in keys]
        pages = [page for page in pages if page is not None]
        if pages:
            metadata["chart"] = MetadataValue.url(pages[-1].as_uri())
            metadata["charts_folder"] = MetadataValue.path(str(charts))
    return metadata


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
    return _derive_partitions(context, warehouse, "follower_snapshots")


@asset(deps=[USER_INFO], **_COMMON)
def engagement_snapshots(context: AssetExecutionContext, warehouse: DuckDBResource):
    """Per user: likes, videos, likes per video and per follower (NULL where the denominator is
    0), and likes and videos gained since the previous snapshot."""
    return _derive_partitions(context, warehouse, "engagement_snapshots")


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
    return _derive_partitions(context, warehouse, "cohort_summary", _summary_metadata)
