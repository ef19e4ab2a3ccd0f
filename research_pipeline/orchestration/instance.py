"""The Dagster instance that runs launched from Python (CLI, demo) are recorded in."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance

from research_pipeline.errors import ConfigurationError
from research_pipeline.settings import project_dir


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
    with DagsterInstance.get() as instance:
        yield instance
