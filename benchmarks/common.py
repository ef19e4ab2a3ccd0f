"""Helpers the benchmark scripts share: an emulator in its own process, a CLI environment."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

KEY, SECRET = "emulator-key", "emulator-secret"
ROOT = Path(__file__).resolve().parent.parent
RELEASE = "d6d4d53"  # the release of 2026-11-24, which issue 14 measured


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


def public_client(url: str, max_rate_limit_retries: int = 1):
    """tiktok-research-api-helper 0.1.3 (CybersecurityForDemocracy's public client, a dev
    dependency) pointed at the emulator at `url` (it hard-codes TikTok's host)."""
    import tiktok_research_api_helper.api_client as helper

    from research_pipeline.emulator.redirect import session_to_emulator

    return helper.TikTokApiRequestClient(
        credentials=helper.TikTokCredentials(client_secret=SECRET, client_key=KEY),
        access_token_fetcher_session=session_to_emulator(url),
        api_request_session=session_to_emulator(url),
        max_api_rate_limit_retries=max_rate_limit_retries,
    )


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


@contextmanager
def release_checkout(tmp: Path, commit: str = RELEASE) -> Iterator[tuple[Path, str]]:
    """The release at `commit` in a temporary git worktree, and a python that imports its
    research_pipeline (and tests) from there and every library from this venv: a bare virtualenv
    whose .pth puts the worktree first and our site-packages after it, without this venv's
    editable install of this tree, which would otherwise win. Same libraries, other code."""
    worktree = tmp / "release"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), commit],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    try:
        venv = tmp / "release-venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        ours = next(p for p in sys.path if p.endswith("site-packages") and str(ROOT) in p)
        (next((venv / "lib").glob("python3*")) / "site-packages" / "release.pth").write_text(
            f"{worktree}\n{ours}\n", encoding="utf-8"
        )
        python = str(venv / "bin" / "python")
        _copy_console_scripts(Path(sys.executable).parent, venv / "bin", python)
        probe = subprocess.run(
            [python, "-c", "import research_pipeline as r; print(r.__file__)"],
            capture_output=True, text=True, check=True, cwd=tmp,
        )  # fmt: skip
        assert probe.stdout.strip().startswith(str(worktree)), probe.stdout
        yield worktree, python
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT,
                       check=False, capture_output=True)  # fmt: skip


def _copy_console_scripts(ours: Path, theirs: Path, python: str) -> None:
    """Our venv's console scripts (`dagster`, `pytest`, ...) for the release's python: the
    release's tests start `dagster dev` from beside sys.executable."""
    for script in ours.iterdir():
        target = theirs / script.name
        if target.exists() or not script.is_file():
            continue
        try:
            first, rest = script.read_text(encoding="utf-8").split("\n", 1)
        except (UnicodeDecodeError, ValueError):
            continue
        if first.startswith("#!") and "python" in first:
            target.write_text(f"#!{python}\n{rest}", encoding="utf-8")
            target.chmod(0o755)
