"""Fixtures: the emulator as a real HTTP server on 127.0.0.1, clients pointed at it, and the
pipeline on a real Dagster instance with its DuckDB file in tmp_path. Helpers: helpers.py."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dagster import instance_for_test

from research_pipeline.emulator import EmulatorConfig, EmulatorServer
from research_pipeline.tiktok import ResearchApiClient
from research_pipeline_tests.helpers import EMULATOR_SECRET, Pipeline, client_settings

# A developer's own .env (real credentials, perhaps) never reaches a test or its children; the
# tests of the env file name their own.
os.environ["RESEARCH_PIPELINE_ENV_FILE"] = "none"


@pytest.fixture
def emulator():
    config = EmulatorConfig(
        client_secret=EMULATOR_SECRET, rate_limit_per_minute=None, daily_quota=None
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def make_client(emulator):
    """Build clients on the emulator; they are closed after the test."""
    made = []

    def make(server: EmulatorServer | None = None, client_options: dict | None = None, **overrides):
        client = ResearchApiClient(
            client_settings(server or emulator, **overrides), **(client_options or {})
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def empty_dagster_home(tmp_path_factory) -> Path:
    """The storage of a test instance that has never run anything, created once per worker:
    creating its SQLite files costs ~0.4 s, copying them a few milliseconds."""
    home = tmp_path_factory.mktemp("empty_dagster_home")
    with instance_for_test(temp_dir=str(home)) as instance:
        instance.get_runs()
    return home


@pytest.fixture
def pipeline(tmp_path, emulator, monkeypatch, empty_dagster_home):
    cohorts = tmp_path / "cohorts"
    cohorts.mkdir()
    database = tmp_path / "warehouse" / "research.duckdb"
    home = tmp_path / "dagster_home"
    shutil.copytree(empty_dagster_home, home)
    with instance_for_test(temp_dir=str(home)) as instance:
        yield Pipeline(instance, emulator, cohorts, database, monkeypatch)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB filesystem of its own (tmpfs, mounted as root) that a test can fill."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# The longest tests, started first: the parallel workers then finish together instead of one
# of them starting a minute-long browser test when the others are done.
_LONG_FIRST = (
    "test_lab_server.py::test_a_semester_alone",
    "test_ui.py",
    "test_panels.py::test_thirty_days",
    "test_scale_out.py",
)


# The end-to-end tier: tests that run the pipeline through Dagster (the `pipeline` fixture) or
# the CLI, seconds each. `make check` leaves them out (the fast tier, about a minute); `make test`
# runs everything. A test of the tier elsewhere says so with @pytest.mark.e2e.
_END_TO_END_FIXTURES = {"pipeline"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _END_TO_END_FIXTURES & set(item.fixturenames) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.e2e)

    def rank(item: pytest.Item) -> int:
        return next((i for i, name in enumerate(_LONG_FIRST) if name in item.nodeid), 99)

    items.sort(key=rank)  # stable: the rest keep their order
