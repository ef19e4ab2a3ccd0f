"""Resources: the Research API, the cohort folder, the warehouse and the research terms,
configured from the environment (README, "Configuration").

Every setting is a resource field, so the UI's launchpad shows it and a run can override it. The
environment is read in one place, `build_resources`, when the code location loads (in a launched
run: when its run worker loads it). The API resource hands the client nothing but settings, so
the asset code never sees HTTP; its credentials are `EnvVar`s (the UI shows their names, not
values).
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, Definitions, EnvVar, InitResourceContext, definitions
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from research_pipeline import warehouse
from research_pipeline.cohorts import cohort_files
from research_pipeline.coordination import Coordination
from research_pipeline.drawing_process import DrawingProcess
from research_pipeline.errors import WarehouseError
from research_pipeline.notify import (
    SMTP_PASSWORD_VARIABLE,
    WEBHOOK_VARIABLE,
    AlertChannels,
    alert_channels_from_env,
)
from research_pipeline.settings import PipelineSettings, daily_budget
from research_pipeline.tiktok import ClientSettings
from research_pipeline.tiktok.settings import declarations
from research_pipeline.warehouse.connection import published_path


def _declared(settings_class, name: str):
    """The resource field of the setting `name` of `settings_class`: its declared default, and
    its variable and meaning as the launchpad's description (tiktok.settings.declared)."""
    setting = declarations(settings_class)[name]
    default = setting.default
    if isinstance(default, tuple):  # Dagster's config has lists, not tuples
        default = list(default)
    if isinstance(default, Path):
        default = str(default)
    meaning = setting.metadata["meaning"]
    return Field(default=default, description=f"{setting.metadata['variable']}: {meaning}.")


def _client_field(name: str):
    return _declared(ClientSettings, name)


def _pipeline_field(name: str):
    return _declared(PipelineSettings, name)


def _alert_field(name: str):
    return _declared(AlertChannels, name)


class ResearchApiResource(ConfigurableResource):
    """TikTok Research API access: client-credentials token, limits and retries. Every client
    setting is a field (the launchpad shows and overrides them); the code location fills them
    from `TIKTOK_*` and `RESEARCH_PIPELINE_*` when it loads (build_resources), and `settings()`
    turns them into the client's settings, checked, with no further reading of the
    environment."""

    client_key: str = Field(description="From TIKTOK_CLIENT_KEY.")
    client_secret: str = Field(description="From TIKTOK_CLIENT_SECRET; never logged.")
    base_url: str = _client_field("base_url")
    rate_limit_per_minute: int | None = _client_field("rate_limit_per_minute")
    daily_quota: int | None = _client_field("daily_quota")
    concurrency: int = _client_field("concurrency")
    timeout_seconds: float = _client_field("timeout_seconds")
    request_deadline_seconds: float = _client_field("request_deadline_seconds")
    max_attempts: int = _client_field("max_attempts")
    backoff_base_seconds: float = _client_field("backoff_base_seconds")
    backoff_max_seconds: float = _client_field("backoff_max_seconds")
    rate_limit_window_seconds: float = _client_field("rate_limit_window_seconds")
    reset_wait_seconds: float = _client_field("reset_wait_seconds")
    reset_backoff_seconds: float = _client_field("reset_backoff_seconds")
    fields: list[str] = _client_field("fields")
    allow_any_host: bool = _client_field("allow_any_host")
    daily_budget: int | None = _pipeline_field("daily_budget")
    retry_delay_seconds: float = _pipeline_field("retry_delay_seconds")
    run_deadline_seconds: float = _pipeline_field("run_deadline_seconds")
    tries_per_user_per_day: int = _pipeline_field("tries_per_user_per_day")

    def api_today(self) -> date:
        """Today at the API (its Date header): the day a snapshot is for, whatever this
        machine's clock says. Costs one token request, no quota."""
        from research_pipeline.tiktok import ResearchApiClient

        with ResearchApiClient(self.settings()) as client:
            return client.api_now().date()

    def settings(self) -> ClientSettings:
        """The client's settings from these fields, checked (one line for what makes no sense);
        the daily budget, when set, lowers the quota the client stops at."""
        values = {name: getattr(self, name) for name in CLIENT_FIELDS}
        values["fields"] = tuple(values["fields"])
        values["daily_quota"] = daily_budget(values["daily_quota"], self.daily_budget)
        return ClientSettings(**values)


# The client settings the resource carries as fields (all of ClientSettings).
CLIENT_FIELDS = tuple(ClientSettings.__dataclass_fields__)


class CohortFolder(ConfigurableResource):
    """Where the cohort files live (RESEARCH_PIPELINE_COHORTS_DIR)."""

    path: str

    def files(self) -> dict[str, Path]:
        return cohort_files(Path(self.path))

    def all_files(self) -> list[Path]:
        """Every file in the folder, including those with names no cohort can have."""
        folder = Path(self.path)
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


