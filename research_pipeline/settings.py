"""The pipeline's own settings (where data and cohorts live, Dagster's retry delay), from the
environment, in one object. The API client's settings are `tiktok.settings.ClientSettings`, read
the same way (`TIKTOK_*`); both use the same parsers, so 'off' means one thing everywhere.

Default paths do not depend on the current folder: they are anchored to the project folder (the
checkout holding pyproject.toml, where `make demo` and `make ui` run), or, for an installed
package, to $DAGSTER_HOME, else ~/.research-pipeline.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from research_pipeline.errors import ConfigurationError
from research_pipeline.tiktok.settings import (
    ClientSettings,
    check_declared,
    declared,
    read_declared,
)

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SNAPSHOT_CRON = "15 * * * *"
# The first day a partition exists for: the API serves today only, so earlier days could never
# be fetched and would show as "missing" forever.
DEFAULT_PARTITIONS_START_DATE = "2026-11-01"


def project_dir() -> Path:
    """Where default data and cohorts live (see the module docstring)."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "workspace.yaml").is_file():
        return checkout
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) if home else Path.home() / ".research-pipeline"


@dataclass(frozen=True)
class PipelineSettings:
    """The pipeline's settings, each declared once (`declared`: variable, default, kind, bounds,
    meaning); the paths' defaults follow the project folder, so `from_env` fills them."""

    duckdb_path: str = declared(
        "RESEARCH_PIPELINE_DUCKDB",
        None,
        "the warehouse file; default <project>/data/research.duckdb",
        "path",
    )
    cohorts_dir: Path = declared(
        "RESEARCH_PIPELINE_COHORTS_DIR",
        None,
        "where cohort files live; default <project>/cohorts",
        "path",
    )
    retry_delay_seconds: float = declared(
        "RESEARCH_PIPELINE_RETRY_DELAY_SECONDS",
        60.0,
        "wait before Dagster retries a snapshot whose users ended with transient errors (only "
        "those users are fetched again)",
        "number",
        (0, 86_400, False),
    )
    daily_budget: int | None = declared(
        "RESEARCH_PIPELINE_DAILY_BUDGET",
        None,
        "requests a day this pipeline may spend, below the project's quota (the lab keeps the "
        "rest); unset: the whole quota",
        "limit",
        (1, 10_000_000, False),
    )
    # TikTok's terms: data of accounts no longer available is deleted; a project whose data
    # agreement allows it may keep their counts (never their profile text).
    keep_counts_of_gone_accounts: bool = declared(
        "RESEARCH_PIPELINE_KEEP_COUNTS_OF_GONE_ACCOUNTS",
        False,
        "keep the counts (never the profile text) of accounts no longer available",
        "flag",
    )
    allow_mixed_sources: bool = declared(
        "RESEARCH_PIPELINE_ALLOW_MIXED_SOURCES",
        False,
        "let one warehouse hold emulator and real API answers",
        "flag",
    )
    exports_dir: Path = declared(
        "RESEARCH_PIPELINE_EXPORTS_DIR",
        None,
        "where export-dataset writes by default; default <warehouse folder>/exports",
        "path",
    )
    max_data_age_days: int = declared(
        "RESEARCH_PIPELINE_MAX_DATA_AGE_DAYS",
        15,
        "TikTok's terms: a live member's data is refreshed at least this often",
        "whole",
        (1, 15, False),
    )
    # A slow or hostile API must not hold the day's run, and the warehouse's write turn, for
    # hours; what it has is stored, the rest stays due.
    run_deadline_seconds: float = declared(
        "RESEARCH_PIPELINE_RUN_DEADLINE_SECONDS",
        7200.0,
        "a run asks no one new after this long; its answers are stored, the rest stay due",
        "number",
        (0, 604_800, True),
    )
    journal_dir: Path | None = declared(
        "RESEARCH_PIPELINE_JOURNAL_DIR",
        None,
        "the journal's folder (research_pipeline.journal); default <warehouse>.journal",
        "path",
    )
    # A user that always fails (or an outage) cannot drain the day through repeated runs.
    tries_per_user_per_day: int = declared(
        "RESEARCH_PIPELINE_TRIES_PER_USER_PER_DAY",
        5,
        "requests one user may cost in an API day, across every run and retry",
        "whole",
        (1, 50, False),
    )
    snapshot_cron: str = declared(
        "RESEARCH_PIPELINE_SNAPSHOT_CRON",
        DEFAULT_SNAPSHOT_CRON,
        "when the daily schedule ticks (UTC cron); the first tick does the day's work, the "
        "later ones catch a quota that came back late",
        "text",
    )
    days_ahead: int = declared(
        "RESEARCH_PIPELINE_DAYS_AHEAD",
        1,
        "days past this machine's today (UTC) that have partitions",
        "whole",
        (1, 31, False),
    )
    keep_runs_days: int = declared(
        "RESEARCH_PIPELINE_KEEP_RUNS_DAYS",
        180,
        "Dagster runs older than this are deleted with their logs (housekeeping_job, daily)",
        "whole",
        (7, 3650, False),
    )
    start_date: str = declared(
        "RESEARCH_PIPELINE_START_DATE",
        DEFAULT_PARTITIONS_START_DATE,
        "the first day partitions exist for (YYYY-MM-DD)",
        "text",
    )

    def __post_init__(self) -> None:
        if len(self.snapshot_cron.split()) != 5:
            raise ConfigurationError(
                f"RESEARCH_PIPELINE_SNAPSHOT_CRON={self.snapshot_cron!r}: use five cron fields "
                f"(minute hour day month weekday, UTC), e.g. {DEFAULT_SNAPSHOT_CRON!r}"
            )
        check_declared(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "PipelineSettings":
        """Every declared setting from `env` (default: the process's environment), the paths'
        defaults anchored to the project folder."""
        env = os.environ if env is None else env
        values = read_declared(cls, env)
        root = project_dir()
        values.setdefault("duckdb_path", str(root / "data/research.duckdb"))
        values["duckdb_path"] = str(values["duckdb_path"])
        values.setdefault("cohorts_dir", root / "cohorts")
        values.setdefault("exports_dir", Path(values["duckdb_path"]).parent / "exports")
        return cls(**values)


def daily_budget(quota: int | None, budget: int | None) -> int | None:
    """What this pipeline may spend a day: the project's quota, or the lab's budget below it;
    None when neither limits it. The one place the two meet (planner, client, CLI)."""
    caps = [c for c in (quota, budget) if c is not None]
    return min(caps) if caps else None


def requests_per_day(env: Mapping[str, str] | None = None) -> int | None:
    """`daily_budget` of TIKTOK_DAILY_QUOTA and RESEARCH_PIPELINE_DAILY_BUDGET, each read by
    its declaration."""
    env = os.environ if env is None else env
    quota = ClientSettings.env_values(env)["daily_quota"]
    return daily_budget(quota, PipelineSettings.from_env(env).daily_budget)
