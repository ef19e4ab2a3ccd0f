"""The one Definitions object: `dagster dev` (workspace.yaml) and the CLI both load it.

Configuration comes from the environment: TIKTOK_* for the API (see README),
RESEARCH_PIPELINE_DUCKDB and RESEARCH_PIPELINE_COHORTS_DIR for where data and cohorts live.
"""

import os

from dagster import Definitions, EnvVar, in_process_executor
from dagster_duckdb import DuckDBResource

from research_pipeline.defs.assets.derived import (
    cohort_summary,
    engagement_snapshots,
    follower_snapshots,
)
from research_pipeline.defs.assets.snapshots import user_info
from research_pipeline.defs.constants import cohorts_dir, duckdb_path
from research_pipeline.defs.jobs import snapshot_job
from research_pipeline.defs.resources import CohortFolder, ResearchApiResource
from research_pipeline.defs.schedules import daily_snapshot_schedule
from research_pipeline.defs.sensors import cohort_files_sensor
from research_pipeline.tiktok import constants
from research_pipeline.tiktok.settings import _optional_limit


def _limit(name: str, default: int) -> int:
    value = _optional_limit(os.environ.get(name), default, name)
    return 0 if value is None else value


def build_resources() -> dict:
    return {
        "research_api": ResearchApiResource(
            client_key=EnvVar("TIKTOK_CLIENT_KEY"),
            client_secret=EnvVar("TIKTOK_CLIENT_SECRET"),
            base_url=os.environ.get("TIKTOK_API_BASE_URL") or constants.DEFAULT_BASE_URL,
            rate_limit_per_minute=_limit(
                "TIKTOK_RATE_LIMIT_PER_MINUTE", constants.RATE_LIMIT_PER_MINUTE
            ),
            daily_quota=_limit("TIKTOK_DAILY_QUOTA", constants.DAILY_QUOTA),
        ),
        "cohort_folder": CohortFolder(path=str(cohorts_dir())),
        "warehouse": DuckDBResource(database=duckdb_path()),
    }


def choose_executor(name: str | None):
    """RESEARCH_PIPELINE_EXECUTOR picks how steps run, so moving to Kubernetes or Celery is a
    deployment setting: multiprocess (Dagster's default), in_process, k8s or celery."""
    name = (name or "multiprocess").strip().lower()
    if name == "multiprocess":
        return None
    if name == "in_process":
        return in_process_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # pip install dagster-k8s

        return k8s_job_executor
    if name == "celery":
        from dagster_celery import celery_executor  # pip install dagster-celery

        return celery_executor
    raise ValueError(
        f"RESEARCH_PIPELINE_EXECUTOR={name!r}: choose multiprocess, in_process, k8s or celery"
    )


def build_defs(resources: dict | None = None) -> Definitions:
    """The project's definitions; tests and the demo pass resources of their own."""
    return Definitions(
        assets=[user_info, follower_snapshots, engagement_snapshots, cohort_summary],
        jobs=[snapshot_job],
        schedules=[daily_snapshot_schedule],
        sensors=[cohort_files_sensor],
        resources=resources or build_resources(),
        executor=choose_executor(os.environ.get("RESEARCH_PIPELINE_EXECUTOR")),
    )


defs = build_defs()
