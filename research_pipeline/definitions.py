"""The code location: every definition under `defs/`, found by Dagster's `load_from_defs_folder`
(the `dg` project layout, `[tool.dg]` in pyproject.toml). `dagster dev` (workspace.yaml), the CLI
and the tests all load it; configuration comes from the environment (README, "Configuration")."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import Definitions, definitions, load_from_defs_folder

from research_pipeline.env_file import load_env_file


def load_project_defs(resources: Mapping[str, Any] | None = None) -> Definitions:
    """The project's definitions, built now from the current environment (and the
    installation's .env, for what the environment does not set: env_file.py). `resources`
    replace those of the same key (a test's or a notebook's, `defs.resources.build_resources`
    of its own settings), as a run's launchpad config would."""
    load_env_file()
    defs = load_from_defs_folder(path_within_project=Path(__file__).parent)
    if not resources:
        return defs
    return Definitions(
        assets=defs.assets,
        schedules=defs.schedules,
        sensors=defs.sensors,
        jobs=defs.jobs,
        resources={**(defs.resources or {}), **resources},
        executor=defs.executor,
        loggers=defs.loggers,
        asset_checks=defs.asset_checks,
        metadata=defs.metadata,
        component_tree=defs.component_tree,
    )


@definitions
def defs() -> Definitions:
    return load_project_defs()
