"""The one place a server keeps its credentials and settings: `.env` next to `workspace.yaml`.

Dagster itself reads the `.env` of the folder `dagster dev`, `dagster-webserver` or
`dagster-daemon run` start in (they start in the project folder: README, "Running it every
day"); the `research-pipeline` CLI and the code location read the same file through
`load_env_file`, so every process of an installation sees one set of settings. The file is
git-ignored; its values are never printed (Dagster logs the names it loaded, never values).

Here what the process's own environment already says wins: the file only fills in what is not
set, so a one-off `TIKTOK_DAILY_QUOTA=10 research-pipeline plan` means what it says. (Dagster's
services load the file over their environment; under systemd both come from the same file.)
`RESEARCH_PIPELINE_ENV_FILE` names another file, or `none` for no file at all (the demo uses it,
so a researcher's real credentials never reach a demo run).
"""

import os
from pathlib import Path

from dotenv import dotenv_values

from research_pipeline.errors import ConfigurationError
from research_pipeline.settings import project_dir

ENV_FILE_VARIABLE = "RESEARCH_PIPELINE_ENV_FILE"


def env_file_path() -> Path | None:
    """The installation's env file: RESEARCH_PIPELINE_ENV_FILE, else `.env` in the project."""
    named = os.environ.get(ENV_FILE_VARIABLE, "").strip()
    if named.lower() == "none":
        return None
    return Path(named) if named else project_dir() / ".env"


def load_env_file() -> list[str]:
    """Sets every variable of the env file that the environment does not set yet; returns their
    names. A file named by RESEARCH_PIPELINE_ENV_FILE that does not exist is an error (a typo
    would otherwise run without credentials); a missing `.env` is not."""
    path = env_file_path()
    if path is None:
        return []
    if not path.is_file():
        if os.environ.get(ENV_FILE_VARIABLE, "").strip():
            raise ConfigurationError(
                f"{ENV_FILE_VARIABLE}={path}: no such file; create it or unset the variable"
            )
        return []
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read it ({exc}); fix or remove it") from None
    loaded = []
    for name, value in values.items():
        if value is not None and name not in os.environ:
            os.environ[name] = value
            loaded.append(name)
    return loaded
