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
from research_pipeline.orchestration.names import WRITER_TAG
from research_pipeline.orchestration.partitions import (
    check_partition_day,
    cohort_partitions,
    snapshot_key,
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
        return _execute(defs, instance, snapshot_date, cohorts, registered, run_config,
                        raise_on_error)  # fmt: skip


def _execute(defs, instance, snapshot_date, cohorts, registered, run_config, raise_on_error):
    job = defs.resolve_job_def("snapshot_job")
    results = []
    for block in contiguous_blocks(cohorts, registered):
        if len(block) == 1:
            results.append(
                job.execute_in_process(
                    run_config=run_config,
                    instance=instance,
                    partition_key=str(snapshot_key(snapshot_date, block[0])),
                    tags={**WRITER_TAG, **owner_tags()},
                    raise_on_error=raise_on_error,
                )
            )
            continue
        results.append(
            job.execute_in_process(
                run_config=run_config,
                instance=instance,
                tags={**partition_range_tags(snapshot_date, block), **owner_tags()},
                raise_on_error=raise_on_error,
            )
        )
    return results
