"""Resources: the Research API (credentials from the environment) and the cohort folder.

The API resource builds one pooled client per snapshot; it hands the client nothing but settings,
so the asset code never sees HTTP. Secrets are `EnvVar`s: the UI shows their names, not values.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource
from pydantic import Field

from research_pipeline.cohorts import Cohort, cohort_files, find_cohort, read_cohort
from research_pipeline.storage import ensure_schema
from research_pipeline.tiktok import ClientSettings, ResearchApiClient, constants


class ResearchApiResource(ConfigurableResource):
    """TikTok Research API access: client-credentials token, limits and retries."""

    client_key: str
    client_secret: str = Field(description="From TIKTOK_CLIENT_SECRET; never logged.")
    base_url: str = constants.DEFAULT_BASE_URL
    rate_limit_per_minute: int = Field(
        default=constants.RATE_LIMIT_PER_MINUTE, description="0 turns the client-side limiter off"
    )
    daily_quota: int = Field(
        default=constants.DAILY_QUOTA,
        description="requests per UTC day for the project; 0: unlimited",
    )
    concurrency: int = 8
    max_attempts: int = 5
    timeout_seconds: float = 30.0
    backoff_base_seconds: float = Field(
        default=1.0, description="First retry waits about this long; each further one doubles."
    )
    retry_delay_seconds: float = Field(
        default=60.0,
        description="Wait before Dagster retries a snapshot whose users ended with transient "
        "errors (only those users are fetched again).",
    )

    def settings(self) -> ClientSettings:
        return ClientSettings(
            client_key=self.client_key,
            client_secret=self.client_secret,
            base_url=self.base_url,
            rate_limit_per_minute=self.rate_limit_per_minute or None,
            daily_quota=self.daily_quota or None,
            concurrency=self.concurrency,
            max_attempts=self.max_attempts,
            timeout_seconds=self.timeout_seconds,
            backoff_base_seconds=self.backoff_base_seconds,
        )

    def client(self, **options) -> ResearchApiClient:
        return ResearchApiClient(self.settings(), **options)


class CohortFolder(ConfigurableResource):
    """Where the cohort files live (RESEARCH_PIPELINE_COHORTS_DIR, default `cohorts/`)."""

    path: str

    def files(self) -> dict[str, Path]:
        return cohort_files(Path(self.path))

    def all_files(self) -> list[Path]:
        """Every file in the folder, including those with names no cohort can have."""
        folder = Path(self.path)
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def read(self, name: str) -> Cohort:
        return read_cohort(find_cohort(Path(self.path), name), name)


@contextmanager
def open_warehouse(warehouse: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the DuckDB file with the schema in place (the folder is made if new).

    DuckDBResource retries while another process holds the file's write lock. Its context
    manager does not close the connection when the body raises, so we do: a failed step must not
    keep the file locked."""
    if warehouse.database != ":memory:":
        Path(warehouse.database).parent.mkdir(parents=True, exist_ok=True)
    with warehouse.get_connection() as conn:
        try:
            ensure_schema(conn, warehouse.database)
            yield conn
        finally:
            conn.close()
