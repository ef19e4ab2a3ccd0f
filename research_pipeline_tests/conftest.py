"""Shared fixtures: the emulator as a real HTTP server on 127.0.0.1, and clients pointed at it."""

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, Definitions, instance_for_test
from dagster_duckdb import DuckDBResource

from research_pipeline.defs.definitions import build_defs
from research_pipeline.defs.resources import CohortFolder, ResearchApiResource
from research_pipeline.defs.runs import run_snapshot
from research_pipeline.emulator import EmulatorConfig, EmulatorServer
from research_pipeline.tiktok import ClientSettings, ResearchApiClient

EMULATOR_KEY = "emulator-key"
EMULATOR_SECRET = "test-secret-Zq9vX2"


class FakeClock:
    """Monotonic time that only moves when code sleeps: tests of waiting never wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


@pytest.fixture
def emulator():
    config = EmulatorConfig(
        client_secret=EMULATOR_SECRET, rate_limit_per_minute=None, daily_quota=None
    )
    with EmulatorServer(config) as server:
        yield server


def client_settings(server: EmulatorServer, **overrides) -> ClientSettings:
    values = dict(
        client_key=EMULATOR_KEY,
        client_secret=EMULATOR_SECRET,
        base_url=server.url,
        rate_limit_per_minute=None,
        daily_quota=None,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
        timeout_seconds=5.0,
    )
    values.update(overrides)
    return ClientSettings(**values)


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


def find_usernames(server: EmulatorServer, kind: str, count: int = 1) -> list[str]:
    """Usernames the emulator's population treats as `kind` (active, private, banned, unknown)."""
    population = server.state.population()
    found = [f"user_{i}" for i in range(10_000) if population.account(f"user_{i}").kind == kind]
    return found[:count]


@dataclass
class Pipeline:
    defs: Definitions
    instance: DagsterInstance
    api: EmulatorServer
    cohorts: Path
    database: Path

    def write_cohort(self, name: str, usernames: list[str]) -> None:
        (self.cohorts / f"{name}.txt").write_text("\n".join(usernames) + "\n")

    def run(self, cohorts: list[str], day: date | None = None, **config):
        run_config = {"ops": {"tiktok__user_info": {"config": config}}} if config else None
        return run_snapshot(
            self.defs, self.instance, day or self.api.clock.today(), cohorts, run_config
        )

    def query(self, sql: str, params=None) -> list[tuple]:
        with duckdb.connect(str(self.database), read_only=True) as conn:
            return conn.execute(sql, params or []).fetchall()


def make_resources(api: EmulatorServer, cohorts: Path, database: Path, **api_options) -> dict:
    options = dict(
        client_key=EMULATOR_KEY,
        client_secret=EMULATOR_SECRET,
        base_url=api.url,
        rate_limit_per_minute=0,
        daily_quota=0,
        timeout_seconds=5.0,
        backoff_base_seconds=0.02,
        retry_delay_seconds=0,
    )
    options.update(api_options)
    return {
        "research_api": ResearchApiResource(**options),
        "cohort_folder": CohortFolder(path=str(cohorts)),
        "warehouse": DuckDBResource(database=str(database)),
    }


@pytest.fixture
def pipeline(tmp_path, emulator):
    cohorts = tmp_path / "cohorts"
    cohorts.mkdir()
    database = tmp_path / "warehouse" / "research.duckdb"
    with instance_for_test() as instance:
        defs = build_defs(make_resources(emulator, cohorts, database))
        yield Pipeline(defs, instance, emulator, cohorts, database)


def cli_environment(tmp_path: Path, server: EmulatorServer) -> dict[str, str]:
    """Environment for the `research-pipeline` command: its own DAGSTER_HOME, cohort folder and
    DuckDB file under tmp_path, the API at the emulator."""
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    (tmp_path / "cohorts").mkdir(exist_ok=True)
    return {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "TIKTOK_API_BASE_URL": server.url,
        "TIKTOK_CLIENT_KEY": EMULATOR_KEY,
        "TIKTOK_CLIENT_SECRET": EMULATOR_SECRET,
        "TIKTOK_RATE_LIMIT_PER_MINUTE": "off",
        "RESEARCH_PIPELINE_COHORTS_DIR": str(tmp_path / "cohorts"),
        "RESEARCH_PIPELINE_DUCKDB": str(tmp_path / "data" / "research.duckdb"),
    }
