"""Real services for the scale-out and browser tests: PostgreSQL on loopback, `dagster dev`.

`make test` installs Debian's postgresql and chromium first (scripts/ensure-test-services);
where they cannot be installed, the tests that need them are skipped with the reason.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

CHROMIUM = "/usr/bin/chromium"


def _default_signals() -> None:
    """In the child before exec: SIGINT and SIGTERM back to their defaults. Dagster copies
    SIGINT's setting onto SIGTERM in the process that runs it (this test process), and a test
    run in the background (`&`, nohup) has SIGINT ignored: children would inherit a SIGTERM they
    ignore, and every teardown would wait for its timeout."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn(command: list[str], **options) -> subprocess.Popen:
    """A child process in its own process group, with default signal handling."""
    return subprocess.Popen(command, preexec_fn=_default_signals, start_new_session=True, **options)


def stop(process: subprocess.Popen, grace_seconds: float = 5.0) -> None:
    """SIGTERM to the child's group (the child and whatever it started), SIGKILL if it has not
    ended within `grace_seconds`. Never waits longer than that."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace_seconds)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@contextmanager
def postgres_server() -> Iterator[dict]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth); yields connection settings."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (scripts/ensure-test-services installs it)")
    folder = Path(tempfile.mkdtemp(prefix="rp-postgres-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, user="postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_postgres,
            pg_ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "server.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "db": "postgres"}
    finally:
        subprocess.run(
            [*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_server(url: str, process: subprocess.Popen, log) -> None:
    """Until the Dagster webserver at `url` answers (2 minutes at most); if its process ends
    first, the end of its `log` (an open file) in the error."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(url + "/server_info", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.flush()
            raise RuntimeError(
                f"the webserver did not start:\n{Path(log.name).read_text()[-3000:]}"
            )
        time.sleep(0.25)


@contextmanager
def dagster_dev(env: dict, cwd: Path) -> Iterator[str]:
    """`dagster dev` (webserver + daemon) on a free loopback port; yields its URL."""
    port = free_port()
    log = open(Path(env["DAGSTER_HOME"]) / "dagster-dev.log", "w")  # noqa: SIM115
    process = spawn(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, process, log)
        yield url
    finally:
        stop(process, grace_seconds=1.0)  # its storage is thrown away: no graceful shutdown
        log.close()
