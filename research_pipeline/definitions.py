"""The code location: every definition under `defs/`, found by Dagster's `load_from_defs_folder`
(the `dg` project layout, `[tool.dg]` in pyproject.toml). `dagster dev` (workspace.yaml), the CLI
and the tests all load it; configuration comes from the environment (README, "Configuration")."""

from pathlib import Path

from dagster import Definitions, definitions, load_from_defs_folder

from research_pipeline.env_file import load_env_file


def load_project_defs() -> Definitions:
    """The project's definitions, built now from the current environment (and the
    installation's .env, for what the environment does not set: env_file.py)."""
    load_env_file()
    return load_from_defs_folder(path_within_project=Path(__file__).parent)


@definitions
def defs() -> Definitions:
    return load_project_defs()
