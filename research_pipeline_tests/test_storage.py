"""Warehouse SQL against hand-computed values: deltas, rates, division by zero, the summary."""

import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from research_pipeline import warehouse as wh
from research_pipeline.tiktok.constants import COUNT_FIELDS
from research_pipeline.tiktok.models import Outcome, UserInfoResult
from research_pipeline.warehouse.schema import current_version

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 4)


def ok(username, followers, likes, videos, following=10):
    fields = {
        "follower_count": followers,
        "following_count": following,
        "likes_count": likes,
        "video_count": videos,
    }
    return UserInfoResult(username, Outcome.OK, "ok", datetime.now(UTC), fields=fields)


def private(username):
    return UserInfoResult(
        username,
        Outcome.USER_ERROR,
        "invalid_params",
        datetime.now(UTC),
        error_message=f"{username} is private",
        log_id="L1",
    )


@pytest.fixture
def warehouse(tmp_path):
    with wh.connect(tmp_path / "w.duckdb") as conn:
        yield _with_history(conn)


def _with_history(conn):
    history = {
        D1: [ok("a", 100, 1000, 10), ok("b", 50, 0, 0), ok("c", 10, 5, 1)],
        D2: [ok("a", 130, 1100, 11), private("c")],  # b left the cohort, c went private
        D3: [ok("a", 160, 1300, 12), ok("b", 0, 10, 0), ok("c", 20, 9, 2)],
    }
    for day, rows in history.items():
        wh.save_fetched(conn, [(day, "x", r) for r in rows], [])
        wh.finish_snapshots(conn, {(day, "x"): [r.username for r in rows]})
        for table in wh.DERIVED_TABLES:
            wh.derive(conn, table, [(day, "x")])
    return conn


def rows(conn, sql, params=None):
    return conn.execute(sql, params or []).fetchall()


def test_deltas_use_each_users_own_previous_snapshot(warehouse):
    got = rows(
        warehouse,
        "SELECT username, previous_snapshot_date, days_since_previous, "
        "follower_delta, follower_growth_per_day FROM tiktok.follower_snapshots "
        "WHERE snapshot_date = ? ORDER BY 1",
        [D3],
    )
    assert got == [
        ("a", D2, 1, 30, 30.0),
        ("b", D1, 3, -50, pytest.approx(-50 / 3)),  # absent on D2: back to D1
        ("c", D1, 3, 10, pytest.approx(10 / 3)),  # private on D2: no counts there
    ]
    assert rows(
        warehouse,
        "SELECT count(*) FROM tiktok.follower_snapshots "
        "WHERE snapshot_date = ? AND previous_snapshot_date IS NULL",
        [D1],
    ) == [(3,)]


def test_rates_are_null_not_errors_where_a_denominator_is_zero(warehouse):
    got = rows(
        warehouse,
        "SELECT username, likes_per_video, likes_per_follower, likes_delta, "
        "video_delta, likes_gained_per_day FROM tiktok.engagement_snapshots "
        "WHERE snapshot_date = ? ORDER BY 1",
        [D3],
    )
    assert got == [
        ("a", pytest.approx(1300 / 12), pytest.approx(1300 / 160), 200, 1, 200.0),
        ("b", None, None, 10, 0, pytest.approx(10 / 3)),  # 0 videos and 0 followers
        ("c", 4.5, 0.45, 4, 1, pytest.approx(4 / 3)),
    ]


def test_summary_counts_errors_by_code_and_medians(warehouse):
    got = rows(
        warehouse,
        "SELECT snapshot_date, users, ok, errors, errors_by_code, "
        "median_followers, total_followers, total_likes FROM tiktok.cohort_summary "
        "ORDER BY 1",
    )
    assert got == [
        (D1, 3, 3, 0, "{}", 50.0, 160, 1005),
        (D2, 2, 1, 1, '{"invalid_params":1}', 130.0, 130, 1100),
        (D3, 3, 3, 0, "{}", 20.0, 180, 1319),
    ]


