"""Dagster wiring only: resources, partitions, assets, checks, jobs, schedule, sensor."""

import warnings

from dagster import BetaWarning

# BackfillPolicy is marked beta; we rely on it knowingly (one run per backfill).
warnings.filterwarnings("ignore", category=BetaWarning)
