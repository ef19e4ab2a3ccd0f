"""A crash never costs the next day: a snapshot SIGKILLed mid-fetch (a power cut, the OOM
killer) on the project's own dagster.yaml (one writer at a time, a pool of one slot), then the
next snapshot. Real parts: the CLI as child processes, a DAGSTER_HOME in tmp_path, the
emulator on 127.0.0.1."""

import shutil
import signal
import time
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from research_pipeline import warehouse
from research_pipeline.datasets import export_dataset
from research_pipeline.orchestration.names import WAREHOUSE_POOL
from research_pipeline_tests.helpers import (
    assert_figures_match_files,
    cli_process_environment,
    find_usernames,
    ok_requests,
    snapshot_process,
)
from research_pipeline_tests.services import stop

# End to end: the pipeline through Dagster or the CLI (`make check` leaves these out).
pytestmark = pytest.mark.e2e

PROJECT_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def test_a_snapshot_killed_mid_fetch_never_blocks_the_next_one(tmp_path, emulator):
    env = cli_process_environment(tmp_path, emulator)
    shutil.copy(PROJECT_DAGSTER_YAML, tmp_path / "dagster_home" / "dagster.yaml")
    users = find_usernames(emulator, "active", 120)
    (tmp_path / "cohorts" / "panel.txt").write_text("\n".join(users) + "\n")
    emulator.config.latency_seconds = 0.1
    killed = snapshot_process(env, "panel")
    deadline = time.monotonic() + 120
    while emulator.stats()["by_outcome"].get("ok", 0) < 10:  # mid-fetch
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    with DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        [dead] = instance.get_runs()
        assert dead.status == DagsterRunStatus.STARTED  # as a power cut leaves it
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert info.active_run_ids == {dead.run_id}  # its slot: the next run's wait for ever
    ledger = tmp_path / "data" / "research.duckdb"
    recorded_by_the_dead_run = _ledger(ledger)[0]
    emulator.config.latency_seconds = 0.0
    rerun = snapshot_process(env, "panel")
    try:
        output, _ = rerun.communicate(timeout=120)  # before: never returned, deaf to SIGTERM
    finally:
        stop(rerun)
    assert rerun.returncode == 0, output
    assert f"run {dead.run_id[:8]} died with its process" in output
    stats = emulator.stats()
    assert all(ok_requests(stats, u) >= 1 for u in users)
    with duckdb.connect(str(ledger), read_only=True) as conn:
        rows = conn.execute("SELECT count(DISTINCT username) FROM tiktok.user_info").fetchall()
    assert rows == [(120,)]
    # What the rerun says it spent is its own requests; those the dead run sent but never
    # recorded, which the rerun adds to the ledger, are said apart.
    rows, unrecorded = _ledger(ledger)
    assert unrecorded > 0  # requests were in flight at the kill (the ramp has several out)
    spent = rows - recorded_by_the_dead_run - unrecorded
    assert (
        f"API requests spent: {spent} (and {unrecorded} sent by a run that died before "
        "recording them, counted now)"
    ) in output
    # The dataset a paper cites says so too: spent, answered, and lost to the kill.
    with warehouse.connect(str(ledger), read_only=True) as conn:
        manifest = export_dataset(conn, "panel", tmp_path / "dataset")
    assert manifest["requests_unrecorded"] == unrecorded
    assert_figures_match_files(tmp_path / "dataset", manifest, other_cohort=None)
    with DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        statuses = {r.run_id: r.status for r in instance.get_runs()}
        assert statuses[dead.run_id] == DagsterRunStatus.FAILURE
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert info.active_run_ids == set()


def test_a_snapshot_waiting_for_a_live_writer_says_whom_and_ctrl_c_ends_the_wait(tmp_path):
    import subprocess
    import sys

    from dagster import DagsterRun

    from research_pipeline.orchestration.recovery import (
        HOST_TAG,
        PID_TAG,
        recover_dead_runs,
        wait_for_write_turn,
    )

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with DagsterInstance.from_config(str(home)) as instance:
            import socket

            run = instance.add_run(
                DagsterRun(
                    job_name="snapshot_job",
                    run_id="a1b2c3d4-0000-0000-0000-000000000000",
                    status=DagsterRunStatus.STARTED,
                    tags={PID_TAG: str(writer.pid), HOST_TAG: socket.gethostname()},
                )
            )
            instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
            instance.event_log_storage.claim_concurrency_slot(
                WAREHOUSE_POOL, run.run_id, "tiktok__user_info"
            )
            assert recover_dead_runs(instance) == []  # alive: never taken for dead
            said, sleeps = [], []

            def ctrl_c(seconds):
                sleeps.append(seconds)
                if len(sleeps) == 3:
                    raise KeyboardInterrupt  # what Ctrl-C raises in a plain sleep

            with pytest.raises(KeyboardInterrupt):
                wait_for_write_turn(instance, said.append, sleep=ctrl_c)
            assert said == [
                f"waiting for run a1b2c3d4 (process {writer.pid}) to finish writing the "
                "warehouse (one writer at a time); Ctrl-C stops waiting"
            ]
            writer.kill()
            writer.wait()
            # Its process gone: the next start marks it failed and frees the turn at once.
            assert any("died with its process" in line for line in recover_dead_runs(instance))
            wait_for_write_turn(instance, said.append, sleep=ctrl_c)  # returns: the turn is free
    finally:
        writer.kill()


def _ledger(database: Path) -> tuple[int, int]:
    """(requests in the ledger, those of them recorded as 'unrecorded')."""
    with duckdb.connect(str(database), read_only=True) as conn:
        [counts] = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'unrecorded') "
            "FROM tiktok.api_requests"
        ).fetchall()
    return counts
