"""The `research-pipeline` command.

Each command lives in its own module, imported only when that command runs (`LazyGroup`): the
emulator and `cohorts validate` start without loading Dagster or pandas. An expected failure
(any `ResearchPipelineError`) prints one line on stderr and exits 2; `--verbose` adds the
traceback. A run that fails exits 1.
"""

import importlib
import logging
import os
import sys
import traceback

import click

from research_pipeline.cli import collection
from research_pipeline.env_file import load_env_file
from research_pipeline.errors import ResearchPipelineError

COMMANDS = {
    "cohorts": "research_pipeline.cli.cohorts_cmd:cohorts",
    "snapshot": "research_pipeline.cli.snapshot_cmd:snapshot",
    "plan": "research_pipeline.cli.plan_cmd:plan",
    "export": "research_pipeline.cli.export_cmd:export",
    "export-dataset": "research_pipeline.cli.export_dataset_cmd:export_dataset_command",
    "emulator": "research_pipeline.cli.emulator_cmd:emulator",
    "demo": "research_pipeline.cli.demo_cmd:demo",
    "demo-ui": "research_pipeline.cli.demo_ui_cmd:demo_ui",
    "watchdog": "research_pipeline.cli.watchdog_cmd:watchdog",
    "backup": "research_pipeline.cli.backup_cmd:backup",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when used (click's documented lazy-loading shape)."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of failures.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Repeatable TikTok Research API snapshots of cohorts of accounts, orchestrated by Dagster.

    Start with `research-pipeline demo` (emulator, nothing to set up), or add a cohort with
    `research-pipeline cohorts add NAME FILE` and run `research-pipeline snapshot`.
    """
    ctx.ensure_object(dict)["verbose"] = verbose
    if ctx.invoked_subcommand not in UNCONFIGURED:
        load_env_file()  # the same .env that Dagster's services read


# The emulator and the demo never read the installation's .env: a researcher's real
# credentials and settings must not reach them.
UNCONFIGURED = ("emulator", "demo", "demo-ui")


def run() -> None:
    """The `research-pipeline` executable: run the command, then leave at once.

    Everything a command writes is closed by then (DuckDB connections and the Dagster instance
    are context managers; logs and stdout are flushed here), so the interpreter's own teardown
    of Dagster's and pandas' modules (0.5-0.6 s measured, a fifth of a small snapshot) does
    nothing for anyone: os._exit skips it. For the same reason what a command loads can be
    frozen out of the garbage collector's way (`collection`)."""
    collection.freeze_after_loading()
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns its exit code (tests call this in process)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in argv or "-v" in argv
    try:
        result = cli.main(args=argv, prog_name="research-pipeline", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before or after a run: nothing was being spent
        click.echo("interrupted", err=True)
        return 130
    except ResearchPipelineError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith(("duckdb", "_duckdb")):
            raise
        # A query on a damaged warehouse (a block zeroed, the file cut short): one line.
        if verbose:
            traceback.print_exc()
        click.echo(
            f"error: the warehouse could not be read ({str(exc).splitlines()[0]}): restore it "
            "from a backup, or move it aside and start a new one",
            err=True,
        )
        return 2
    return result if isinstance(result, int) else 0