class Warehouse(DuckDBResource):
    """The DuckDB file (RESEARCH_PIPELINE_DUCKDB) and the folders beside it. `get_connection()`
    (and `session()`, the same with read-only as an option) is the warehouse package's one way
    to connect: lock wait, schema upgrade, always closed."""

    exports_dir: str = Field(
        default="", description="The project's own exports folder (export-dataset writes there)."
    )
    journal_dir: str = Field(default="", description=_pipeline_field("journal_dir").description)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.session() as conn:
            yield conn

    def coordination(self) -> Coordination | None:
        """The side files every process using this warehouse shares (coordination.py): the
        day's quota reservations and claims, and the journal; None for an in-memory one."""
        return Coordination.beside(self.database, self.journal_dir or None)

    @contextmanager
    def published_view(
        self, wait_seconds: float = warehouse.LOCK_WAIT_SECONDS
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """The readers' copy, read only, when it holds all the warehouse does (published after
        the file's last change): what a day can be planned from while a process holds the
        warehouse itself open for writing. Else WarehouseError."""
        store, copy = Path(self.database), published_path(self.database)
        if not copy.is_file() or copy.stat().st_mtime < store.stat().st_mtime:
            raise WarehouseError(f"{copy} is older than {store}: not a view of it")
        with warehouse.connect(copy, True, wait_seconds) as conn:
            yield conn

    @contextmanager
    def session(
        self, read_only: bool = False, wait_seconds: float = warehouse.LOCK_WAIT_SECONDS
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.database, read_only, wait_seconds) as conn:
            yield conn


class ResearchTerms(ConfigurableResource):
    """What TikTok's terms and the lab's data agreement ask of the data (README, "Research
    terms"): how old live data may get, whether counts of accounts no longer available may be
    kept, whether one warehouse may mix the emulator's answers with the real API's."""

    max_data_age_days: int = _pipeline_field("max_data_age_days")
    keep_counts_of_gone_accounts: bool = _pipeline_field("keep_counts_of_gone_accounts")
    allow_mixed_sources: bool = _pipeline_field("allow_mixed_sources")


class ChartDrawing(ConfigurableResource):
    """Draws the cohort charts. Its helper process (drawing_process.py) starts with the run,
    when Dagster initialises the run's resources, and loads matplotlib while the run fetches:
    the summary step then pays for the drawing, not for the import."""

    _process: DrawingProcess | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._process = DrawingProcess().start()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._process is not None:
            self._process.close()

    def draw(self, cohort: str, rows: list[tuple], panel=()) -> bytes:
        if self._process is None:  # used outside a run: no helper
            self._process = DrawingProcess()
        return self._process.draw(cohort, rows, panel)


class AlertsResource(ConfigurableResource):
    """Where the alerts of a failed day go (defs/tiktok/alerts.py): a Slack-compatible webhook
    and/or email. Every field empty: no alert is sent (the sensors say so in their ticks)."""

    webhook_url: str = _alert_field("webhook_url")
    email_to: str = _alert_field("email_to")
    email_from: str = _alert_field("email_from")
    smtp_host: str = _alert_field("smtp_host")
    smtp_port: int = _alert_field("smtp_port")
    smtp_user: str = _alert_field("smtp_user")
    smtp_password: str = _alert_field("smtp_password")
    smtp_starttls: bool = _alert_field("smtp_starttls")
    ui_url: str = _alert_field("ui_url")

    def channels(self) -> AlertChannels:
        return AlertChannels(**self.model_dump())


def _alerts_resource(env: Mapping[str, str]) -> AlertsResource:
    """The alert channels of `env` (notify.alert_channels_from_env), the secrets kept as the
    names of their variables where the process's environment holds them."""
    channels = asdict(alert_channels_from_env(env))
    channels.update(
        webhook_url=_secret(env, WEBHOOK_VARIABLE),  # its path is its token
        smtp_password=_secret(env, SMTP_PASSWORD_VARIABLE),
    )
    del channels["timeout_seconds"]
    return AlertsResource(**channels)


def _secret(env: Mapping[str, str], variable: str) -> EnvVar | str:
    """The variable by name when the process's environment holds this value (the UI shows the
    name, never the value, and no run record holds it); else the value of the mapping given (a
    notebook's own settings). Not set: an empty value,
    so a run fails in one line that says where credentials go (ClientSettings) instead of a
    Dagster config error and its stack trace."""
    value = env.get(variable)
    if not value:
        return ""
    return EnvVar(variable) if os.environ.get(variable) == value else value


def _client_fields(values: dict) -> dict:
    return {**values, "fields": list(values["fields"])}


def build_resources(env: Mapping[str, str] | None = None) -> dict:
    """Every resource, its fields read from `env` (default: the process's environment): the one
    reading of the settings, when the code location loads. A test passes its own mapping and
    hands the result to `load_project_defs(resources=...)`, the environment untouched."""
    env = os.environ if env is None else env
    settings = PipelineSettings.from_env(env)
    return {
        "research_api": ResearchApiResource(
            client_key=_secret(env, "TIKTOK_CLIENT_KEY"),
            client_secret=_secret(env, "TIKTOK_CLIENT_SECRET"),
            **_client_fields(ClientSettings.env_values(env)),
            retry_delay_seconds=settings.retry_delay_seconds,
            daily_budget=settings.daily_budget,
            run_deadline_seconds=settings.run_deadline_seconds,
            tries_per_user_per_day=settings.tries_per_user_per_day,
        ),
        "cohort_folder": CohortFolder(path=str(settings.cohorts_dir)),
        "charts": ChartDrawing(),
        "alerts": _alerts_resource(env),
        "warehouse": Warehouse(
            database=settings.duckdb_path,
            exports_dir=str(settings.exports_dir),
            journal_dir=str(settings.journal_dir or ""),
        ),
        "research_terms": ResearchTerms(
            max_data_age_days=settings.max_data_age_days,
            keep_counts_of_gone_accounts=settings.keep_counts_of_gone_accounts,
            allow_mixed_sources=settings.allow_mixed_sources,
        ),
    }


@definitions
def resources() -> Definitions:
    return Definitions(resources=build_resources())
