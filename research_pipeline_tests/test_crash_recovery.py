"""A crash never costs the next day: a snapshot SIGKILLed mid-fetch (a power cut, the OOM
killer) on the project's own dagster.yaml (one writer at a time, a pool of one slot), then the
next snapshot. Real parts: the CLI as child processes, a DAGSTER_HOME in tmp_path, the
emulator on 127.0.0.1."""

import shutil
import signal
import time
from pathlib import Path

import duckdb
from dagster import DagsterInstance, DagsterRunStatus

from research_pipeline.orchestration.names import WAREHOUSE_POOL
from research_pipeline_tests.helpers import (
    cli_process_environment,
    find_usernames,
    ok_requests,
    snapshot_process,
)
from research_pipeline_tests.services import stop

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
    with duckdb.connect(str(tmp_path / "data" / "research.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT count(DISTINCT username) FROM tiktok.user_info").fetchall()
    assert rows == [(120,)]
    with DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        statuses = {r.run_id: r.status for r in instance.get_runs()}
        assert statuses[dead.run_id] == DagsterRunStatus.FAILURE
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert info.active_run_ids == set()
