"""Snapshot partitions: one per (UTC day, cohort). Cohorts are dynamic: files come and go."""

import os
from datetime import date

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from research_pipeline.cohorts import check_cohort_name
from research_pipeline.orchestration.names import DEFAULT_PARTITIONS_START_DATE

DATE_DIMENSION = "date"
COHORT_DIMENSION = "cohort"

cohort_partitions = DynamicPartitionsDefinition(name="cohorts")
snapshot_dates = DailyPartitionsDefinition(
    start_date=os.environ.get("RESEARCH_PIPELINE_START_DATE") or DEFAULT_PARTITIONS_START_DATE,
    timezone="UTC",
    end_offset=1,
)
snapshot_partitions = MultiPartitionsDefinition(
    {DATE_DIMENSION: snapshot_dates, COHORT_DIMENSION: cohort_partitions}
)


def snapshot_key(snapshot_date: date, cohort: str) -> MultiPartitionKey:
    return MultiPartitionKey({DATE_DIMENSION: snapshot_date.isoformat(), COHORT_DIMENSION: cohort})


def split_key(key: str | MultiPartitionKey) -> tuple[date, str]:
    """(date, cohort) of a partition key, validating the cohort before it reaches any SQL."""
    if not isinstance(key, MultiPartitionKey):
        key = snapshot_partitions.get_partition_key_from_str(key)
    dims = key.keys_by_dimension
    return date.fromisoformat(dims[DATE_DIMENSION]), check_cohort_name(dims[COHORT_DIMENSION])