def test_rewriting_a_partition_replaces_rows(warehouse):
    wh.save_fetched(warehouse, [(D3, "x", ok("a", 999, 1, 1))], [])
    assert rows(
        warehouse,
        "SELECT follower_count FROM tiktok.user_info WHERE snapshot_date = ? AND username = 'a'",
        [D3],
    ) == [(999,)]
    assert wh.derive(warehouse, "follower_snapshots", [(D3, "x")]) == {(D3, "x"): 3}
    assert rows(warehouse, "SELECT count(*) FROM tiktok.follower_snapshots") == [(7,)]


def test_hostile_values_are_data_not_sql(warehouse):
    name = "x'; DROP TABLE tiktok.user_info; --"
    wh.save_fetched(warehouse, [(D1, name, ok("a", 1, 1, 1))], [])
    assert wh.final_usernames(warehouse, [(D1, name)]) == {(D1, name): {"a"}}
    assert rows(warehouse, "SELECT count(*) FROM tiktok.user_info") == [(9,)]  # 8 + 1, none dropped


def test_asset_checks_fail_on_bad_data(warehouse):
    from research_pipeline.defs.tiktok.checks import check_user_info
    from research_pipeline.snapshot import Partition, SnapshotRun
    from research_pipeline.warehouse import panel

    def results(members=("a", "b", "c"), cadence=1):
        panel.record_members(warehouse, D3, {"x": members}, {"x": cadence})
        run = SnapshotRun([], planned_users=3, answered=3)
        checks = check_user_info(warehouse, [Partition(D3, "x", members)], run)
        return {r.check_name: r.passed for r in checks}

    assert results() == {
        "unique_users": True,
        "counts_not_negative": True,
        "refreshed_within_cadence": True,
        "refreshed_within_terms": True,
        "plan_completed": True,
        "error_share_below_threshold": True,
    }
    assert results(("a", "b", "c", "dora"))["refreshed_within_cadence"] is False  # never asked
    warehouse.execute("UPDATE tiktok.user_info SET follower_count = -1 WHERE username = 'a'")
    assert results()["counts_not_negative"] is False
    warehouse.execute(
        "INSERT INTO tiktok.user_info SELECT * FROM tiktok.user_info "
        "WHERE username = 'b' AND snapshot_date = ?",
        [D3],
    )
    assert results()["unique_users"] is False
    warehouse.execute(
        "UPDATE tiktok.user_info SET status = 'invalid_params' WHERE snapshot_date = ?", [D3]
    )
    assert results()["error_share_below_threshold"] is False


def test_deriving_many_partitions_at_once_equals_one_at_a_time(warehouse):
    for table in ("follower_snapshots", "engagement_snapshots", "cohort_summary"):
        one_by_one = rows(warehouse, f"SELECT * FROM tiktok.{table} ORDER BY ALL")  # noqa: S608
        written = wh.derive(warehouse, table, [(D1, "x"), (D2, "x"), (D3, "x")])
        assert sum(written.values()) == len(one_by_one)
        assert rows(warehouse, f"SELECT * FROM tiktok.{table} ORDER BY ALL") == one_by_one  # noqa: S608


def test_extra_fields_of_an_answer_are_kept_as_json_and_bio_url_has_its_column(tmp_path):
    result = UserInfoResult(
        "dora",
        Outcome.OK,
        "ok",
        datetime.now(UTC),
        fields={"follower_count": 3, "bio_url": "https://example.com/dora"},
        extra={"is_private": False, "open_id": "abc"},
    )
    with wh.connect(tmp_path / "w.duckdb") as conn:
        wh.save_fetched(conn, [(D1, "x", result)], [], "emulator")
        row = conn.execute(
            "SELECT bio_url, extra_fields->>'open_id', (extra_fields->'is_private')::BOOLEAN, "
            "source FROM tiktok.user_info"
        ).fetchall()
    assert row == [("https://example.com/dora", "abc", False, "emulator")]


