"""`research-pipeline cohorts add|remove|cadence|list|validate`: cohort files and registration.

`validate` needs no Dagster: the commands that talk to the Dagster instance import it when they
run, so checking a file stays instant.
"""

import shutil
from datetime import UTC, datetime
from pathlib import Path

import click

from research_pipeline.cohorts import (
    CADENCE_FILE,
    COHORT_NAME_PATTERN,
    COHORT_SUFFIXES,
    DEFAULT_CADENCE_DAYS,
    check_cohort_name,
    cohort_files,
    find_cohort,
    read_cadences,
    read_cohort,
    remove_cadence,
    write_cadence,
)
from research_pipeline.errors import CohortError
from research_pipeline.planner import TERMS_MAX_DAYS
from research_pipeline.settings import PipelineSettings, requests_per_day
from research_pipeline.wording import plural


@click.group()
def cohorts() -> None:
    """Add, list and validate cohort files (one username per line, or a CSV `username` column)."""


@cohorts.command()
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Overwrite an existing cohort of that name.")
@click.option(
    "--cadence",
    type=click.IntRange(1, TERMS_MAX_DAYS),
    default=DEFAULT_CADENCE_DAYS,
    show_default=True,
    help="Refresh every member every this many days (at most 15: TikTok's terms).",
)
def add(name: str, file: Path, replace: bool, cadence: int) -> int:
    """Copy FILE of usernames in as cohort NAME, with its cadence, and register it."""
    from research_pipeline.orchestration.instance import dagster_instance
    from research_pipeline.orchestration.runs import register_cohorts

    name = check_cohort_name(name)
    cohort = read_cohort(file, name)
    click.echo(cohort.report())
    if not cohort.usernames:
        click.echo(f"{file}: no valid usernames; nothing added")
        return 1
    folder = PipelineSettings.from_env().cohorts_dir
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".csv" if file.suffix.lower() == ".csv" else ".txt"
    existing = [p for p in (folder / f"{name}.txt", folder / f"{name}.csv") if p.exists()]
    if existing and not replace:
        click.echo(f"cohort {name} exists ({existing[0]}); pass --replace to overwrite it")
        return 1
    for path in existing:
        path.unlink()
    target = folder / f"{name}{suffix}"
    if target.is_symlink() or folder.resolve() != target.resolve().parent:
        raise CohortError(
            f"{target} is a link pointing outside {folder}: remove it, then add the cohort again"
        )
    shutil.copyfile(file, target)
    write_cadence(folder, name, cadence)
    with dagster_instance() as instance:
        register_cohorts(instance, [name])
    click.echo(
        f"cohort {name}: {plural(len(cohort.usernames), 'user')} in {target}, refreshed every "
        f"{plural(cadence, 'day')}; partition registered"
    )
    _warn_if_infeasible(folder)
    return 0


@cohorts.command()
@click.argument("name")
def remove(name: str) -> int:
    """Stop following cohort NAME: its file and cadence go, its partition is unregistered; the
    data already taken stays in the warehouse (and in exports), as any earlier day's does."""
    from research_pipeline.orchestration.instance import dagster_instance
    from research_pipeline.orchestration.partitions import cohort_partitions

    name = check_cohort_name(name)
    folder = PipelineSettings.from_env().cohorts_dir
    files = [p for p in (folder / f"{name}.txt", folder / f"{name}.csv") if p.exists()]
    with dagster_instance() as instance:
        registered = name in instance.get_dynamic_partitions(cohort_partitions.name)
        if not files and not registered:
            raise CohortError(
                f"no cohort {name} in {folder} (see `research-pipeline cohorts list`)"
            )
        for path in files:
            path.unlink()
        remove_cadence(folder, name)
        if registered:
            instance.delete_dynamic_partition(cohort_partitions.name, name)
    click.echo(
        f"cohort {name} removed: {', '.join(map(str, files)) or 'no file'} deleted, partition "
        "unregistered; the data already taken stays in the warehouse"
    )
    return 0


@cohorts.command()
@click.argument("name")
@click.argument("days", type=click.IntRange(1, TERMS_MAX_DAYS))
def cadence(name: str, days: int) -> int:
    """Refresh cohort NAME's members every DAYS days from the next plan on."""
    folder = PipelineSettings.from_env().cohorts_dir
    find_cohort(folder, name)
    path = write_cadence(folder, name, days)
    click.echo(f"cohort {name}: refreshed every {plural(days, 'day')} ({path})")
    _warn_if_infeasible(folder)
    return 0


def _warn_if_infeasible(folder: Path) -> None:
    """Say so when the cadences now need more requests a day than the quota gives."""
    today = datetime.now(UTC).date()
    from research_pipeline.panels import cohort_specs, plan_for  # DuckDB and pandas: only here

    plan = plan_for(None, cohort_specs(folder), today, daily_quota=requests_per_day())
    if not plan.feasible:
        click.echo(
            f"warning: all cohorts together now need {plan.demand_per_day:,.0f} requests a day "
            f"and the budget is {plan.daily_budget:,}: members will rotate, each refreshed "
            f"about every {plan.sustainable_cadence_days} days (see `research-pipeline plan`)",
            err=True,
        )


@cohorts.command(name="list")
def list_cohorts() -> int:
    """Cohort files, their sizes, bad lines and registration; files that are ignored."""
    from research_pipeline.orchestration.instance import dagster_instance
    from research_pipeline.orchestration.partitions import cohort_partitions

    folder = PipelineSettings.from_env().cohorts_dir
    files = cohort_files(folder)
    with dagster_instance() as instance:
        registered = instance.get_dynamic_partitions(cohort_partitions.name)
    cadences = read_cadences(folder)
    click.echo(f"{'cohort':<24} {'users':>8} {'cadence':>8} {'bad lines':>9}  registered  file")
    for name in sorted(set(files) | set(registered)):
        if name in files:
            cohort = read_cohort(files[name], name)
            users, bad, where = len(cohort.usernames), cohort.problem_count, files[name]
        else:
            users, bad, where = 0, 0, "(file missing)"
        mark = "yes" if name in registered else "no"
        days = f"{cadences.get(name, DEFAULT_CADENCE_DAYS)}d"
        click.echo(f"{name:<24} {users:>8} {days:>8} {bad:>9}  {mark:<10}  {where}")
    ignored = sorted(
        p.name
        for p in (folder.iterdir() if folder.is_dir() else [])
        if p.is_file()
        and not p.name.startswith(".")
        and p.name not in {f.name for f in files.values()} | {CADENCE_FILE}
    )
    if ignored:
        click.echo(
            f"ignored in {folder}: {', '.join(ignored)} (a cohort file is NAME.txt or NAME.csv, "
            f"NAME matching {COHORT_NAME_PATTERN.pattern}; suffixes {', '.join(COHORT_SUFFIXES)})"
        )
    return 0


@cohorts.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Cohort name to check it under (default: the file's).")
@click.option("--show", type=int, default=50, show_default=True, help="Problems to print.")
def validate(file: Path, name: str | None, show: int) -> int:
    """Report every bad line of FILE with its line number (exit 1 if any)."""
    if file.is_dir():
        raise CohortError(f"{file} is a folder: give one cohort file (NAME.txt or NAME.csv)")
    cohort = read_cohort(file, name=name or _stem_or_default(file))
    click.echo(cohort.report(limit=show))
    return 1 if cohort.problem_count else 0


def _stem_or_default(path: Path) -> str:
    """Validation of a file whose name is no cohort name still reads the usernames."""
    try:
        return check_cohort_name(path.stem)
    except CohortError:
        return "unnamed"
