"""`research-pipeline backup`: the warehouse, its journal and the cohorts copied while a run
writes; restored, nothing is lost and nothing stored twice."""

import json
import shutil

import pytest

from research_pipeline import warehouse
from research_pipeline.backup import MANIFEST, back_up
from research_pipeline.cli import main
from research_pipeline.errors import WarehouseError
from research_pipeline.journal import Journal
from research_pipeline.outputs import sha256_of
from research_pipeline_tests.test_journal import DAY, answers, written


def test_a_backup_taken_mid_run_restores_every_answer_once(tmp_path):
    database = tmp_path / "data" / "research.duckdb"
    database.parent.mkdir()
    cohorts = tmp_path / "cohorts"
    cohorts.mkdir()
    (cohorts / "c1.txt").write_text("alice\nbob\ncarol\n")
    journal = Journal(database)
    rows, requests = answers()
    written(journal, rows[:1], requests[:1])  # an earlier run: alice, stored below
    with warehouse.connect(database) as conn:
        journal.restore(conn, "emulator", DAY)
    live = journal.open_run(DAY, "emulator")  # a run asking now: bob answered, not yet stored
    live.append(requests[1], rows[2:])
    with live.path.open("ab") as handle:
        handle.write(b'{"entry": {"kind": "exchange", "req')  # a line being written

    manifest = back_up(database, None, cohorts, tmp_path / "backup")

    live.close()
    out = tmp_path / "backup"
    assert manifest["journal_files"] == 1 and not (tmp_path / "backup.partial").exists()
    listed = {f["file"]: f["sha256"] for f in json.loads((out / MANIFEST).read_text())["files"]}
    assert set(listed) == {
        "research.duckdb",
        f"research.duckdb.journal/{live.path.name}",
        "research.duckdb.journal/.key",
        "cohorts/c1.txt",
    }
    assert all(sha256_of(out / name) == digest for name, digest in listed.items())
    assert (out / "research.duckdb.journal").stat().st_mode & 0o777 == 0o700
    # The disk is lost; the backup is copied back where it was, and the next run stores it.
    shutil.rmtree(database.parent)
    shutil.copytree(out, database.parent, ignore=shutil.ignore_patterns("cohorts", MANIFEST))
    with warehouse.connect(database) as conn:
        assert journal.restore(conn, "emulator", DAY) == (1, 1)  # bob, kept by the journal
        stored = conn.execute(
            "SELECT username, status FROM tiktok.user_info ORDER BY ALL"
        ).fetchall()
        ledger = conn.execute("SELECT username FROM tiktok.api_requests ORDER BY 1").fetchall()
    assert stored == [("alice", "ok"), ("bob", "invalid_params")]
    assert ledger == [("alice",), ("bob",)]  # each request once


def test_a_backup_never_writes_over_a_folder_with_files(tmp_path):
    database = tmp_path / "w.duckdb"
    with warehouse.connect(database):
        pass
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "thesis.tex").write_text("keep me")
    with pytest.raises(WarehouseError, match="not empty"):
        back_up(database, None, tmp_path / "cohorts", taken)
    assert (taken / "thesis.tex").read_text() == "keep me"
    with pytest.raises(WarehouseError, match="no warehouse"):
        back_up(tmp_path / "none.duckdb", None, tmp_path / "cohorts", tmp_path / "b")


def test_the_backup_command_copies_the_configured_warehouse(tmp_path, monkeypatch, capsys):
    database = tmp_path / "data" / "research.duckdb"
    with warehouse.connect(database):
        pass
    monkeypatch.setenv("RESEARCH_PIPELINE_DUCKDB", str(database))
    monkeypatch.setenv("RESEARCH_PIPELINE_COHORTS_DIR", str(tmp_path / "cohorts"))
    monkeypatch.setenv("RESEARCH_PIPELINE_ENV_FILE", "none")
    assert main(["backup", "--out", str(tmp_path / "b")]) == 0
    assert "backed up" in capsys.readouterr().out
    assert (tmp_path / "b" / "research.duckdb").is_file()
