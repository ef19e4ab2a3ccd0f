"""Snapshot partitions: one per (UTC day, cohort). Cohorts are dynamic: files come and go."""

from datetime import UTC, date, datetime, timedelta

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from research_pipeline.cohorts import check_cohort_name
from research_pipeline.errors import ConfigurationError, SnapshotDateError
from research_pipeline.settings import PipelineSettings

DATE_DIMENSION = "date"
COHORT_DIMENSION = "cohort"

cohort_partitions = DynamicPartitionsDefinition(name="cohorts")


def start_date(text: str) -> str:
    """RESEARCH_PIPELINE_START_DATE checked: a YYYY-MM-DD day that has come (the API serves
    today only: partitions before it could never be fetched, after today never exist yet)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"RESEARCH_PIPELINE_START_DATE={text!r} is not a day (YYYY-MM-DD)"
        ) from None
    if day > datetime.now(UTC).date():
        raise ConfigurationError(
            f"RESEARCH_PIPELINE_START_DATE={text} is in the future: use the study's first day"
        )
    return day.isoformat()


# Read when the code location loads, with the resources' settings (PipelineSettings).
_SETTINGS = PipelineSettings.from_env()
# end_offset: today and the days ahead (UTC) by this machine's clock; further is refused in one
# line.
DAYS_AHEAD_ALLOWED = _SETTINGS.days_ahead

snapshot_dates = DailyPartitionsDefinition(
    start_date=start_date(_SETTINGS.start_date),
    timezone="UTC",
    end_offset=1 + DAYS_AHEAD_ALLOWED,
)


def check_partition_day(day: date, now: datetime | None = None) -> None:
    """Refuse, in one line, an API day Dagster has no partition for."""
    today = (now or datetime.now(UTC)).date()
    first = snapshot_dates.start.date()
    if day > today + timedelta(days=DAYS_AHEAD_ALLOWED):
        raise SnapshotDateError(
            f"the API's day is {day} but this machine's clock says {today} (UTC): the clocks "
            f"disagree by {(day - today).days} days, and Dagster has partitions up to "
            f"{today + timedelta(days=DAYS_AHEAD_ALLOWED)} only. Set this machine's clock right "
            "(NTP); to rehearse with the emulator, move its clock to a past day "
            "(POST /emulator/clock), as `research-pipeline demo` does, or set "
            "RESEARCH_PIPELINE_DAYS_AHEAD to the days ahead it rehearses"
        )
    if day < first:
        raise SnapshotDateError(
            f"the API's day {day} is before the first partition, {first} "
            "(RESEARCH_PIPELINE_START_DATE)"
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
