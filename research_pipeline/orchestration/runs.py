"""Launching snapshot runs from Python (the CLI, the demo, tests) on a real Dagster instance."""

from collections.abc import Callable, Sequence
from datetime import date

from dagster import DagsterInstance, Definitions
from dagster._core.storage.defs_state.base import set_defs_state_storage
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from research_pipeline.cohorts import check_cohort_name
from research_pipeline.orchestration.forgetting import summaries_to_derive_again
from research_pipeline.orchestration.names import SUMMARIES_AFTER_FORGETTING_JOB, WRITER_TAG
from research_pipeline.orchestration.partitions import (
    check_partition_day,
    cohort_partitions,
    snapshot_key,
    split_key,
)
from research_pipeline.orchestration.recovery import (
    owner_tags,
    recover_dead_runs,
    wait_for_write_turn,
)


def register_cohorts(instance: DagsterInstance, names: Sequence[str]) -> list[str]:
    """Add cohort partitions not yet known; returns the names that were new. Names are checked
    first: a partition key is forever, and it reaches SQL as a value."""
    for name in names:
        check_cohort_name(name)
    known = set(instance.get_dynamic_partitions(cohort_partitions.name))
    new = [name for name in names if name not in known]
    if new:
        try:
            instance.add_dynamic_partitions(cohort_partitions.name, new)
        except Exception:
            # Dagster reads, then inserts: a second snapshot started at the same moment may
            # have added some of them in between (a UNIQUE violation). Add what is still missing.
            known = set(instance.get_dynamic_partitions(cohort_partitions.name))
            missing = [name for name in new if name not in known]
            if len(missing) == len(new):
                raise  # nobody else registered them: this failure is ours
            if missing:
                instance.add_dynamic_partitions(cohort_partitions.name, missing)
    return new


def contiguous_blocks(selected: Sequence[str], registered: Sequence[str]) -> list[list[str]]:
    """Split `selected` cohorts into runs of neighbours in partition order: a partition range
    over the cohort dimension spans everything between its ends, so each block is one run."""
    wanted = set(selected)
    blocks: list[list[str]] = [[]]
    for name in registered:
        if name in wanted:
            blocks[-1].append(name)
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if block]


def partition_range_tags(snapshot_date: date, cohorts: Sequence[str]) -> dict[str, str]:
    """Tags of one run over `cohorts` (neighbours in partition order) on `snapshot_date`."""
    tags = dict(WRITER_TAG)
    tags[ASSET_PARTITION_RANGE_START_TAG] = str(snapshot_key(snapshot_date, cohorts[0]))
    tags[ASSET_PARTITION_RANGE_END_TAG] = str(snapshot_key(snapshot_date, cohorts[-1]))
    return tags


def run_snapshot(
    defs: Definitions,
    instance: DagsterInstance,
    snapshot_date: date,
    cohorts: Sequence[str],
    run_config: dict | None = None,
    raise_on_error: bool = False,
    log: Callable[[str], None] = print,
):
    """Materialize the raw and derived partitions of `cohorts` on `snapshot_date`.

    Runs that died with their process are put aside first (their pool slots freed), and a live
    writer is waited for, saying so. Cohorts are registered; neighbouring cohorts go in one run
    (a partition range)."""
    check_partition_day(snapshot_date)
    for line in recover_dead_runs(instance):
        log(line)
    wait_for_write_turn(instance, log)
    register_cohorts(instance, cohorts)
    registered = instance.get_dynamic_partitions(cohort_partitions.name)
    # The definitions resolve against the instance the runs go to, never an instance another
    # caller entered and left (Dagster keeps the current one in a context variable).
    with set_defs_state_storage(instance.defs_state_storage):
        job = defs.resolve_job_def("snapshot_job")
        results = []
        for block in contiguous_blocks(cohorts, registered):
            results.append(
                _execute(job, instance, snapshot_date, block, run_config, raise_on_error)
            )
        derive_summaries_again(defs, instance, _without_ops(run_config), log)
    return results


def derive_summaries_again(
    defs: Definitions,
    instance: DagsterInstance,
    run_config: dict | None = None,
    log: Callable[[str], None] = print,
) -> list:
    """Past cohort summaries that still count accounts forgotten since (orchestration.forgetting)
    derived again by cohort_summary's own runs, one per day and block of neighbouring cohorts.
    A failed one stays named: the next snapshot, or the daemon's sensor, asks again."""
    keys, _ = summaries_to_derive_again(instance)
    if not keys:
        return []
    job = defs.resolve_job_def(SUMMARIES_AFTER_FORGETTING_JOB)
    registered = instance.get_dynamic_partitions(cohort_partitions.name)
    results = []
    for day, cohorts in summary_blocks(keys, registered):
        results.append(_execute(job, instance, day, cohorts, run_config, False))
    failed = sum(not result.success for result in results)
    said = f", {failed} FAILED: asked again next time" if failed else ""
    log(
        f"derived again {len(keys)} past cohort summaries that counted accounts forgotten "
        f"since ({len(results)} run(s){said})"
    )
    return results


def summary_blocks(keys: Sequence[str], registered: Sequence[str]) -> list[tuple[date, list]]:
    """Partition keys as (day, neighbouring cohorts) blocks: one run each."""
    by_day: dict[date, list[str]] = {}
    for key in keys:
        day, cohort = split_key(key)
        by_day.setdefault(day, []).append(cohort)
    return [
        (day, block)
        for day, cohorts in sorted(by_day.items())
        for block in contiguous_blocks(cohorts, registered)
    ]


def _without_ops(run_config: dict | None) -> dict | None:
    """A snapshot's run config for another job: its loggers, not the snapshot step's config."""
    return {k: v for k, v in run_config.items() if k != "ops"} if run_config else None


def _execute(job, instance, day: date, block: Sequence[str], run_config, raise_on_error):
    """One run of `job` over the neighbouring cohorts `block` on `day` (a partition range)."""
    if len(block) == 1:
        target = {"partition_key": str(snapshot_key(day, block[0])), "tags": dict(WRITER_TAG)}
    else:
        target = {"tags": partition_range_tags(day, block)}
    target["tags"].update(owner_tags())
    return job.execute_in_process(
        run_config=run_config, instance=instance, raise_on_error=raise_on_error, **target
    )
