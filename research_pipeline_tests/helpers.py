"""What the tests share besides fixtures: credentials of the test emulator, a fake clock, the
environment that points the pipeline at the emulator and tmp_path, and a handle on a pipeline."""

import functools
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, Definitions

from research_pipeline.definitions import load_project_defs
from research_pipeline.defs.resources import build_resources
from research_pipeline.emulator import EmulatorServer
from research_pipeline.emulator.population import Population
from research_pipeline.orchestration.runs import run_snapshot
from research_pipeline.settings import PipelineSettings
from research_pipeline.tiktok import ClientSettings
from research_pipeline.tiktok.constants import NOT_SPENT_STATUSES
from research_pipeline.tiktok.settings import declarations
from research_pipeline_tests.services import spawn

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


# What every test client shares. A 429 persisting half a second is the quota here (61 s against
# the real API), and no waiting for a late reset: tests that need either set them.
TEST_CLIENT_SETTINGS = dict(
    client_key=EMULATOR_KEY,
    client_secret=EMULATOR_SECRET,
    timeout_seconds=5.0,
    rate_limit_window_seconds=0.5,
    reset_wait_seconds=0,
)


def client_settings(server: EmulatorServer, **overrides) -> ClientSettings:
    values = dict(
        TEST_CLIENT_SETTINGS,
        base_url=server.url,
        rate_limit_per_minute=None,
        daily_quota=None,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
    )
    values.update(overrides)
    return ClientSettings(**values)


def find_usernames(server: EmulatorServer, kind: str, count: int = 1) -> list[str]:
    """The first `count` usernames user_0, user_1, ... the emulator's population treats as
    `kind` (active, private, banned, unknown)."""
    return list(_usernames_of_kind(server.state.population(), kind, count))


@functools.cache
def _usernames_of_kind(population: Population, kind: str, count: int) -> tuple[str, ...]:
    """Stops at the `count`-th match: scanning all 10,000 names cost 0.4 s a call, ~70 calls a
    suite. Cached: a population is a value (its seed and shares)."""
    names = (f"user_{i}" for i in range(10_000))
    found = tuple(islice((u for u in names if population.account(u).kind == kind), count))
    assert len(found) == count, f"only {len(found)} {kind} users among user_0..user_9999"
    return found


# Setting name -> its variable, from the declarations (README, "Configuration").
_VARIABLES = {
    name: f.metadata["variable"]
    for cls in (ClientSettings, PipelineSettings)
    for name, f in declarations(cls).items()
}


def pipeline_environment(
    api: EmulatorServer, cohorts: Path, database: Path, **options
) -> dict[str, str]:
    """The environment that points the pipeline at the emulator and at files under tmp_path.
    `options` are settings by name (daily_quota=10, max_attempts=1, ...): the same variables a
    researcher sets (README, "Configuration")."""
    values = dict(
        TEST_CLIENT_SETTINGS,
        base_url=api.url,
        rate_limit_per_minute="off",
        daily_quota="off",
        backoff_base_seconds=0.02,
        retry_delay_seconds=0,
    )
    values.update(options)
    env = {
        "RESEARCH_PIPELINE_COHORTS_DIR": str(cohorts),
        "RESEARCH_PIPELINE_DUCKDB": str(database),
        "RESEARCH_PIPELINE_ENV_FILE": "none",  # a developer's own .env never reaches a test
    }
    for name, value in values.items():
        variable = _VARIABLES[name]
        env[variable] = "off" if value is None else str(value)
    return env


def cli_environment(tmp_path: Path, server: EmulatorServer) -> dict[str, str]:
    """Environment for the `research-pipeline` command: its own DAGSTER_HOME, cohort folder and
    DuckDB file under tmp_path, the API at the emulator."""
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    (tmp_path / "cohorts").mkdir(exist_ok=True)
    env = pipeline_environment(
        server, tmp_path / "cohorts", tmp_path / "data" / "research.duckdb", daily_quota=1000
    )
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    return env


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill `folder`'s filesystem, then give `leave_bytes` back."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave_bytes))
    return filler


