"""`research-pipeline snapshot`: today's raw and derived partitions, through a real Dagster run."""

from datetime import UTC, datetime

import click

from research_pipeline.cli.report import print_summary, run_and_report
from research_pipeline.definitions import load_project_defs
from research_pipeline.errors import CohortError
from research_pipeline.orchestration.instance import dagster_instance


@click.command()
@click.option("--cohort", "cohorts", multiple=True, help="A cohort (repeatable); default: all.")
def snapshot(cohorts: tuple[str, ...]) -> int:
    """Materialize today's raw and derived partitions in one run."""
    with dagster_instance() as instance:
        return _snapshot(instance, load_project_defs(), cohorts)


def _snapshot(instance, defs, cohorts: tuple[str, ...]) -> int:
    folder = defs.resources["cohort_folder"]
    files = folder.files()
    chosen = list(cohorts) or sorted(files)
    unknown = [c for c in chosen if c not in files]
    if unknown:
        raise CohortError(
            f"no cohort file for: {', '.join(unknown)} in {folder.path} "
            "(see `research-pipeline cohorts list`)"
        )
    if not chosen:
        raise CohortError(
            f"no cohorts in {folder.path}: add one with `research-pipeline cohorts add NAME FILE`"
        )
    today = datetime.now(UTC).date()
    ok = run_and_report(defs, instance, today, chosen)
    if ok:
        print_summary(defs.resources["warehouse"].database, today)
    return 0 if ok else 1
