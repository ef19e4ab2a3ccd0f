"""`research-pipeline demo-ui`: the Dagster UI on the demo's runs, with an emulator to run on.

Runs launched from the UI (a backfill, a materialization) are new processes that read their
settings from the environment: this command starts a demo emulator on a free loopback port and
`dagster dev` with the demo's settings in its environment (demo_cmd.demo_environment), so those
runs reach the emulator and the demo's warehouse with nothing exported by hand, and never the
researcher's .env, cohorts or warehouse. Ctrl-C stops both.
"""

import os
import subprocess
import sys
from pathlib import Path

import click

from research_pipeline.settings import project_dir


@click.command("demo-ui")
@click.option("--port", type=int, default=3000, show_default=True, help="The UI's TCP port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the UI listens on.")
def demo_ui(port: int, host: str) -> int:
    """Open the Dagster UI on the demo (run `research-pipeline demo` first for its history)."""
    from research_pipeline.cli.demo_cmd import demo_dir, demo_environment
    from research_pipeline.emulator import EmulatorConfig, EmulatorServer

    root = project_dir()
    folder = demo_dir(root)
    with EmulatorServer(EmulatorConfig(latency_seconds=0.01)) as api:
        env = {**os.environ, **demo_environment(root, api)}
        click.echo(f"Demo emulator on {api.url}; Dagster UI on http://{host}:{port} (Ctrl-C stops)")
        command = [
            str(Path(sys.executable).parent / "dagster"),
            *("dev", "-m", "research_pipeline.definitions", "-h", host, "-p", str(port)),
        ]
        # Started in demo/, where no .env is: Dagster would load a researcher's .env from the
        # project folder over the demo's settings.
        process = subprocess.Popen(command, cwd=folder, env=env)
        try:
            return process.wait()
        except KeyboardInterrupt:  # the terminal sent SIGINT to dagster dev too
            try:
                return process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                return 130
