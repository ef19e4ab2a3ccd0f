"""The upgrade procedure of docs/deploy.md ("Upgrading"), from an installation of the previous
release with its data: its code (from this repository's history) takes a day's snapshot; then,
as the docs say: a backup, `dagster instance migrate`, and the new release's next day. Every row
of the earlier day is kept, the warehouse is upgraded in place, and the new day lands."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from research_pipeline.warehouse.schema import LATEST_VERSION
from research_pipeline_tests.helpers import cli_process_environment, find_usernames

# The last release before the journal and the member-day panel (schema version 7).
PREVIOUS_RELEASE = "56461383d6b852e2e05a284d3976eb2b97db2d19"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def previous_release(tmp_path) -> Path:
    """The previous release's code, from the repository's history (a shallow clone lacks it)."""
    folder = tmp_path / "previous"
    folder.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE, "research_pipeline"],
        capture_output=True,
    )
    if archive.returncode:
        pytest.skip(f"the previous release is not in this checkout's history: {archive.stderr!r}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def test_an_installation_of_the_previous_release_upgrades_with_its_data(
    previous_release, emulator, tmp_path
):
    env = cli_process_environment(tmp_path, emulator)
    env["RESEARCH_PIPELINE_DAYS_AHEAD"] = "2"
    users = find_usernames(emulator, "active", 6)
    (tmp_path / "cohorts" / "panel.txt").write_text("\n".join(users) + "\n")
    database = Path(env["RESEARCH_PIPELINE_DUCKDB"])
    first = emulator.clock.today()

    def cli(*args: str, code: Path) -> subprocess.CompletedProcess:
        # The package of `code` first: the previous release's, or this checkout's.
        return subprocess.run(
            [sys.executable, "-m", "research_pipeline.cli", *args],
            cwd=code, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    old = cli("snapshot", code=previous_release)
    assert old.returncode == 0, old.stdout + old.stderr
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("SELECT max(version) FROM tiktok.schema_version").fetchall() == [(7,)]
        before = conn.execute("SELECT * FROM tiktok.user_info ORDER BY ALL").fetchall()
    assert len(before) == 6

    # The procedure: (services stopped) a backup, the new code, Dagster's tables, the next day.
    backup = cli("backup", "--out", str(tmp_path / "backup"), code=REPO)
    assert backup.returncode == 0, backup.stderr
    migrate = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "instance", "migrate"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    emulator.clock.set_date(first + timedelta(days=1))
    new = cli("snapshot", code=REPO)
    assert new.returncode == 0, new.stdout + new.stderr

    with duckdb.connect(str(database), read_only=True) as conn:
        version = conn.execute("SELECT max(version) FROM tiktok.schema_version").fetchall()
        kept = conn.execute(
            "SELECT * FROM tiktok.user_info WHERE snapshot_date = ? ORDER BY ALL", [first]
        ).fetchall()
        days = conn.execute(
            "SELECT snapshot_date, status, count(*) FROM tiktok.panel_days GROUP BY ALL "
            "ORDER BY ALL"
        ).fetchall()
    assert version == [(LATEST_VERSION,)]
    assert kept == before  # every row of the earlier day, every value
    assert days == [(first, "observed", 6), (first + timedelta(days=1), "observed", 6)]