@pytest.mark.parametrize("column", COUNT_FIELDS)
def test_every_count_column_is_stored_kept_and_checked_as_the_one_list_says(warehouse, column):
    """The count columns are listed once (tiktok.constants.COUNT_FIELDS); the tables and the
    SQL built or written from it agree: each is a BIGINT of the raw and kept answers, read by
    the answers' CTE, and a negative value in any of them fails counts_not_negative."""
    from research_pipeline.warehouse import answers, queries

    for table in ("user_info", "last_answers"):
        [(kind,)] = rows(
            warehouse,
            "SELECT data_type FROM duckdb_columns() WHERE schema_name = 'tiktok' "
            "AND table_name = ? AND column_name = ?",
            [table, column],
        )
        assert kind == "BIGINT", (table, column)
    assert answers.ANSWERS_CTE.count(column) == 2  # from the kept answers and from user_info
    members = {(D3, "x"): ["a", "b", "c"]}
    assert queries.raw_check_counts(warehouse, members).rows_with_negative_counts == 0
    warehouse.execute(f"UPDATE tiktok.user_info SET {column} = -1 WHERE username = 'b'")  # noqa: S608
    assert queries.raw_check_counts(warehouse, members).rows_with_negative_counts == 1


@pytest.mark.parametrize(
    ("table", "declared"),
    [
        ("user_info", "USER_INFO_TYPES"),
        ("api_requests", "REQUEST_TYPES"),
    ],
)
def test_the_types_rows_are_written_with_are_the_tables_own(warehouse, table, declared):
    """Rows reach SQL as typed lists (transactions.registered): the types the raw module
    declares for them are those of the schema, column for column."""
    from research_pipeline.warehouse import raw

    types = dict(
        rows(
            warehouse,
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'tiktok' "
            "AND table_name = ?",
            [table],
        )
    )
    assert {name: types[name] for name, _ in getattr(raw, declared)} == dict(getattr(raw, declared))


@pytest.mark.parametrize(
    "text", ['it\'s "quoted"', "two\nlines", "NUL\x00inside", "عربي 🎉", "", "x" * 5000]
)
def test_text_is_stored_as_the_api_sent_it(warehouse, text):
    """Profile text goes to DuckDB as list parameters, never spliced into SQL: quotes, new
    lines, NUL bytes and any script come back as they were sent."""
    answer = ok("textual", 1, 2, 3)
    answer.fields["bio_description"] = text
    wh.save_fetched(warehouse, [(D3, "x", answer)], [], "emulator")
    assert rows(
        warehouse,
        "SELECT bio_description FROM tiktok.user_info WHERE username = 'textual'",
    ) == [(text,)]


def test_sessions_of_two_warehouses_in_one_process_each_see_their_own_file(tmp_path):
    """Sessions share one DuckDB per process, each file attached while in use: a new file opened
    while another is attached gets its own tables, not the other's."""
    first, second = tmp_path / "first.duckdb", tmp_path / "second.duckdb"
    with wh.connect(first) as conn:
        conn.execute(
            "INSERT INTO tiktok.tombstones VALUES ('only_in_first', 'c1', '2026-12-01', "
            "'not_found', '2026-12-02 00:00:00')"
        )
        with wh.connect(second) as other:  # a new file, while the first is attached
            assert other.execute("SELECT count(*) FROM tiktok.tombstones").fetchall() == [(0,)]
            assert current_version(other) == wh.LATEST_VERSION
        with wh.connect(first) as again:  # a second session of an attached file shares it
            assert again.execute("SELECT username FROM tiktok.tombstones").fetchall() == [
                ("only_in_first",)
            ]
    # The last session ended: the file is detached, its lock free for another process.
    done = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
         str(first)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_every_table_is_in_the_registry_and_every_per_user_table_is_marked(tmp_path):
    """Forgetting, export, the dataset and derivation iterate the registry: a new table the
    registry misses (or one with a username column not marked per-user) fails here."""
    from research_pipeline.warehouse.registry import BY_NAME

    with wh.connect(tmp_path / "w.duckdb") as conn:
        rows = conn.execute(
            "SELECT t.table_name, list(c.column_name) FROM duckdb_tables() t "
            "JOIN duckdb_columns() c USING (database_name, schema_name, table_name) "
            "WHERE t.schema_name = 'tiktok' AND t.database_name = current_database() "
            "GROUP BY ALL"
        ).fetchall()
    columns = dict(rows)
    assert set(columns) == set(BY_NAME)
    assert {name for name, cols in columns.items() if "username" in cols} == {
        name for name, table in BY_NAME.items() if table.per_user
    }
