"""The code location in the fast tier: the definitions load and validate, and an asset runs
through Dagster's own `materialize` with resources built as the code location builds them
(the emulator on 127.0.0.1, DuckDB in tmp_path, a real test instance)."""

import os

from dagster import Definitions, instance_for_test, materialize

from research_pipeline.definitions import load_project_defs
from research_pipeline.defs.resources import build_resources
from research_pipeline.defs.tiktok.user_info import user_info
from research_pipeline.orchestration.partitions import snapshot_key
from research_pipeline.orchestration.runs import register_cohorts
from research_pipeline_tests.helpers import find_usernames, pipeline_environment


def test_the_definitions_load_and_validate():
    with instance_for_test():
        defs = load_project_defs()
        Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("snapshot_job") is not None
    assert {s.name for s in defs.schedules} and {s.name for s in defs.sensors}


def test_user_info_materializes_one_partition_with_the_code_locations_resources(
    tmp_path, emulator, monkeypatch
):
    cohorts, database = tmp_path / "cohorts", tmp_path / "data" / "research.duckdb"
    cohorts.mkdir()
    users = find_usernames(emulator, "active", 3)
    (cohorts / "c1.txt").write_text("\n".join(users) + "\n")
    env = pipeline_environment(emulator, cohorts, database)
    for secret in ("TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET"):
        monkeypatch.setenv(secret, env[secret])
    resources = build_resources({**os.environ, **env})
    with instance_for_test() as instance:
        register_cohorts(instance, ["c1"])
        result = materialize(
            [user_info],
            resources=resources,
            instance=instance,
            partition_key=str(snapshot_key(emulator.clock.today(), "c1")),
        )
    assert result.success
    [materialization] = result.asset_materializations_for_node("tiktok__user_info")
    assert materialization.metadata["ok"].value == 3
    assert emulator.stats()["user_info_requests"] == 3
