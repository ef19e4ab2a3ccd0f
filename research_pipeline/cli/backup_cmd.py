"""`research-pipeline backup`: the warehouse, its journal and the cohort files, copied
consistently while the pipeline runs (research_pipeline.backup)."""

from pathlib import Path

import click

from research_pipeline.settings import PipelineSettings


@click.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new (or empty) folder to write the backup into.",
)
def backup(out: Path) -> int:
    """Copy the warehouse, its journal and the cohort files into OUT, with BACKUP.json (the
    files' SHA-256 and how to restore). Safe while the pipeline runs: the warehouse is copied
    between two of its saves, the journal with it."""
    from research_pipeline.backup import MANIFEST, back_up

    settings = PipelineSettings.from_env()
    manifest = back_up(settings.duckdb_path, settings.journal_dir, settings.cohorts_dir, out)
    click.echo(
        f"backed up {settings.duckdb_path} (schema {manifest['schema_version']}), "
        f"{manifest['journal_files']} journal file(s) and the cohorts to {out} ({MANIFEST})"
    )
    return 0
