"""Today's plan from what is on disk: the cohort files and cadences, the warehouse's history and
the ledger's spending. The asset plans through `plan_for` inside its run; the schedule and the
CLI through `plan_from_warehouse`, which calls it the same way, so all agree on what a day
fetches (the users out of tries today included)."""

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import duckdb

from research_pipeline import warehouse
from research_pipeline.cohorts import (
    DEFAULT_CADENCE_DAYS,
    cohort_files,
    read_cadences_or_set_aside,
    read_cohort,
)
from research_pipeline.errors import WarehouseNeedsUpgradeError
from research_pipeline.planner import CohortSpec, LastAnswer, Plan, plan_day
from research_pipeline.warehouse import panel, raw


def cohort_specs(folder: Path, names: Iterable[str] | None = None) -> list[CohortSpec]:
    """Every cohort of the folder (or those named, in that order) with its cadence."""
    files = cohort_files(folder)
    cadences = read_cadences_or_set_aside(folder)
    chosen = sorted(files) if names is None else [n for n in names if n in files]
    return [
        CohortSpec(
            name,
            read_cohort(files[name], name).usernames,
            cadences.get(name, DEFAULT_CADENCE_DAYS),
        )
        for name in chosen
    ]


def plan_from_warehouse(
    database: str | Path,
    specs: list[CohortSpec],
    day: date,
    *,
    daily_quota: int | None,
    tries_per_day: int | None,
) -> Plan:
    """The plan a run would make for `day`, made from outside a run (the CLI before it starts
    one, `plan`, the schedule deciding whether to start one): the warehouse read, never
    written. No warehouse yet, or one of an earlier release (upgraded by the run): no history."""
    if str(database) != ":memory:" and not Path(database).exists():
        return plan_for(None, specs, day, daily_quota=daily_quota)
    try:
        with warehouse.connect(database, read_only=True) as conn:
            return plan_for(conn, specs, day, daily_quota=daily_quota, tries_per_day=tries_per_day)
    except WarehouseNeedsUpgradeError:
        return plan_for(None, specs, day, daily_quota=daily_quota)


def plan_for(
    conn: duckdb.DuckDBPyConnection | None,
    specs: list[CohortSpec],
    day: date,
    *,
    daily_quota: int | None,
    tries_per_day: int | None = None,
) -> Plan:
    """The plan for API day `day`, from the warehouse behind `conn` (None: no history yet).
    With `tries_per_day`, users tried that often today are left for tomorrow."""
    history: dict[str, LastAnswer] = {}
    spent = 0
    tired: set[str] = set()
    if conn is not None:
        answers = panel.last_final_answers(conn, day)
        history = {user: LastAnswer(d, kind) for user, (d, kind) in answers.items()}
        spent = raw.requests_spent_on(conn, day)
        if tries_per_day is not None:
            tired = {u for u, n in raw.tries_on(conn, day).items() if n >= tries_per_day}
    return plan_day(
        specs, history, day, daily_quota=daily_quota, spent_today=spent, out_of_tries=tired
    )
