"""The Dagster instance that runs launched from Python (CLI, demo) are recorded in."""

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance

from research_pipeline.errors import ConfigurationError, DagsterStorageError
from research_pipeline.settings import project_dir

log = logging.getLogger(__name__)


@contextmanager
def dagster_instance() -> Iterator[DagsterInstance]:
    """The instance in $DAGSTER_HOME, so runs from the CLI show in `dagster dev`. Unset, it is
    the project folder when it holds dagster.yaml (a checkout), else ~/.research-pipeline."""
    home = os.environ.get("DAGSTER_HOME")
    if home and not Path(home).is_absolute():
        raise ConfigurationError(
            f"DAGSTER_HOME={home!r} is a relative path; Dagster needs an absolute one "
            f"(e.g. {Path(home).resolve()})"
        )
    if not home:
        home = project_dir()
        if not (home / "dagster.yaml").exists():
            home = Path.home() / ".research-pipeline"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home.resolve())
    try:
        instance = DagsterInstance.get()
        instance.get_runs_count()  # a corrupt or locked run storage fails here, not mid-run
    except Exception as exc:
        if not _is_storage_error(exc):
            raise
        error = _storage_error(Path(os.environ["DAGSTER_HOME"]), exc)
        _tell(error)
        raise error from None
    with instance:
        yield instance


def _is_storage_error(exc: BaseException) -> bool:
    """SQLAlchemy's or the database driver's own errors (a damaged or locked runs.db)."""
    import sqlalchemy.exc

    return isinstance(exc, sqlalchemy.exc.SQLAlchemyError | sqlite3.Error)


def _storage_error(home: Path, exc: BaseException) -> DagsterStorageError:
    cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    runs = home / "history" / "runs.db"
    where = f"{runs}" if runs.exists() else f"the run storage configured in {home / 'dagster.yaml'}"
    return DagsterStorageError(
        f"Dagster's run history ({where}) cannot be read: {cause}. Nothing was sent to the API. "
        f"If a process holds it (a stuck `dagster` service), stop that process; if the file is "
        f"damaged, move it aside (mv {runs} {runs}.broken) and run again: Dagster starts a new "
        "history, and the warehouse and the journal are untouched"
    )


def _tell(error: DagsterStorageError) -> None:
    """The configured alert channels, which need no Dagster: a service manager restarting a
    broken command would otherwise fail every day in silence."""
    from research_pipeline.notify import Alert, NotificationError, alert_channels_from_env

    channels = alert_channels_from_env(os.environ)
    if not channels.configured:
        return
    try:
        channels.send(Alert("research-pipeline: Dagster's storage is broken", str(error)))
    except NotificationError as exc:
        log.warning("%s", exc)
