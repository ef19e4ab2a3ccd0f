"""The spill file: answers the warehouse could not take, stored later exactly once."""

import os
import shutil
from datetime import UTC, date, datetime

import pytest

from research_pipeline import warehouse
from research_pipeline.spill import AnswerSpill
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


def test_spilled_answers_are_stored_as_they_came_and_only_once(tmp_path):
    database = tmp_path / "w.duckdb"
    spill = AnswerSpill(database)
    rows, requests = answers()
    path = spill.write(rows, requests, "emulator")
    kept = tmp_path / "copy.jsonl"
    shutil.copy(path, kept)
    with warehouse.connect(database) as conn:
        assert spill.restore(conn, "emulator", DAY) == (3, 2)
        assert spill.pending() == []
        shutil.copy(kept, path)  # as if a crash came between storing and deleting the file
        spill.restore(conn, "emulator", DAY)
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


def test_a_spill_of_another_warehouse_is_left_alone(tmp_path):
    rows, requests = answers()
    AnswerSpill(tmp_path / "other.duckdb", tmp_path / "spill").write(rows, requests, "emulator")
    mine = AnswerSpill(tmp_path / "w.duckdb", tmp_path / "spill")
    assert mine.pending() == []


@pytest.mark.parametrize(
    ("planted", "says"),
    [
        ("real_source", "come from 'open.tiktokapis.com'"),
        ("not_json", "Expecting value"),
        ("far_day", "far from the API's"),
        ("not_a_record", "not a spill record"),
    ],
)
def test_a_spill_file_that_is_not_ours_is_moved_aside_named_and_never_stored(
    tmp_path, planted, says
):
    database = tmp_path / "w.duckdb"
    spill = AnswerSpill(database)
    rows, requests = answers()
    source = "open.tiktokapis.com" if planted == "real_source" else "emulator"
    path = spill.write(rows, requests, source)
    assert path.stat().st_mode & 0o777 == 0o600
    if planted == "not_json":
        path.write_text(path.read_text() + "this is not json\n")
    elif planted == "far_day":
        path.write_text(path.read_text().replace("2026-11-30", "2026-10-01"))
    elif planted == "not_a_record":
        path.write_text(path.read_text() + "[]\n")
    warned = []
    with warehouse.connect(database) as conn:
        assert spill.restore(conn, "emulator", DAY, warned.append) == (0, 0)
        assert conn.execute("SELECT count(*) FROM tiktok.user_info").fetchall() == [(0,)]
        assert conn.execute("SELECT count(*) FROM tiktok.api_requests").fetchall() == [(0,)]
    [line] = warned
    assert says in line and str(path.with_suffix(".rejected")) in line
    assert spill.pending() == [] and path.with_suffix(".rejected").exists()


def test_the_fallback_folder_is_this_users_own_and_refused_when_others_can_write_it(tmp_path):
    spill = AnswerSpill(tmp_path / "w.duckdb", tmp_path / "not_a_folder")
    (tmp_path / "not_a_folder").write_text("")  # the configured folder cannot be made (even as
    rows, requests = answers()  # root): the fallback takes the answers
    path = spill.write(rows, requests, "emulator")
    fallback = path.parent
    assert fallback.name.endswith(str(os.getuid())) and fallback.stat().st_mode & 0o077 == 0
    fallback.chmod(0o777)  # someone opened it to everyone: not trusted any more
    try:
        assert path not in spill.pending()
    finally:
        fallback.chmod(0o700)
        path.unlink()
