"""`research-pipeline plan`: today's plan and a forecast per cohort, without spending quota."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from research_pipeline.errors import (
    ConfigurationError,
    TikTokApiError,
)
from research_pipeline.settings import PipelineSettings, requests_per_day

if TYPE_CHECKING:  # the planner, the warehouse and the client load when a plan is made
    from research_pipeline.planner import Plan
    from research_pipeline.tiktok import ClientSettings


def api_today(settings: ClientSettings) -> date:
    """Today at the API (its Date header): snapshots are dated by the API's day, never by this
    machine's clock. Costs one token request, no quota."""
    from research_pipeline.tiktok import ResearchApiClient

    with ResearchApiClient(settings) as client:
        return client.api_now().date()


def current_plan(day: date, pipeline: PipelineSettings, quota: int | None) -> Plan:
    from research_pipeline import panels

    return panels.plan_from_warehouse(
        pipeline.duckdb_path,
        panels.cohort_specs(pipeline.cohorts_dir),
        day,
        daily_quota=quota,
        tries_per_day=pipeline.tries_per_user_per_day,
    )


def format_plan(plan: Plan, where: Path | None = None) -> str:
    lines = [plan.summary(), ""]
    lines.append(
        f"{'cohort':<22} {'members':>8} {'cadence':>8} {'req/day':>8} {'due':>6} "
        f"{'planned':>8} {'never':>6} {'stalest':>8} {'full refresh':>13}"
    )
    for f in plan.forecast:
        stalest = "-" if f.stalest_age_days is None else f"{f.stalest_age_days}d"
        lines.append(
            f"{f.cohort:<22} {f.members:>8,} {f.cadence_days:>7}d {f.requests_per_day:>8.1f} "
            f"{f.due_today:>6,} {f.planned_today:>8,} {f.never_fetched:>6,} {stalest:>8} "
            f"{f.days_for_full_refresh:>12}d"
        )
    budget = "no quota" if plan.daily_budget is None else f"{plan.daily_budget:,} a day"
    verdict = "feasible" if plan.feasible else "NOT feasible"
    lines.append("")
    lines.append(
        f"demand: {plan.demand_per_day:,.1f} requests a day for {plan.unique_users:,} unique "
        f"users (a user in several cohorts counts once, at its shortest cadence); budget: "
        f"{budget}: {verdict}"
    )
    if not plan.feasible:
        lines.append(
            f"the budget sustains a cadence of {plan.sustainable_cadence_days} days for every "
            "user: set longer cadences (`research-pipeline cohorts cadence NAME DAYS`) or a "
            "larger budget; meanwhile members rotate, none starves"
        )
    return "\n".join(lines)


@click.command()
@click.option(
    "--date",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Plan this day (default: today at the API, or today UTC without credentials).",
)
def plan(day) -> int:
    """Print today's plan and a forecast per cohort (spends no quota)."""
    from research_pipeline.tiktok import ClientSettings

    pipeline = PipelineSettings.from_env()
    client = None
    try:
        client = ClientSettings.from_env()
    except ConfigurationError:
        pass  # planning needs no credentials; the date then comes from this machine's clock
    if day is not None:
        chosen = date(day.year, day.month, day.day)
        source = "given"
    elif client is not None:
        try:
            chosen, source = api_today(client), "the API's date"
        except TikTokApiError as exc:
            chosen, source = datetime.now(UTC).date(), f"UTC; the API did not answer: {exc}"
    else:
        chosen, source = datetime.now(UTC).date(), "UTC; no credentials to ask the API"
    click.echo(f"plan for {chosen} ({source})")
    click.echo(format_plan(current_plan(chosen, pipeline, requests_per_day())))
    return 0
