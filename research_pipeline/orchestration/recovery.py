"""Runs that died (power cut, OOM killer, SIGKILL, reboot) must never cost the next day.

Dagster's concurrency pool keeps the slot of a run whose process was killed: the run stays
STARTED and the next run waits for that slot forever (marking the dead run failed does not free
it). Before a snapshot starts (CLI, demo, schedule tick), `recover_dead_runs` finds runs of
this project whose process is gone, marks them failed and frees their slots, and says so. Runs
the daemon launched are watched by Dagster's own run monitoring (dagster.yaml); runs launched
in process (the CLI) carry their process id and host in their tags so that a later start on
the same machine can tell a dead one from a live one.
"""

import os
import socket
import time
from collections.abc import Callable

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from research_pipeline.orchestration.names import WAREHOUSE_POOL
from research_pipeline.processes import process_alive

PID_TAG = "research_pipeline/pid"
HOST_TAG = "research_pipeline/host"
_UNFINISHED = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)


def owner_tags() -> dict[str, str]:
    """Tags of a run launched in this process: who to ask whether it still lives."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _process_gone(run) -> int | None:
    """The pid of an in-process run whose process has ended on this host, else None."""
    pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
    if not pid or host != socket.gethostname() or not pid.isdigit():
        return None
    return None if process_alive(int(pid)) or int(pid) == os.getpid() else int(pid)


def recover_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every unfinished run of ours whose process is gone, and free the pool slots
    held or awaited by such runs and by runs already finished; returns one line per run."""
    said = []
    info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
    holders = {slot.run_id for slot in info.claimed_slots}
    holders |= {step.run_id for step in info.pending_steps}
    # Only the unfinished runs: a lab's months of finished runs are thousands (2,000 took
    # 0.07 s to load in full, every snapshot; 0.003 s filtered).
    for run in instance.get_runs(filters=RunsFilter(statuses=list(_UNFINISHED))):
        pid = _process_gone(run)
        if pid is None:
            continue
        instance.report_run_failed(
            run,
            f"its process (pid {pid}) ended without finishing (killed, or the machine stopped); "
            "marked failed by the next snapshot, which takes over the day",
        )
        holders.add(run.run_id)
        said.append(f"run {run.run_id[:8]} died with its process (pid {pid}): marked failed")
    for run_id in holders:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            said.append(f"freed the warehouse's write turn held by ended run {run_id[:8]}")
    return said


def wait_for_write_turn(
    instance: DagsterInstance,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    every_seconds: float = 60.0,
) -> None:
    """Wait, saying for whom, while a live run holds every slot of the warehouse pool (Dagster's
    own wait is silent and deaf to Ctrl-C; this one is a plain sleep, which Ctrl-C ends)."""
    said_at = None
    while True:
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        limit = info.slot_count if info.slot_count else (info.limit or 0)
        if not limit or len(info.claimed_slots) < limit:
            return
        for line in recover_dead_runs(instance):
            log(line)
        now = time.monotonic()
        if said_at is None or now - said_at >= every_seconds:
            said_at = now
            owners = []
            for run_id in sorted(info.active_run_ids):
                run = instance.get_run_by_id(run_id)
                pid = run.tags.get(PID_TAG, "?") if run else "?"
                owners.append(f"run {run_id[:8]} (process {pid})")
            log(
                f"waiting for {', '.join(owners)} to finish writing the warehouse (one writer at "
                "a time); Ctrl-C stops waiting"
            )
        sleep(1.0)
