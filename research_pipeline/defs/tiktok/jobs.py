"""The snapshot job: raw snapshot plus everything derived from it, for chosen partitions."""

from dagster import AssetSelection, define_asset_job

from research_pipeline.orchestration.names import SUMMARIES_AFTER_FORGETTING_JOB, WRITER_TAG
from research_pipeline.orchestration.partitions import snapshot_partitions

snapshot_job = define_asset_job(
    "snapshot_job",
    selection=AssetSelection.groups("tiktok"),
    partitions_def=snapshot_partitions,
    tags=WRITER_TAG,
    description="Fetch user info for (date, cohort) partitions and derive the snapshots.",
)

# Past summaries that counted accounts forgotten since (gone_accounts names them): derived again
# by cohort_summary itself, so each change is one of its own materializations.
summaries_after_forgetting_job = define_asset_job(
    SUMMARIES_AFTER_FORGETTING_JOB,
    selection=AssetSelection.assets(["tiktok", "cohort_summary"]),
    partitions_def=snapshot_partitions,
    tags=WRITER_TAG,
    description="Derive again the cohort summaries that counted accounts forgotten since.",
)
