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

from research_pipeline.tiktok.constants import DAILY_QUOTA
from research_pipeline.tiktok.settings import parse_limit, parse_number

PACKAGE_DIR = Path(__file__).resolve().parent


def project_dir() -> Path:
    """Where default data and cohorts live (see the module docstring)."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "workspace.yaml").is_file():
        return checkout
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) if home else Path.home() / ".research-pipeline"


@dataclass(frozen=True)
class PipelineSettings:
    duckdb_path: str
    cohorts_dir: Path
    retry_delay_seconds: float = 60.0
    # Requests a day this pipeline may spend, below the project's quota (a lab keeps the rest
    # for other work); None: the whole quota.
    daily_budget: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "PipelineSettings":
        env = os.environ if env is None else env
        root = project_dir()
        return cls(
            duckdb_path=env.get("RESEARCH_PIPELINE_DUCKDB") or str(root / "data/research.duckdb"),
            cohorts_dir=Path(env.get("RESEARCH_PIPELINE_COHORTS_DIR") or root / "cohorts"),
            retry_delay_seconds=parse_number(
                env.get("RESEARCH_PIPELINE_RETRY_DELAY_SECONDS"),
                60.0,
                "RESEARCH_PIPELINE_RETRY_DELAY_SECONDS",
            ),
            daily_budget=parse_limit(
                env.get("RESEARCH_PIPELINE_DAILY_BUDGET"), None, "RESEARCH_PIPELINE_DAILY_BUDGET"
            ),
        )


def requests_per_day(env: Mapping[str, str] | None = None) -> int | None:
    """What this pipeline may spend a day: the project's quota (TIKTOK_DAILY_QUOTA), or the lab's
    budget below it (RESEARCH_PIPELINE_DAILY_BUDGET); None when neither limits it."""
    env = os.environ if env is None else env
    quota = parse_limit(env.get("TIKTOK_DAILY_QUOTA"), DAILY_QUOTA, "TIKTOK_DAILY_QUOTA")
    caps = [c for c in (quota, PipelineSettings.from_env(env).daily_budget) if c is not None]
    return min(caps) if caps else None
