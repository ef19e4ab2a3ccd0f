"""Scale-out by configuration: the same code on Dagster's Postgres storage (a real server)."""

import os
import shutil
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from research_pipeline.definitions import load_project_defs
from research_pipeline.orchestration.runs import run_snapshot
from research_pipeline_tests.helpers import find_usernames, pipeline_environment
from research_pipeline_tests.services import postgres_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def test_snapshot_and_two_cohort_backfill_on_postgres_storage(tmp_path, emulator, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    cohorts, database = tmp_path / "cohorts", tmp_path / "data" / "w.duckdb"
    cohorts.mkdir()
    users = find_usernames(emulator, "active", 6)
    for n, name in enumerate(["alpha", "beta", "gamma"]):
        (cohorts / f"{name}.txt").write_text("\n".join(users[n * 2 : n * 2 + 2]) + "\n")
    with postgres_server() as pg:
        for name, value in {
            "DAGSTER_PG_HOST": pg["host"],
            "DAGSTER_PG_PORT": str(pg["port"]),
            "DAGSTER_PG_DB": pg["db"],
            "DAGSTER_PG_USERNAME": pg["user"],
            "DAGSTER_PG_PASSWORD": "trust-auth",
        }.items():
            monkeypatch.setenv(name, value)
        for name, value in pipeline_environment(emulator, cohorts, database).items():
            monkeypatch.setenv(name, value)
        today = emulator.clock.today()
        with DagsterInstance.from_config(str(home)) as instance:
            defs = load_project_defs()
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            [snapshot] = run_snapshot(defs, instance, today, ["alpha"])
            [backfill] = run_snapshot(defs, instance, today, ["beta", "gamma"])
            assert snapshot.success and backfill.success
        with (
            psycopg2.connect(
                host=pg["host"], port=pg["port"], user=pg["user"], dbname=pg["db"]
            ) as conn,
            conn.cursor() as cursor,
        ):
            cursor.execute("SELECT run_id, status FROM runs")
            runs = dict(cursor.fetchall())
            cursor.execute(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = "
                "'ASSET_MATERIALIZATION' AND asset_key LIKE %s",
                ['%"tiktok", "user_info"%'],
            )
            [(materializations,)] = cursor.fetchall()
    assert runs == {
        snapshot.run_id: DagsterRunStatus.SUCCESS.value,
        backfill.run_id: DagsterRunStatus.SUCCESS.value,
    }
    assert materializations == 3  # alpha, beta and gamma
    assert os.environ["DAGSTER_PG_PASSWORD"] == "trust-auth"
