"""The code location: every definition under `defs/`, assembled here by name. `dagster dev`
(workspace.yaml), the CLI and the tests all load it; configuration comes from the environment
(README, "Configuration").

`defs/` keeps the `dg` project layout (`[tool.dg]` in pyproject.toml: `dg` lists it as before),
but the code location does not walk it with `load_from_defs_folder`: that walk builds a
component tree whose pydantic models then slow Dagster's own type checks in every run, 0.3 s of
a 10-user snapshot in all (0.15 s the walk, 0.18 s the run's first compute-log event; measured
beside this, docs/benchmarks.md "Fixed cost"). A test holds this list equal to what the walk
finds, so a definition added under `defs/` and forgotten here fails it."""

from collections.abc import Mapping
from typing import Any

from dagster import (
    Definitions,
    definitions,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

from research_pipeline.env_file import load_env_file


def load_project_defs(resources: Mapping[str, Any] | None = None) -> Definitions:
    """The project's definitions, built now from the current environment (and the
    installation's .env, for what the environment does not set: env_file.py). `resources`
    replace those of the same key (a test's or a notebook's, `defs.resources.build_resources`
    of its own settings), as a run's launchpad config would."""
    load_env_file()  # first: the partitions and the schedule read their settings at import
    from research_pipeline.defs import housekeeping, loggers
    from research_pipeline.defs.resources import build_resources
    from research_pipeline.defs.tiktok import (
        alerts,
        derived,
        jobs,
        schedules,
        sensors,
        terms,
        user_info,
    )

    asset_modules = [user_info, terms, derived]
    return Definitions(
        assets=load_assets_from_modules(asset_modules),
        asset_checks=load_asset_checks_from_modules(asset_modules),
        jobs=[
            jobs.snapshot_job,
            jobs.summaries_after_forgetting_job,
            housekeeping.housekeeping_job,
        ],
        schedules=[schedules.daily_snapshot_schedule, housekeeping.housekeeping_schedule],
        sensors=[
            sensors.cohort_files_sensor,
            sensors.summaries_after_forgetting,
            alerts.failed_day_alert,
            alerts.unfinished_day_alert,
        ],
        resources={**build_resources(), **(resources or {})},
        loggers=loggers.LOGGERS,
    )


@definitions
def defs() -> Definitions:
    return load_project_defs()
