"""Registers cohort files as partitions, so a new file shows up in the UI without a click; and
derives again the past summaries that counted accounts forgotten since, for runs the daemon
or the UI launched (the CLI's launcher does it itself, right after its run)."""

import json

from dagster import (
    AddDynamicPartitionsRequest,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from research_pipeline.cohorts import COHORT_NAME_PATTERN, COHORT_SUFFIXES
from research_pipeline.defs.resources import CohortFolder
from research_pipeline.defs.tiktok.jobs import summaries_after_forgetting_job
from research_pipeline.orchestration.forgetting import summaries_to_derive_again
from research_pipeline.orchestration.partitions import cohort_partitions, snapshot_key
from research_pipeline.orchestration.runs import partition_range_tags, summary_blocks

# The cursor's entry for the misnamed files last told (no cohort name starts with '_').
MISNAMED = "_misnamed"


def misnamed_cohort_files(files) -> list[str]:
    """Cohort files (.txt, .csv) whose names no cohort can have. The folder's other files are
    the project's own (`.gitkeep`, cohorts.toml, a README): never warned about."""
    return [
        p.name
        for p in files
        if p.suffix.lower() in COHORT_SUFFIXES
        and not p.name.startswith(".")
        and not COHORT_NAME_PATTERN.match(p.stem)
    ]


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def cohort_files_sensor(context: SensorEvaluationContext, cohort_folder: CohortFolder):
    """Adds a `cohorts` partition for each new cohort file and reports edited ones. It launches
    no run: the schedule (or a person) decides when quota is spent."""
    seen = json.loads(context.cursor) if context.cursor else {}
    files = cohort_folder.files()
    current = {name: f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for name, p in files.items()}
    registered = set(context.instance.get_dynamic_partitions(cohort_partitions.name))
    new = sorted(name for name in files if name not in registered)
    changed = sorted(n for n in current if n in seen and seen[n] != current[n])
    for name in changed:
        context.log.info(f"cohort {name} changed ({files[name]}): the next snapshot uses it")
    misnamed = misnamed_cohort_files(cohort_folder.all_files())
    if misnamed and misnamed != seen.get(MISNAMED):  # told once, not at every tick
        context.log.warning(f"ignored files with invalid cohort names: {', '.join(misnamed)}")
    cursor = json.dumps({**current, MISNAMED: misnamed}, sort_keys=True)
    if not new:
        message = f"no new cohorts; changed: {', '.join(changed) or 'none'}"
        return SensorResult(skip_reason=SkipReason(message), cursor=cursor)
    context.log.info(f"registering cohorts: {', '.join(new)}")
    return SensorResult(
        dynamic_partitions_requests=[AddDynamicPartitionsRequest(cohort_partitions.name, new)],
        cursor=cursor,
    )


@sensor(
    job=summaries_after_forgetting_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def summaries_after_forgetting(context: SensorEvaluationContext):
    """One run of cohort_summary per day and block of neighbouring cohorts whose past summaries
    still count accounts forgotten since (orchestration.forgetting). Each is asked once per
    forgetting (its run key); a failed one is asked again by the next CLI snapshot."""
    keys, last = summaries_to_derive_again(context.instance)
    if not keys:
        return SkipReason("no past summary counts an account forgotten since")
    registered = context.instance.get_dynamic_partitions(cohort_partitions.name)
    requests = []
    for day, block in summary_blocks(keys, registered):
        run_key = f"{snapshot_key(day, block[0])}..{block[-1]}@{last}"
        if len(block) == 1:
            requests.append(RunRequest(run_key, partition_key=str(snapshot_key(day, block[0]))))
        else:
            requests.append(RunRequest(run_key, tags=partition_range_tags(day, block)))
    return requests
