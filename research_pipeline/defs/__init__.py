"""Dagster definitions, loaded by `research_pipeline.definitions` with `load_from_defs_folder`:
`resources.py` (API, cohort folder, warehouse, from the environment) and one folder per source
(`tiktok/`: assets, checks, job, schedule, sensor)."""

import warnings

from dagster import BetaWarning

# BackfillPolicy is marked beta; we rely on it knowingly (one run per backfill).
warnings.filterwarnings("ignore", category=BetaWarning)
