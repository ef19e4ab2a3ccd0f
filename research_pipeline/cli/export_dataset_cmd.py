"""`research-pipeline export-dataset`: one cohort as a citable dataset."""

from pathlib import Path

import click

from research_pipeline import warehouse
from research_pipeline.outputs import refuse_side_file
from research_pipeline.settings import PipelineSettings


@click.command(name="export-dataset")
@click.option("--cohort", required=True, help="The cohort to export.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="An empty folder to write (default: the project's exports folder, "
    "RESEARCH_PIPELINE_EXPORTS_DIR, /COHORT-DATE), where later deletions reach it.",
)
def export_dataset_command(cohort: str, out: Path | None) -> int:
    """Write COHORT's tables (Parquet), a data dictionary, a manifest with sha256 of each file,
    and a methods paragraph for a paper's appendix."""
    from research_pipeline.datasets import MANIFEST, METHODS, export_dataset
    from research_pipeline.warehouse import queries

    settings = PipelineSettings.from_env()
    with warehouse.connect(settings.duckdb_path, read_only=True) as conn:
        if out is None:
            last = queries.last_snapshot_date(conn, cohort)
            out = settings.exports_dir / f"{cohort}-{last}"
        refuse_side_file(out, settings.duckdb_path)
        manifest = export_dataset(conn, cohort, out)
    rows = sum(f.get("rows", 0) for f in manifest["files"])
    click.echo(f"wrote the dataset of cohort {cohort} to {out}: {rows} rows in "
               f"{sum(1 for f in manifest['files'] if 'rows' in f)} tables, {MANIFEST}, "
               f"{METHODS}")  # fmt: skip
    click.echo(manifest["methods"])
    return 0
