"""`research-pipeline export`: one table, or the `panel` series (one row per member-day: the
counts where observed, the status otherwise), to Parquet or CSV, for R or pandas."""

from datetime import date
from pathlib import Path

import click

from research_pipeline import warehouse
from research_pipeline.errors import WarehouseError
from research_pipeline.outputs import export_file
from research_pipeline.settings import PipelineSettings
from research_pipeline.warehouse.export import EXPORT_CHOICES, FORMATS


@click.command()
@click.argument("table", type=click.Choice(EXPORT_CHOICES))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The file to write.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    default=None,
    help="File format (default: from the --out extension, .parquet or .csv).",
)
@click.option("--cohort", default=None, help="Only this cohort.")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Only snapshots on or after this date (YYYY-MM-DD).",
)
def export(table: str, out: Path, file_format: str, cohort: str | None, since) -> int:  # fmt: skip
    """Write TABLE of the warehouse to a file; `panel`: one row per member-day, the counts
    where observed and the status otherwise."""
    since_day: date | None = since.date() if since else None
    suffix = out.suffix.lower().lstrip(".")
    if file_format is None:
        if suffix not in FORMATS:
            raise WarehouseError(
                f"--out {out}: say the format with --format parquet|csv, or name the file .parquet "
                "or .csv"
            )
        file_format = suffix
    elif suffix in FORMATS and suffix != file_format:
        raise WarehouseError(f"--out {out} ends in .{suffix} but --format is {file_format}")
    from research_pipeline.warehouse import queries
    from research_pipeline.warehouse.published import published_path

    database = PipelineSettings.from_env().duckdb_path
    published = published_path(database)  # what readers read: the pipeline's file stays free
    source = str(published) if published.exists() else database
    with warehouse.connect(source, read_only=True) as conn:
        if cohort is not None:
            known = queries.cohorts_with_data(conn)
            if cohort not in known:
                with_data = ", ".join(known) or "none"
                raise WarehouseError(
                    f"no data for cohort {cohort!r} (cohorts with data: {with_data})"
                )
        with export_file(out, database) as partial:
            rows = warehouse.export_table(conn, table, partial, file_format, cohort, since_day)
    what = "the panel (member-days)" if table == "panel" else f"tiktok.{table}"
    click.echo(f"wrote {rows} rows of {what} to {out} ({file_format})")
    return 0
