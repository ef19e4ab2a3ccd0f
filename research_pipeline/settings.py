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
from research_pipeline.tiktok.constants import DAILY_QUOTA
from research_pipeline.tiktok.settings import check_range, parse_limit, parse_number

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SNAPSHOT_CRON = "15 * * * *"


def project_dir() -> Path:
    """Where default data and cohorts live (see the module docstring)."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "workspace.yaml").is_file():
        return checkout
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) if home else Path.home() / ".research-pipeline"


def parse_flag(value: str | None, name: str) -> bool:
    """'1', 'true', 'yes' or 'on' (any case) is on; unset, empty or '0'/'false'/'no'/'off' off."""
    text = (value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name}={value!r}: use 1 or 0 (true/false, yes/no, on/off)")


@dataclass(frozen=True)
class PipelineSettings:
    duckdb_path: str
    cohorts_dir: Path
    retry_delay_seconds: float = 60.0
    # Requests a day this pipeline may spend, below the project's quota (a lab keeps the rest
    # for other work); None: the whole quota.
    daily_budget: int | None = None
    # TikTok's terms: data of accounts no longer available is deleted; a project whose data
    # agreement allows it may keep their counts (never their profile text).
    keep_counts_of_gone_accounts: bool = False
    # A warehouse holds answers of one kind of source (the real API, or the emulator).
    allow_mixed_sources: bool = False
    exports_dir: Path = Path("data/exports")
    # TikTok's terms: research data refreshed at least every 15 days.
    max_data_age_days: int = 15
    # A run asks no one new after this long (a slow or hostile API must not hold the day's run,
    # and the warehouse's write turn, for hours); what it has is stored, the rest stays due.
    run_deadline_seconds: float = 7200.0
    # The journal's folder: every answer on local disk the moment it arrives, before the
    # warehouse (research_pipeline.journal); None: `<warehouse>.journal` beside the warehouse.
    journal_dir: Path | None = None
    # Requests one user may cost in an API day, across every run and retry of that day: a user
    # that always fails (or an outage) cannot drain the day through repeated runs.
    tries_per_user_per_day: int = 5
    # When the daily schedule ticks (UTC cron): the first tick does the day's work, the later
    # ones catch a quota that came back late. A test or a rehearsal may tick every minute.
    snapshot_cron: str = DEFAULT_SNAPSHOT_CRON

    def __post_init__(self) -> None:
        if len(self.snapshot_cron.split()) != 5:
            raise ConfigurationError(
                f"RESEARCH_PIPELINE_SNAPSHOT_CRON={self.snapshot_cron!r}: use five cron fields "
                f"(minute hour day month weekday, UTC), e.g. {DEFAULT_SNAPSHOT_CRON!r}"
            )
        for variable, value, low, high, strict in (
            ("RESEARCH_PIPELINE_RETRY_DELAY_SECONDS", self.retry_delay_seconds, 0, 86_400, False),
            ("RESEARCH_PIPELINE_RUN_DEADLINE_SECONDS", self.run_deadline_seconds, 0, 604_800, True),
            ("RESEARCH_PIPELINE_DAILY_BUDGET", self.daily_budget, 1, 10_000_000, False),
            ("RESEARCH_PIPELINE_MAX_DATA_AGE_DAYS", self.max_data_age_days, 1, 15, False),
            ("RESEARCH_PIPELINE_TRIES_PER_USER_PER_DAY", self.tries_per_user_per_day, 1, 50, False),
        ):
            check_range(variable, value, low, high, strict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "PipelineSettings":
        env = os.environ if env is None else env
        root = project_dir()
        duckdb_path = env.get("RESEARCH_PIPELINE_DUCKDB") or str(root / "data/research.duckdb")
        return cls(
            duckdb_path=duckdb_path,
            cohorts_dir=Path(env.get("RESEARCH_PIPELINE_COHORTS_DIR") or root / "cohorts"),
            retry_delay_seconds=parse_number(
                env.get("RESEARCH_PIPELINE_RETRY_DELAY_SECONDS"),
                60.0,
                "RESEARCH_PIPELINE_RETRY_DELAY_SECONDS",
            ),
            run_deadline_seconds=parse_number(
                env.get("RESEARCH_PIPELINE_RUN_DEADLINE_SECONDS"),
                7200.0,
                "RESEARCH_PIPELINE_RUN_DEADLINE_SECONDS",
            ),
            daily_budget=parse_limit(
                env.get("RESEARCH_PIPELINE_DAILY_BUDGET"), None, "RESEARCH_PIPELINE_DAILY_BUDGET"
            ),
            keep_counts_of_gone_accounts=parse_flag(
                env.get("RESEARCH_PIPELINE_KEEP_COUNTS_OF_GONE_ACCOUNTS"),
                "RESEARCH_PIPELINE_KEEP_COUNTS_OF_GONE_ACCOUNTS",
            ),
            allow_mixed_sources=parse_flag(
                env.get("RESEARCH_PIPELINE_ALLOW_MIXED_SOURCES"),
                "RESEARCH_PIPELINE_ALLOW_MIXED_SOURCES",
            ),
            max_data_age_days=int(
                parse_number(
                    env.get("RESEARCH_PIPELINE_MAX_DATA_AGE_DAYS"),
                    15,
                    "RESEARCH_PIPELINE_MAX_DATA_AGE_DAYS",
                )
            ),
            exports_dir=Path(
                env.get("RESEARCH_PIPELINE_EXPORTS_DIR") or Path(duckdb_path).parent / "exports"
            ),
            tries_per_user_per_day=int(
                parse_number(
                    env.get("RESEARCH_PIPELINE_TRIES_PER_USER_PER_DAY"),
                    5,
                    "RESEARCH_PIPELINE_TRIES_PER_USER_PER_DAY",
                )
            ),
            journal_dir=Path(env["RESEARCH_PIPELINE_JOURNAL_DIR"])
            if env.get("RESEARCH_PIPELINE_JOURNAL_DIR")
            else None,
            snapshot_cron=env.get("RESEARCH_PIPELINE_SNAPSHOT_CRON") or DEFAULT_SNAPSHOT_CRON,
        )


def daily_budget(quota: int | None, budget: int | None) -> int | None:
    """What this pipeline may spend a day: the project's quota, or the lab's budget below it;
    None when neither limits it. The one place the two meet (planner, client, CLI)."""
    caps = [c for c in (quota, budget) if c is not None]
    return min(caps) if caps else None


def requests_per_day(env: Mapping[str, str] | None = None) -> int | None:
    """`daily_budget` of TIKTOK_DAILY_QUOTA and RESEARCH_PIPELINE_DAILY_BUDGET."""
    env = os.environ if env is None else env
    quota = parse_limit(env.get("TIKTOK_DAILY_QUOTA"), DAILY_QUOTA, "TIKTOK_DAILY_QUOTA")
    return daily_budget(quota, PipelineSettings.from_env(env).daily_budget)
