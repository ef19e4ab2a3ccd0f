"""Helpers the benchmark scripts share: an emulator in its own process, a CLI environment."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

KEY, SECRET = "emulator-key", "emulator-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator(*options: str) -> tuple[subprocess.Popen, str]:
    """`research-pipeline emulator` in a child process (so it does not share our GIL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "research_pipeline.cli", "emulator", "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(url + "/emulator/stats", timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("emulator did not start")


def stats(url: str) -> dict:
    return requests.get(url + "/emulator/stats", timeout=30).json()


def cli_env(folder: Path, url: str, **extra: str) -> dict:
    """Environment for `research-pipeline snapshot` on its own DAGSTER_HOME and DuckDB file."""
    (folder / "home").mkdir(parents=True, exist_ok=True)
    (folder / "cohorts").mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(folder / "home"),
            "TIKTOK_API_BASE_URL": url,
            "TIKTOK_CLIENT_KEY": KEY,
            "TIKTOK_CLIENT_SECRET": SECRET,
            "TIKTOK_RATE_LIMIT_PER_MINUTE": "off",
            "TIKTOK_DAILY_QUOTA": "off",
            "RESEARCH_PIPELINE_COHORTS_DIR": str(folder / "cohorts"),
            "RESEARCH_PIPELINE_DUCKDB": str(folder / "data" / "research.duckdb"),
        }
    )
    env.update(extra)
    return env


def snapshot_command(*cohorts: str) -> list[str]:
    args = [sys.executable, "-m", "research_pipeline.cli", "snapshot"]
    for name in cohorts:
        args += ["--cohort", name]
    return args
