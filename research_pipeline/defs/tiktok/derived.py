"""Follower and engagement snapshots and the cohort summary, derived in DuckDB SQL."""

from collections.abc import Callable
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from research_pipeline.charts import chart_markdown, write_cohort_chart
from research_pipeline.defs.resources import ChartDrawing, Warehouse
from research_pipeline.defs.tiktok.common import WAREHOUSE_ASSET, table_metadata
from research_pipeline.defs.tiktok.terms import gone_accounts
from research_pipeline.defs.tiktok.user_info import user_info
from research_pipeline.orchestration.partitions import split_key
from research_pipeline.warehouse import derive, queries
from research_pipeline.warehouse.derivation import derivation_version
from research_pipeline.warehouse.panel_days import (
    derive_panel_days,
    panel_days_version,
    status_counts,
)
from research_pipeline.warehouse.published import publish


def _derive_partitions(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    table: str,
    partition_extra: Callable[..., dict] | None = None,
    charts: ChartDrawing | None = None,
    publish_copy: bool = False,
) -> MaterializeResult:
    """Derive every partition of the step in one SQL statement (set work, not a loop); each
    partition's materialization carries its own numbers. `publish_copy`: the run's last step
    publishes the readers' copy on the same connection (no second open)."""
    partition_keys = context.partition_keys  # each read asks the instance for the cohorts again
    keys = [split_key(key) for key in partition_keys]
    with warehouse.session() as conn:
        written = derive(conn, table, keys)
        context.log.info(f"{table}: {sum(written.values())} rows for {len(keys)} partition(s)")
        drawn = {}
        if charts is not None:
            drawn = _write_charts(conn, keys, warehouse, charts, context.log.warning)
        for key, (day, cohort) in zip(partition_keys, keys, strict=True):
            preview = queries.preview(conn, table, day, cohort)
            metadata = {
                "dagster/row_count": MetadataValue.int(written[(day, cohort)]),
                "rows": MetadataValue.int(written[(day, cohort)]),
                "preview": MetadataValue.md(preview.markdown()),
            }
            if partition_extra is not None:
                metadata.update(partition_extra(conn, (day, cohort), drawn.get(cohort)))
            context.add_asset_metadata(metadata, partition_key=key)
        shared = table_metadata(conn, table, 0)
        del shared["dagster/row_count"]  # per partition, above
        if publish_copy and warehouse.database != ":memory:":
            context.log.info(f"published the readers' copy {publish(warehouse.database, conn)}")
    return MaterializeResult(metadata=shared)


def _write_charts(
    conn, keys, warehouse: Warehouse, charts: ChartDrawing, warn
) -> dict[str, tuple[Path, bytes]]:
    """One chart per cohort of the step, up to its latest summary (a past day derived again
    after forgetting does not turn the chart back to that day). A charts folder that cannot be
    written (a file where the folder should be, no permission, a full disk) is a warning, never
    a failed day: the chart is a view of the data, which is derived all the same."""
    if warehouse.database == ":memory:":
        return {}
    folder = Path(warehouse.database).resolve().parent / "charts"
    latest: dict[str, object] = {}
    for day, cohort in keys:
        latest[cohort] = max(latest.get(cohort, day), day)
    pages = {}
    for cohort, day in latest.items():
        day = max(day, queries.last_summary_date(conn, cohort) or day)
        rows = queries.cohort_trajectories(conn, cohort, day)
        panel = queries.panel_statuses(conn, cohort, day)
        try:
            pages[cohort] = write_cohort_chart(cohort, rows, folder, charts.draw, panel)
        except OSError as exc:
            warn(
                f"no chart drawn: the charts folder {folder} cannot be written "
                f"({exc.strerror or exc}); the data is derived all the same. Move aside what "
                "is in its place, or free space"
            )
            return {}
    return {cohort: page for cohort, page in pages.items() if page is not None}


def _summary_metadata(conn, key, chart: tuple[Path, bytes] | None) -> dict:
    """Numbers the UI plots over time (its Plots tab), and this cohort's chart: shown by the
    UI in one click ("Show Markdown"), and the file it was written to."""
    row = queries.summary_numbers(conn, key)
    metadata = {name: MetadataValue.float(float(value or 0.0)) for name, value in row.items()}
    if chart is not None:
        path, png = chart
        metadata["chart"] = MetadataValue.md(chart_markdown(key[1], png))
        metadata["chart_file"] = MetadataValue.path(str(path))
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
    deps=[user_info, gone_accounts],
    code_version=panel_days_version(),
    **WAREHOUSE_ASSET,
)
def panel_days(context: AssetExecutionContext, warehouse: Warehouse):
    """Every member-day accounted for: one row per (cohort, member, API day) with its status
    (observed, not due, deferred, private, outage, ...: warehouse.panel_days), from the stored
    answers and each plan's recorded decision. Derived again in full for the step's cohorts;
    each partition shows its day's counts by status."""
    keys = [split_key(key) for key in context.partition_keys]
    with warehouse.session() as conn:
        rows = derive_panel_days(conn, sorted({cohort for _, cohort in keys}))
        for key, (day, cohort) in zip(context.partition_keys, keys, strict=True):
            counts = status_counts(conn, day, cohort)
            metadata = {f"members_{status}": MetadataValue.int(n) for status, n in counts.items()}
            metadata["dagster/row_count"] = MetadataValue.int(sum(counts.values()))
            context.add_asset_metadata(metadata, partition_key=key)
        shared = table_metadata(conn, "panel_days", rows)
        del shared["dagster/row_count"]  # per partition, above
    return MaterializeResult(metadata=shared)


@asset(
    deps=[user_info, gone_accounts, follower_snapshots, engagement_snapshots, panel_days],
    code_version=derivation_version("cohort_summary"),
    **WAREHOUSE_ASSET,
)
def cohort_summary(context: AssetExecutionContext, warehouse: Warehouse, charts: ChartDrawing):
    """Per (date, cohort): users, ok, errors by code, median and total followers, total likes,
    median likes per video and median follower growth per day. The last step of a run: the
    copy researchers read is published after it (research_pipeline.warehouse.published)."""
    return _derive_partitions(
        context, warehouse, "cohort_summary", _summary_metadata, charts, publish_copy=True
    )
