"""The snapshot job: raw snapshot plus everything derived from it, for chosen partitions."""

from dagster import AssetSelection, define_asset_job

from research_pipeline.orchestration.names import WRITER_TAG
from research_pipeline.orchestration.partitions import snapshot_partitions

snapshot_job = define_asset_job(
    "snapshot_job",
    selection=AssetSelection.groups("tiktok"),
    partitions_def=snapshot_partitions,
    tags=WRITER_TAG,
    description="Fetch user info for (date, cohort) partitions and derive the snapshots.",
)
