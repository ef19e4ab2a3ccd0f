"""The journal: every request and answer on disk as it arrives, stored later exactly once."""

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from research_pipeline import warehouse
from research_pipeline.errors import JournalError
from research_pipeline.journal import Journal
from research_pipeline.tiktok.models import Outcome, RequestRecord, UserInfoResult

DAY = date(2026, 11, 30)


def answers():
    now = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    ok = UserInfoResult(
        "alice",
        Outcome.OK,
        "ok",
        now,
        log_id="L1",
        http_status=200,
        fields={"follower_count": 2**40, "display_name": "Ålice ✨", "is_verified": True},
        served_at=now,
        extra={"open_id": "x"},
    )
    gone = UserInfoResult(
        "bob", Outcome.USER_ERROR, "invalid_params", now, error_message="bob is private"
    )
    rows = [(DAY, "c1", ok), (DAY, "c2", ok), (DAY, "c1", gone)]
    requests = [
        (DAY, "c1", RequestRecord(now, "alice", 200, "ok", "L1")),
        (DAY, "c1", RequestRecord(now, "bob", 400, "invalid_params", message="bob is private")),
    ]
    return rows, requests


def written(journal: Journal, rows, requests, source="emulator"):
    """A run's journal as the client's threads write it: a line per exchange, then closed."""
    run = journal.open_run(DAY, source)
    by_user = {}
    for day, cohort, result in rows:
        by_user.setdefault(result.username, []).append((day, cohort, result))
    for request in requests:
        run.append(request, by_user.pop(request[2].username, []))
    run.close()
    return run.path


def test_journaled_answers_are_stored_as_they_came_and_only_once(tmp_path):
    database = tmp_path / "w.duckdb"
    journal = Journal(database)
    rows, requests = answers()
    path = written(journal, rows, requests)
    assert path.parent == tmp_path / "w.duckdb.journal"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    kept = tmp_path / "copy.jsonl"
    shutil.copy(path, kept)
    with warehouse.connect(database) as conn:
        assert journal.restore(conn, "emulator", DAY) == (3, 2)
        assert journal.pending() == []
        shutil.copy(kept, path)  # as if a crash came between storing and deleting the file
        journal.restore(conn, "emulator", DAY)
        stored = conn.execute(
            "SELECT cohort, username, status, follower_count, display_name, is_verified, "
            "source, extra_fields FROM tiktok.user_info ORDER BY ALL"
        ).fetchall()
        ledger = conn.execute("SELECT count(*) FROM tiktok.api_requests").fetchall()
    assert stored == [
        ("c1", "alice", "ok", 2**40, "Ålice ✨", True, "emulator", '{"open_id": "x"}'),
        ("c1", "bob", "invalid_params", None, None, None, "emulator", None),
        ("c2", "alice", "ok", 2**40, "Ålice ✨", True, "emulator", '{"open_id": "x"}'),
    ]
    assert ledger == [(2,)]  # the second restore added no request twice


def test_a_line_cut_short_by_a_kill_costs_that_request_only(tmp_path):
    database = tmp_path / "w.duckdb"
    journal = Journal(database)
    rows, requests = answers()
    path = written(journal, rows, requests)
    with path.open("a") as handle:
        handle.write('{"kind": "exchange", "request": {"day": "2026-11-30", "coh')
    with warehouse.connect(database) as conn:
        assert journal.restore(conn, "emulator", DAY) == (3, 2)


def test_a_journal_is_read_back_only_once_its_writer_has_ended(tmp_path):
    """A live run's journal is its own: another run must not store (and delete) it."""
    database = tmp_path / "w.duckdb"
    journal = Journal(database)
    run = journal.open_run(DAY, "emulator")
    assert journal.pending() == []  # this process writes it still
    run.close()
    assert journal.pending() == [run.path]
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        theirs = run.path.with_name(run.path.name.replace(f"-{os.getpid()}-", f"-{child.pid}-"))
        run.path.rename(theirs)
        assert journal.pending() == []  # its writer (pid) is alive
    finally:
        child.communicate(b"")
    assert journal.pending() == [theirs]  # ended: the next run stores it


def test_a_journal_that_cannot_be_written_fails_before_any_request_naming_the_folder(tmp_path):
    folder = tmp_path / "journal"
    folder.write_text("a file where the folder should be")
    with pytest.raises(JournalError, match=f"cannot write the journal {folder}.*MB free"):
        Journal(tmp_path / "w.duckdb", folder).open_run(DAY, "emulator")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(JournalError, match="only it can write"):
        Journal(tmp_path / "w.duckdb", shared).open_run(DAY, "emulator")


def test_a_journal_of_another_warehouse_is_left_alone(tmp_path):
    rows, requests = answers()
    written(Journal(tmp_path / "other.duckdb", tmp_path / "journal"), rows, requests)
    mine = Journal(tmp_path / "w.duckdb", tmp_path / "journal")
    assert mine.pending() == []


@pytest.mark.parametrize(
    ("planted", "says"),
    [
        ("real_source", "come from 'open.tiktokapis.com'"),
        ("not_json", "Expecting value"),
        ("far_day", "far from the API's"),
        ("not_a_record", "not a journal record"),
        ("planted", "did not write (its signature does not match)"),
        ("bad_value", "Could not convert"),
    ],
)
def test_a_journal_file_that_is_not_ours_is_moved_aside_named_and_never_stored(
    tmp_path, planted, says
):
    database = tmp_path / "w.duckdb"
    journal = Journal(database)
    rows, requests = answers()
    source = "open.tiktokapis.com" if planted == "real_source" else "emulator"
    if planted == "far_day":  # a real journal, of a day long past
        far = date(2026, 10, 1)
        rows = [(far, c, r) for _, c, r in rows]
        requests = [(far, c, r) for _, c, r in requests]
    if planted == "bad_value":  # signed, yet a value no column takes: never a crash loop
        odd = replace(rows[0][2], fields={**rows[0][2].fields, "follower_count": "12,345"})
        rows = [(DAY, "c1", odd)]
    path = written(journal, rows, requests, source)
    if planted == "not_json":
        path.write_text(path.read_text() + "this is not json\n")
    elif planted == "not_a_record":
        path.write_text(path.read_text() + "[]\n")
    elif planted == "planted":  # a fake member with 999,999,999 followers, in a line of ours
        text = path.read_text()
        assert '"follower_count": 1099511627776' in text
        path.write_text(text.replace('"follower_count": 1099511627776', '"follower_count": 9'))
    warned = []
    with warehouse.connect(database) as conn:
        assert journal.restore(conn, "emulator", DAY, warned.append) == (0, 0)
        assert conn.execute("SELECT count(*) FROM tiktok.user_info").fetchall() == [(0,)]
        assert conn.execute("SELECT count(*) FROM tiktok.api_requests").fetchall() == [(0,)]
    [line] = warned
    assert says in line and str(path.with_suffix(".rejected")) in line
    assert journal.pending() == [] and path.with_suffix(".rejected").exists()


def test_a_journal_folder_others_can_write_is_not_read(tmp_path):
    journal = Journal(tmp_path / "w.duckdb")
    rows, requests = answers()
    path = written(journal, rows, requests)
    path.parent.chmod(0o777)  # someone opened it to everyone: not trusted any more
    try:
        assert journal.pending() == []
    finally:
        path.parent.chmod(0o700)
    assert journal.pending() == [path]
