"""Readers never cost a day: a colleague's notebook holds the warehouse open all day. Real parts:
a reader in another process, real Dagster runs, the emulator, DuckDB files in tmp_path."""

import subprocess
import sys

import duckdb
import pytest

from research_pipeline import warehouse
from research_pipeline.errors import WarehouseError
from research_pipeline.warehouse.published import published_path
from research_pipeline_tests.helpers import find_usernames

# End to end: the pipeline through Dagster or the CLI (`make check` leaves these out).
pytestmark = pytest.mark.e2e

READER = """
import duckdb, sys
conn = duckdb.connect(sys.argv[1], read_only=True)
count = "SELECT count(*) FROM tiktok.user_info"
print(conn.execute(count).fetchone()[0], flush=True)
sys.stdin.readline()  # held open until the test says so
print(conn.execute(count).fetchone()[0], flush=True)
"""


def reader(path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", READER, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process


def test_a_reader_of_the_published_copy_open_all_day_never_blocks_the_snapshot(pipeline):
    users = find_usernames(pipeline.api, "active", 8)
    pipeline.write_cohort("c1", users[:3])
    assert pipeline.run(["c1"])[0].success
    copy = published_path(pipeline.database)
    notebook = reader(copy)
    try:
        before = int(notebook.stdout.readline())
        pipeline.write_cohort("c1", users)  # five more members, fetched while it reads
        [result] = pipeline.run(["c1"])
        assert result.success
        notebook.stdin.write("\n")
        notebook.stdin.flush()
        during = int(notebook.stdout.readline())
    finally:
        notebook.kill()
        notebook.wait()
    assert before == during == 3  # the reader's view stayed a consistent earlier state
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info") == [(8,)]
    with warehouse.connect(copy, read_only=True) as conn:  # a new look sees the new day
        assert conn.execute("SELECT count(*) FROM tiktok.cohort_summary").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM tiktok.user_info").fetchone() == (8,)


def test_a_reader_on_the_pipelines_own_file_is_named_with_its_process(pipeline):
    users = find_usernames(pipeline.api, "active", 2)
    pipeline.write_cohort("c1", users)
    assert pipeline.run(["c1"])[0].success
    notebook = reader(pipeline.database)
    try:
        notebook.stdout.readline()
        with pytest.raises(WarehouseError) as held:
            with warehouse.connect(pipeline.database, wait_seconds=0.2):
                pass
    finally:
        notebook.kill()
        notebook.wait()
    message = str(held.value)
    assert (
        f"process {notebook.pid}" in message and str(published_path(pipeline.database)) in message
    )


def test_a_notebook_reconnecting_in_the_same_process_sees_the_latest_run(pipeline):
    """DuckDB keeps one database per file in a process: with the copy renamed over the old
    one, a notebook that kept any connection open and reconnected saw the old data (4,007
    rows instead of 5,036). Each run's copy is a new file behind the link now."""
    users = find_usernames(pipeline.api, "active", 8)
    pipeline.write_cohort("c1", users[:3])
    assert pipeline.run(["c1"])[0].success
    copy = published_path(pipeline.database)
    kept = duckdb.connect(str(copy), read_only=True)  # left open, as notebooks do
    try:
        assert kept.execute("SELECT count(*) FROM tiktok.user_info").fetchone() == (3,)
        pipeline.write_cohort("c1", users)
        assert pipeline.run(["c1"])[0].success
        again = duckdb.connect(str(copy), read_only=True)  # the same process reconnects
        try:
            assert again.execute("SELECT count(*) FROM tiktok.user_info").fetchone() == (8,)
        finally:
            again.close()
        assert kept.execute("SELECT count(*) FROM tiktok.user_info").fetchone() == (3,)
    finally:
        kept.close()
    assert copy.is_symlink() and len(list(copy.parent.glob(".published/*.duckdb"))) == 1
