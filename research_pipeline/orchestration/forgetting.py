"""Which past cohort summaries still count accounts forgotten since.

`tiktok/gone_accounts` forgets accounts and names, in its materialization's metadata, the past
`cohort_summary` partitions that counted them; it writes no summary itself. Those partitions
are derived again by cohort_summary's own materializations (`summaries_after_forgetting_job`),
launched by whoever sees them first: the snapshot's launcher right after its run (the CLI, the
demo, tests), else the `summaries_after_forgetting` sensor (runs of the daemon and the UI). A
partition cohort_summary has materialized since the forgetting is not asked for again.
"""

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from research_pipeline.orchestration.names import SUMMARIES_TO_DERIVE_AGAIN

GONE_ACCOUNTS = AssetKey(["tiktok", "gone_accounts"])
COHORT_SUMMARY = AssetKey(["tiktok", "cohort_summary"])
# Materializations read in one look: more than a day's runs of every cohort make.
_BATCH = 1000


def summaries_to_derive_again(
    instance: DagsterInstance, after_storage_id: int | None = None
) -> tuple[list[str], int | None]:
    """The cohort_summary partition keys that gone_accounts' materializations after
    `after_storage_id` (None: its latest ones) named and cohort_summary has not materialized
    since; and the last storage id looked at (a sensor's cursor)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=GONE_ACCOUNTS, after_storage_id=after_storage_id),
        limit=_BATCH,
        ascending=after_storage_id is not None,
    ).records
    records = sorted(records, key=lambda record: record.storage_id)
    named: dict[str, int] = {}  # partition key -> the forgetting that named it last
    last = after_storage_id
    for record in records:
        last = record.storage_id
        entry = record.asset_materialization.metadata.get(SUMMARIES_TO_DERIVE_AGAIN)
        for key in entry.value if entry is not None else []:
            named[key] = record.storage_id
    if not named:
        return [], last
    derived_since = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=COHORT_SUMMARY,
            asset_partitions=list(named),
            after_storage_id=min(named.values()),
        ),
        limit=_BATCH,
    ).records
    latest = {}
    for record in derived_since:
        key = record.partition_key
        latest[key] = max(latest.get(key, 0), record.storage_id)
    return sorted(key for key, forgot in named.items() if latest.get(key, 0) < forgot), last