def step_attempts(result, step: str = "tiktok__user_info") -> int:
    """How often a run started a step (its first attempt and each retry)."""
    starts = {"STEP_START", "STEP_RESTARTED"}
    return sum(1 for e in result.all_events if e.step_key == step and e.event_type_value in starts)


def ok_requests(stats: dict, username: str) -> int:
    """Ok answers the emulator gave `username` (its stats)."""
    return stats["by_username"].get(username, {}).get("ok", 0)


def cli_process_environment(tmp_path: Path, server: EmulatorServer) -> dict[str, str]:
    """The whole environment of a `research-pipeline` child process (see cli_environment)."""
    return {**os.environ, **cli_environment(tmp_path, server)}


def snapshot_process(env: dict, *cohorts: str) -> subprocess.Popen:
    """`research-pipeline snapshot` as a child process (its own group, default signals)."""
    args = [sys.executable, "-m", "research_pipeline.cli", "snapshot"]
    for name in cohorts:
        args += ["--cohort", name]
    return spawn(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@dataclass
class Pipeline:
    """The project's definitions on a test instance, their resources built from the test's own
    settings and passed in (the process's environment untouched; `use_environment` for the
    tests of that path)."""

    instance: DagsterInstance
    api: EmulatorServer
    cohorts: Path
    database: Path
    monkeypatch: pytest.MonkeyPatch
    defs: Definitions = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.configure()

    def configure(self, **options) -> None:
        """Settings by name (see `pipeline_environment`), as the resources of the definitions:
        built from them over the process's environment, as the code location would."""
        self.env = pipeline_environment(self.api, self.cohorts, self.database, **options)
        for secret in ("TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET"):  # EnvVars, by design: in
            self.monkeypatch.setenv(secret, self.env[secret])  # no definition or run record
        self.defs = load_project_defs(resources=build_resources({**os.environ, **self.env}))

    def use_environment(self) -> None:
        """Put the settings in the process's environment, where a server's code location reads
        them (tests of that path: credentials taken away, alerts set by variables)."""
        for name, value in self.env.items():
            self.monkeypatch.setenv(name, value)

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


def assert_figures_match_files(out, manifest, other_cohort: str | None) -> None:
    """Every figure of manifest.json and METHODS.md equals pandas on the exported files;
    `other_cohort`: one that paid for some of this cohort's answers (a shared member)."""
    rows = pd.read_parquet(out / "user_info.parquet")
    ledger = pd.read_parquet(out / "api_requests.parquet")
    summary = pd.read_parquet(out / "cohort_summary.parquet")
    spent = ledger[~ledger.status.isin(list(NOT_SPENT_STATUSES))]
    unrecorded = spent[spent.status == "unrecorded"]  # a killed run's: sent, answer never stored
    answered = spent[spent.status != "unrecorded"]
    # Provenance: every answer of the cohort has the request that paid for it, even when that
    # request was made for journalists (a shared user is asked once a day, credited to the
    # first cohort asking).
    paid = set(zip(ledger.snapshot_date, ledger.username, strict=True))
    fetched = rows[rows.is_final]
    assert set(zip(fetched.snapshot_date, fetched.username, strict=True)) <= paid
    if other_cohort is not None:
        assert (ledger.cohort == other_cohort).any()  # some were paid for by the other cohort
    assert manifest["requests_spent"] == len(spent)
    assert manifest["requests_unrecorded"] == len(unrecorded)
    assert manifest["answers_ok"] == int((rows.status == "ok").sum())
    assert manifest["accounts_ever"] == rows.username.nunique()
    assert str(manifest["first_day"]) == str(rows.snapshot_date.min())
    shares = (summary.fresh / summary.members).tolist()
    assert manifest["mean_fresh_share"] == pytest.approx(sum(shares) / len(shares))
    methods = (out / "METHODS.md").read_text()
    assert f"In all, {len(answered):,} API requests were answered" in methods
    assert f"({int((rows.status == 'ok').sum()):,} with data)" in methods
    lost = f"{len(unrecorded):,} more were sent by a run killed before it stored their answers"
    assert (lost in methods) == (len(unrecorded) > 0)
    assert f"We followed {rows.username.nunique():,} TikTok accounts" in methods
