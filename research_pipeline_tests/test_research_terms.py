"""TikTok's research terms and provenance, on real parts: accounts the emulator's scripted
lifecycle turns private or deletes are forgotten everywhere (a tombstone stays), the warehouse
file keeps none of their bytes, every row says where it came from, the demo never writes where
real data lives, and a cohort exports as a citable dataset read back with pandas and DuckDB."""

import hashlib
import json
import secrets
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from research_pipeline import warehouse
from research_pipeline.charts import render_cohort_chart
from research_pipeline.datasets import export_dataset
from research_pipeline.errors import WarehouseError
from research_pipeline.orchestration.forgetting import COHORT_SUMMARY, summaries_to_derive_again
from research_pipeline.orchestration.names import SUMMARIES_AFTER_FORGETTING_JOB
from research_pipeline.tiktok.models import Outcome, UserInfoResult
from research_pipeline.warehouse import queries
from research_pipeline.warehouse.forget import (
    forget_gone_accounts,
    mark_rewrite_needed,
    rewrite_file,
    rewrite_pending,
)
from research_pipeline_tests.helpers import assert_figures_match_files, find_usernames

# End to end: the pipeline through Dagster or the CLI (`make check` leaves these out).
pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent


def run_days(pipeline, cohorts, days):
    start = pipeline.api.clock.today() - timedelta(days=days - 1)  # partitions end tomorrow
    for offset in range(days):
        day = start + timedelta(days=offset)
        pipeline.api.clock.set_date(day)
        [result] = pipeline.run(cohorts, day=day)
        assert result.success
    return start


def test_an_account_gone_private_is_forgotten_everywhere_and_leaves_a_tombstone(pipeline):
    users = find_usernames(pipeline.api, "active", 5)
    gone, stays = users[0], users[1:]
    pipeline.write_cohort("panel", users)
    start = pipeline.api.clock.today() - timedelta(days=3)  # four days, up to today
    pipeline.api.config.lifecycle = {gone: [[(start + timedelta(days=2)).isoformat(), "private"]]}
    exports = pipeline.database.parent / "exports"
    pipeline.api.clock.set_date(start)
    assert pipeline.run(["panel"], day=start)[0].success
    pipeline.api.clock.set_date(start + timedelta(days=1))
    assert pipeline.run(["panel"], day=start + timedelta(days=1))[0].success
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        name = conn.execute(
            "SELECT any_value(display_name) FROM tiktok.user_info WHERE username = ?", [gone]
        ).fetchall()[0][0]
        export_dataset(conn, "panel", exports / "panel-before")
    assert name
    day3 = start + timedelta(days=2)
    pipeline.api.clock.set_date(day3)
    [result] = pipeline.run(["panel"], day=day3)
    assert result.success
    rows = pipeline.query(
        "SELECT snapshot_date, status, display_name, bio_description, avatar_url, "
        "follower_count, forgotten_at IS NOT NULL FROM tiktok.user_info WHERE username = ? "
        "ORDER BY 1",
        [gone],
    )
    assert [r[1] for r in rows] == ["ok", "ok", "invalid_params"]  # the rows stay...
    assert all(r[2:6] == (None, None, None, None) and r[6] for r in rows)  # ...emptied
    assert pipeline.query(
        "SELECT count(*) FROM tiktok.follower_snapshots WHERE username = ?", [gone]
    ) == [(0,)]
    assert pipeline.query("SELECT username, cohort, since, kind FROM tiktok.tombstones") == [
        (gone, "panel", day3, "refused")
    ]
    # The others keep their data; the summary no longer counts the gone account.
    kept = pipeline.query(
        "SELECT count(*) FROM tiktok.user_info WHERE username IN (SELECT unnest(?)) "
        "AND display_name IS NOT NULL",
        [stays],
    )
    assert kept == [(len(stays) * 3,)]
    total = pipeline.query(
        "SELECT total_followers FROM tiktok.cohort_summary WHERE snapshot_date = ?", [start]
    )[0][0]
    expected = pipeline.query(
        "SELECT sum(follower_count) FROM tiktok.user_info WHERE snapshot_date = ?", [start]
    )[0][0]
    assert total == expected  # derived again without the gone account
    assert not (exports / "panel-before").exists()  # the project's own export withdrawn
    chart = (pipeline.database.parent / "charts" / "panel.png").read_bytes()
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        trajectories = queries.cohort_trajectories(conn, "panel", day3)
        panel = queries.panel_statuses(conn, "panel", day3)
    assert chart == render_cohort_chart("panel", trajectories, panel)  # the summaries without it
    assert (day3, gone, "refused") in panel  # the day it said so, under the curves
    stored = pipeline.database.read_bytes()
    assert name.encode() not in stored
    # Nor anywhere else we keep: the published copy, exports, charts, Dagster's home and runs.
    everywhere = [p for p in pipeline.database.parents[1].rglob("*") if p.is_file()]
    assert [p for p in everywhere if name.encode() in p.read_bytes()] == []
    events = [
        str(e) for r in pipeline.instance.get_runs() for e in pipeline.instance.all_logs(r.run_id)
    ]
    assert [e for e in events if name in e] == []
    materialized = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert materialized["tiktok/gone_accounts"]["accounts_forgotten_now"].value == 1
    # Idempotent: the next day's pass finds nothing more to remove (the account is not due).
    day4 = day3 + timedelta(days=1)
    pipeline.api.clock.set_date(day4)
    [again] = pipeline.run(["panel"], day=day4)
    forgotten = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in again.get_asset_materialization_events()
    }["tiktok/gone_accounts"]
    assert forgotten["accounts_forgotten_now"].value == 0 and forgotten["rows_redacted"].value == 0


def _answered_then_gone(
    conn,
    bio: str,
    message: str = "`username: dora` is private: API cannot return this user's information",
) -> None:
    """dora answers with `bio`, then is refused the next day (`message`); the bio checkpointed
    to the file. Compression is off, so the bytes can be searched for at all."""
    day = date(2026, 3, 1)
    conn.execute("SET force_compression = 'uncompressed'")
    fields = {"display_name": "Dora", "bio_description": bio, "follower_count": 7}
    ok = UserInfoResult("dora", Outcome.OK, "ok", datetime.now(UTC), fields=fields)
    gone = UserInfoResult(
        "dora", Outcome.USER_ERROR, "invalid_params", datetime.now(UTC), error_message=message
    )
    warehouse.save_fetched(conn, [(day, "x", ok)], [])
    warehouse.save_fetched(conn, [(day + timedelta(days=1), "x", gone)], [])
    conn.execute("CHECKPOINT")


def test_the_warehouse_file_keeps_no_bytes_of_what_was_forgotten(tmp_path):
    """DuckDB leaves updated and deleted values in freed blocks, even after CHECKPOINT and
    VACUUM; rewriting the file is what removes them. Compression is turned off so the bytes
    can be searched for at all (compressed, they may not appear even when present)."""
    path = tmp_path / "w.duckdb"
    marker = "Bio-" + secrets.token_hex(20)
    with warehouse.connect(path) as conn:
        _answered_then_gone(conn, marker)
        assert marker.encode() in path.read_bytes()  # the test can see the value
        report = forget_gone_accounts(conn)
        conn.execute("CHECKPOINT")
        conn.execute("VACUUM")
        conn.execute("CHECKPOINT")
        assert report.rows_redacted == 2 and report.changed
    assert marker.encode() in path.read_bytes()  # redacted, yet still in a freed block
    rewrite_file(path)
    assert marker.encode() not in path.read_bytes()
    with warehouse.connect(path, read_only=True) as conn:  # and the data is all there
        assert conn.execute(
            "SELECT status, bio_description FROM tiktok.user_info ORDER BY snapshot_date"
        ).fetchall() == [("ok", None), ("invalid_params", None)]
        assert conn.execute("SELECT count(*) FROM tiktok.tombstones").fetchall() == [(1,)]
    with warehouse.connect(path) as conn:
        again = forget_gone_accounts(conn)
    assert not again.changed and again.accounts == []


def test_a_gone_answer_that_held_no_value_is_forgotten_without_rewriting_the_file(tmp_path):
    """A private account's answer carries no value the API returned: marked forgotten (its
    tombstone written), it needs no rewrite of the file, which on a lab's warehouse is the
    whole file copied every day a gone account is re-checked. One with an earlier ok answer
    does."""
    day = date(2026, 3, 1)
    private = "`username: {0}` is private: API cannot return this user's information"
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        gone = UserInfoResult(
            "eve", Outcome.USER_ERROR, "invalid_params", datetime.now(UTC),
            error_message=private.format("eve"),
        )  # fmt: skip
        warehouse.save_fetched(conn, [(day, "x", gone)], [])
        first = forget_gone_accounts(conn)
        assert [name for name, _, _ in first.accounts] == ["eve"] and first.rows_redacted == 1
        assert first.rows_with_values_removed == 0 and not first.changed
        ok = UserInfoResult(
            "dora", Outcome.OK, "ok", datetime.now(UTC), fields={"follower_count": 7}
        )
        later = UserInfoResult(
            "dora", Outcome.USER_ERROR, "invalid_params", datetime.now(UTC),
            error_message=private.format("dora"),
        )  # fmt: skip
        warehouse.save_fetched(conn, [(day, "x", ok)], [])
        warehouse.save_fetched(conn, [(day + timedelta(days=1), "x", later)], [])
        second = forget_gone_accounts(conn)
        assert second.rows_with_values_removed == 1 and second.changed


def test_a_first_answer_already_gone_leaves_the_warehouse_file_unrewritten(pipeline):
    [private] = find_usernames(pipeline.api, "private", 1)
    pipeline.write_cohort("panel", [*find_usernames(pipeline.api, "active", 3), private])
    [result] = pipeline.run(["panel"])
    assert result.success
    forgotten = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }["tiktok/gone_accounts"]
    assert forgotten["accounts_forgotten_now"].value == 1
    assert forgotten["file_rewritten"].value is False
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        assert conn.execute("SELECT username FROM tiktok.tombstones").fetchall() == [(private,)]


def test_counts_of_gone_accounts_are_kept_only_when_the_setting_says_so(tmp_path):
    day = date(2026, 3, 1)
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        fields = {"display_name": "Eve", "follower_count": 70}
        ok = UserInfoResult("eve", Outcome.OK, "ok", datetime.now(UTC), fields=fields)
        banned = UserInfoResult(
            "eve", Outcome.USER_ERROR, "invalid_params", datetime.now(UTC),
            error_message="`username: eve` is banned",
        )  # fmt: skip
        warehouse.save_fetched(conn, [(day, "x", ok), (day + timedelta(days=1), "x", banned)], [])
        forget_gone_accounts(conn, keep_counts=True)
        assert conn.execute(
            "SELECT display_name, follower_count FROM tiktok.user_info WHERE status = 'ok'"
        ).fetchall() == [(None, 70)]
        back = UserInfoResult("eve", Outcome.OK, "ok", datetime.now(UTC), fields=fields)
        warehouse.save_fetched(conn, [(day + timedelta(days=2), "x", back)], [])
        report = forget_gone_accounts(conn)
        assert report.returned == 1  # answering again: no longer a tombstone
        assert conn.execute("SELECT count(*) FROM tiktok.tombstones").fetchall() == [(0,)]


def test_every_row_says_its_source_and_a_warehouse_refuses_to_mix_sources(pipeline):
    pipeline.write_cohort("c1", find_usernames(pipeline.api, "active", 2))
    assert pipeline.run(["c1"])[0].success
    assert pipeline.query("SELECT DISTINCT source FROM tiktok.user_info") == [("emulator",)]
    assert pipeline.query("SELECT DISTINCT source FROM tiktok.api_requests") == [("emulator",)]
    with warehouse.connect(pipeline.database) as conn:
        with pytest.raises(WarehouseError, match="refusing to add answers from open.tiktokapis"):
            warehouse.record_source(conn, "open.tiktokapis.com")
        warehouse.record_source(conn, "open.tiktokapis.com", allow_mixed=True)
        sources = conn.execute("SELECT source FROM tiktok.sources ORDER BY 1").fetchall()
    assert sources == [("emulator",), ("open.tiktokapis.com",)]


def test_the_demo_writes_only_under_demo_never_where_real_data_lives(tmp_path, monkeypatch):
    from research_pipeline.cli import demo_cmd, main

    project = tmp_path / "project"
    shutil.copytree(REPO / "examples", project / "examples")
    (project / "cohorts").mkdir()
    (project / "cohorts" / "my_study.txt").write_text("someone_real\n")  # the researcher's own
    shutil.copyfile(REPO / "dagster.yaml", project / "dagster.yaml")
    monkeypatch.setattr(demo_cmd, "project_dir", lambda: project)
    real_home, real_db = tmp_path / "real_home", tmp_path / "real" / "research.duckdb"
    real_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(real_home))
    monkeypatch.setenv("RESEARCH_PIPELINE_DUCKDB", str(real_db))
    assert main(["demo", "--days", "2"]) == 0
    assert not real_db.exists() and list(real_home.iterdir()) == []
    with duckdb.connect(str(project / "demo" / "research.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT DISTINCT source FROM tiktok.user_info").fetchall() == [
            ("emulator",)
        ]
    assert (project / "demo" / "dagster_home" / "dagster.yaml").exists()
    # The researcher's cohorts are neither asked nor touched; the samples live with the demo.
    with duckdb.connect(str(project / "demo" / "research.duckdb"), read_only=True) as conn:
        cohorts = {
            c for (c,) in conn.execute("SELECT DISTINCT cohort FROM tiktok.user_info").fetchall()
        }
        asked = {u for (u,) in conn.execute("SELECT username FROM tiktok.api_requests").fetchall()}
    assert cohorts == {"music_artists", "news_creators"} and "someone_real" not in asked
    assert [p.name for p in (project / "cohorts").iterdir()] == ["my_study.txt"]


def test_a_fresh_clone_has_no_cohorts_of_its_own():
    assert [p.name for p in (REPO / "cohorts").iterdir()] == [".gitkeep"] or not any(
        p.suffix in (".txt", ".csv") for p in (REPO / "cohorts").iterdir()
    )


def test_a_cohort_exports_as_a_citable_dataset_read_back_by_pandas_and_duckdb(pipeline, tmp_path):
    users = find_usernames(pipeline.api, "active", 6) + find_usernames(pipeline.api, "unknown", 1)
    pipeline.write_cohort("panel", users)
    start = run_days(pipeline, ["panel"], 3)
    out = tmp_path / "dataset"
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        manifest = export_dataset(conn, "panel", out)
        with pytest.raises(WarehouseError, match="no data for cohort 'nobody'"):
            export_dataset(conn, "nobody", tmp_path / "other")
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "thesis.tex").write_text("mine")
        with pytest.raises(WarehouseError, match="not empty"):
            export_dataset(conn, "panel", tmp_path / "busy")
    assert manifest["source"] == ["emulator"] and manifest["from_emulator"]
    assert (manifest["first_day"], manifest["last_day"]) == (start, start + timedelta(days=2))
    assert manifest["members"] == 7 and len(manifest["coverage"]) == 3
    assert manifest["errors_by_kind"] == {"not_found": 1}  # asked on day 1, then re-checked later
    assert manifest["unavailable"] == {"not_found": 1}
    assert (
        manifest["requests_spent"]
        == pipeline.query(
            "SELECT count(*) FROM tiktok.api_requests WHERE status <> 'rate_limit_exceeded'"
        )[0][0]
    )
    assert manifest["software"]["duckdb"] == duckdb.__version__
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    frame = pd.read_parquet(out / "user_info.parquet")  # pandas, with the project's pyarrow
    with duckdb.connect() as conn:
        back = conn.execute(
            "SELECT count(*), count(DISTINCT username) FROM read_parquet(?)",
            [str(out / "user_info.parquet")],
        ).fetchall()
    assert len(frame) == back[0][0] and back[0][1] == 7
    dictionary = pd.read_csv(out / "data_dictionary.csv")
    assert dictionary["meaning"].notna().all(), dictionary[dictionary["meaning"].isna()]
    assert set(dictionary["file"]) == {f["file"] for f in manifest["files"] if "rows" in f}
    methods = (out / "METHODS.md").read_text()
    assert methods == manifest["methods"] + "\n"
    assert "NOTE: these data come from research-pipeline's emulator" in methods
    assert "We followed 7 TikTok accounts" in methods
    assert "1 account (14.3%) was no longer available" in methods
    assert json.loads((out / "manifest.json").read_text())["cohort"] == "panel"


def test_coverage_words_mean_one_thing_gone_accounts_are_never_fresh(pipeline):
    live = find_usernames(pipeline.api, "active", 4)
    gone = find_usernames(pipeline.api, "unknown", 1) + find_usernames(pipeline.api, "private", 1)
    pipeline.write_cohort("panel", live + gone)
    days = [pipeline.api.clock.today() - timedelta(days=n) for n in (3, 0)]
    for day in days:
        pipeline.api.clock.set_date(day)
        assert pipeline.run(["panel"], day=day)[0].success
    [(members, fresh, stale, gone_count, never, max_age)] = pipeline.query(
        "SELECT members, fresh, stale, gone, never_fetched, max_age_days "
        "FROM tiktok.cohort_summary WHERE snapshot_date = ?",
        [days[1]],
    )
    # The gone accounts were last answered 3 days ago (re-checked every 7): counted apart.
    assert (members, fresh, stale, gone_count, never) == (6, 4, 0, 2, 0)
    assert max_age == 0  # over live members only


def test_an_export_never_overwrites_another_cohorts_dataset_and_partial_ones_are_withdrawn(
    pipeline, tmp_path
):
    from research_pipeline.datasets import PARTIAL_PREFIX, withdraw_exports

    users = find_usernames(pipeline.api, "active", 4)
    pipeline.write_cohort("one", users[:2])
    pipeline.write_cohort("two", users[2:])
    run_days(pipeline, ["one", "two"], 1)
    exports = tmp_path / "exports"
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        export_dataset(conn, "one", exports / "one")
        with pytest.raises(WarehouseError, match="holds the dataset of cohort 'one'"):
            export_dataset(conn, "two", exports / "one")
        export_dataset(conn, "one", exports / "one")  # its own earlier export: replaced
    assert json.loads((exports / "one" / "manifest.json").read_text())["cohort"] == "one"
    assert not list(exports.glob(f"{PARTIAL_PREFIX}*"))  # nothing half-written left behind
    # An export killed midway (no manifest yet) still holds profile text: the withdrawal of a
    # gone account removes it too, whoever it holds.
    partial = exports / f"{PARTIAL_PREFIX}two-x1"
    shutil.copytree(exports / "one", partial)
    (partial / "manifest.json").unlink()
    removed = withdraw_exports(exports, [users[0]])
    assert set(removed) == {exports / "one", partial} and not partial.exists()


def _warehouse_with_a_forgotten_bio(path, bio: str) -> None:
    """A bio answered, then the account gone and redacted, as a forgetting pass leaves it the
    moment it commits: a crash (SIGKILL, power cut) before the file rewrite."""
    with warehouse.connect(path) as conn:
        _answered_then_gone(conn, bio, "API cannot return this user's information")
        mark_rewrite_needed(path)
        assert forget_gone_accounts(conn).changed
        conn.execute("CHECKPOINT")


def test_a_forgetting_pass_killed_before_its_rewrite_is_finished_by_the_next_run(pipeline):
    bio = "Bio-" + secrets.token_hex(20)
    pipeline.database.parent.mkdir(parents=True)
    _warehouse_with_a_forgotten_bio(pipeline.database, bio)
    assert bio.encode() in pipeline.database.read_bytes()  # redacted, still in a freed block
    assert rewrite_pending(pipeline.database)
    pipeline.write_cohort("x", find_usernames(pipeline.api, "active", 1))
    [result] = pipeline.run(["x"])  # the next run: nothing new to forget, the rewrite is due
    assert result.success
    assert bio.encode() not in pipeline.database.read_bytes()
    assert not rewrite_pending(pipeline.database)
    assert pipeline.query("SELECT count(*) FROM tiktok.tombstones") == [(1,)]


def test_a_rewrite_that_fills_the_disk_leaves_the_old_file_whole_and_tries_again(small_disk):
    from research_pipeline_tests.helpers import fill

    path = small_disk / "w.duckdb"
    bio = "Bio-" + secrets.token_hex(20)
    _warehouse_with_a_forgotten_bio(path, bio)
    filler = fill(small_disk, leave_bytes=path.stat().st_size // 4)  # less than a copy needs
    with pytest.raises(WarehouseError, match=f"could not rewrite {path}"):
        rewrite_file(path)
    assert not path.with_name(path.name + ".rewrite").exists()  # the partial copy is gone
    assert rewrite_pending(path)  # and the next run will try again
    with warehouse.connect(path, read_only=True) as conn:  # the old file, whole
        assert conn.execute("SELECT count(*) FROM tiktok.user_info").fetchall() == [(2,)]
    filler.unlink()
    rewrite_file(path)
    assert bio.encode() not in path.read_bytes() and not rewrite_pending(path)


def test_no_profile_text_enters_dagsters_event_log(pipeline):
    users = find_usernames(pipeline.api, "active", 5)
    pipeline.write_cohort("panel", users)
    [result] = pipeline.run(["panel"])
    assert result.success
    texts = pipeline.query(
        "SELECT display_name, bio_description FROM tiktok.user_info WHERE status = 'ok'"
    )
    profile = [t for row in texts for t in row if t and len(t) > 3]
    assert len(profile) >= 5
    events = " ".join(str(e) for e in pipeline.instance.all_logs(result.run_id))
    assert [t for t in profile if t in events] == []  # previews show counts and usernames only
    assert users[0] in events


def test_a_declared_shortfall_does_not_fail_the_cadence_check_every_day(pipeline):
    """30 daily members on a budget of 10: the plan says the budget sustains every 3 days.
    The cadence check holds the members to that (and fails past it), not to a cadence the
    researcher was told cannot be kept; plan_completed passes when the plan was carried out."""
    for name in ("private_share", "banned_share", "unknown_share"):
        setattr(pipeline.api.config, name, 0.0)
    pipeline.write_cohort("daily", find_usernames(pipeline.api, "active", 30))
    pipeline.configure(daily_quota=10)
    start = pipeline.api.clock.today() - timedelta(days=5)
    results = []
    for offset in range(6):
        day = start + timedelta(days=offset)
        pipeline.api.clock.set_date(day)
        [result] = pipeline.run(["daily"], day=day)
        results.append({e.check_name: e for e in result.get_asset_check_evaluations()})
    last = results[-1]
    assert "3 days" in str(last["refreshed_within_cadence"].metadata["allowed_days"].value)
    assert last["refreshed_within_cadence"].passed  # every member within the 3 days sustained
    assert all(r["plan_completed"].passed for r in results)


def test_every_figure_of_a_dataset_equals_a_recomputation_from_its_own_files(pipeline, tmp_path):
    """Cohorts that share members, a shortfall (rotation) and an account that goes: the
    manifest and METHODS.md say what pandas finds in the exported Parquet files."""
    active = find_usernames(pipeline.api, "active", 10)
    gone = find_usernames(pipeline.api, "unknown", 1)
    pipeline.write_cohort("politicians", active[:6] + gone)
    pipeline.write_cohort("journalists", active[3:])  # 3 shared with politicians
    pipeline.configure(daily_quota=6)  # 11 unique users, 6 a day: members rotate
    run_days(pipeline, ["journalists", "politicians"], 3)
    out = tmp_path / "politicians"
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        manifest = export_dataset(conn, "politicians", out)
    assert_figures_match_files(out, manifest, other_cohort="journalists")


def _gone_metadata(result) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "tiktok/gone_accounts"
    ]
    return event.materialization.metadata


def test_forgetting_an_account_re_derives_every_past_summary_it_counted_in(pipeline):
    """In a rotating panel a member's latest answer counts in the summaries of the days after
    it; when the account goes, those past summaries must lose its counts too."""
    for name in ("private_share", "banned_share", "unknown_share"):
        setattr(pipeline.api.config, name, 0.0)
    users = find_usernames(pipeline.api, "active", 6)
    leaver = users[0]
    pipeline.write_cohort("panel", users)
    pipeline.configure(daily_quota=3)  # 6 members, 3 a day: each answered every other day
    start = pipeline.api.clock.today() - timedelta(days=4)
    pipeline.api.config.lifecycle = {leaver: [[(start + timedelta(days=3)).isoformat(), "private"]]}
    rederived, seen = [], set()
    for offset in range(5):
        day = start + timedelta(days=offset)
        pipeline.api.clock.set_date(day)
        [result] = pipeline.run(["panel"], day=day)
        assert result.success
        # Dagster's record says so: each past summary derived again is a materialization of
        # cohort_summary itself, in a run of its own job, launched right after the snapshot.
        records = pipeline.instance.fetch_materializations(COHORT_SUMMARY, 100).records
        for record in sorted(records, key=lambda r: r.storage_id):
            job = pipeline.instance.get_run_by_id(record.run_id).job_name
            if record.storage_id not in seen and job == SUMMARIES_AFTER_FORGETTING_JOB:
                rederived.append((offset, record.partition_key))
            seen.add(record.storage_id)
        assert "summaries_to_derive_again" in _gone_metadata(result)
    # The account went private on day 3, answered so that day: every past summary from its
    # last answer on (days 1 and 2) was derived again after that run, by cohort_summary's own
    # job; day 3's summary did not exist yet, and its own step derived it without the account.
    assert rederived == [(3, f"panel|{start + timedelta(days=d)}") for d in (1, 2)]
    assert summaries_to_derive_again(pipeline.instance)[0] == []  # nothing left to ask
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        summaries = conn.execute(
            "SELECT snapshot_date, total_followers FROM tiktok.cohort_summary ORDER BY 1"
        ).fetchall()
        # A recomputation without the forgotten account: each day, every other member's
        # latest ok answer on or before it.
        expected = conn.execute(
            """
            SELECT m.snapshot_date, sum(u.follower_count) FROM tiktok.cohort_members m
            JOIN LATERAL (SELECT follower_count FROM tiktok.user_info x
                          WHERE x.username = m.username AND x.snapshot_date <= m.snapshot_date
                            AND x.is_final ORDER BY x.snapshot_date DESC LIMIT 1) u ON true
            WHERE m.username <> ? GROUP BY 1 ORDER BY 1
            """,
            [leaver],
        ).fetchall()
    assert summaries == expected


def test_the_terms_check_covers_data_of_members_removed_from_their_cohort(pipeline):
    for name in ("private_share", "banned_share", "unknown_share"):
        setattr(pipeline.api.config, name, 0.0)
    users = find_usernames(pipeline.api, "active", 3)
    start = pipeline.api.clock.today() - timedelta(days=17)
    pipeline.api.clock.set_date(start)
    pipeline.write_cohort("panel", users)
    assert pipeline.run(["panel"], day=start)[0].success
    pipeline.write_cohort("panel", users[1:])  # users[0] removed: its data stays, ageing
    today = start + timedelta(days=17)
    pipeline.api.clock.set_date(today)
    [result] = pipeline.run(["panel"], day=today)
    [check] = [e for e in result.get_asset_check_evaluations()
               if e.check_name == "refreshed_within_terms"]  # fmt: skip
    assert not check.passed
    assert check.metadata["former_members_too_old"].value == 1
    assert f"{users[0]} (17 days)" in check.metadata["oldest"].value
    # The same run deleted that data: nobody refreshes it any more (a tombstone says so).
    assert pipeline.query(
        "SELECT display_name, bio_description, follower_count, forgotten_at IS NOT NULL "
        "FROM tiktok.user_info WHERE username = ?",
        [users[0]],
    ) == [(None, None, None, True)]
    assert pipeline.query("SELECT username, kind FROM tiktok.tombstones") == [(users[0], "expired")]
    assert not pipeline.query(
        "SELECT * FROM tiktok.follower_snapshots WHERE username = ?", [users[0]]
    )
    tomorrow = today + timedelta(days=1)
    pipeline.api.clock.set_date(tomorrow)
    [result] = pipeline.run(["panel"], day=tomorrow)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["refreshed_within_terms"]
    # Put back in the cohort and answered again, it is live again.
    pipeline.write_cohort("panel", users)
    [result] = pipeline.run(["panel"], day=tomorrow)
    assert result.success
    assert pipeline.query("SELECT count(*) FROM tiktok.tombstones") == [(0,)]


def test_a_former_members_data_is_deleted_the_day_it_reaches_the_allowed_age(pipeline):
    """Snapshots every day: the removed member's data goes on the day it reaches the allowed
    age (15 days; 3 here, for a short test), so no day's terms check ever finds it older."""
    for name in ("private_share", "banned_share", "unknown_share"):
        setattr(pipeline.api.config, name, 0.0)
    pipeline.configure(max_data_age_days=3)
    users = find_usernames(pipeline.api, "active", 2)
    start = pipeline.api.clock.today() - timedelta(days=4)
    pipeline.write_cohort("panel", users)
    pipeline.api.clock.set_date(start)
    assert pipeline.run(["panel"], day=start)[0].success
    pipeline.write_cohort("panel", users[1:])
    for offset in range(1, 5):
        day = start + timedelta(days=offset)
        pipeline.api.clock.set_date(day)
        [result] = pipeline.run(["panel"], day=day)
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["refreshed_within_terms"], day
        held = pipeline.query(
            "SELECT count(*) FROM tiktok.user_info WHERE username = ? AND follower_count "
            "IS NOT NULL",
            [users[0]],
        )
        assert held == [(1 if offset < 3 else 0,)], offset


def test_the_figures_hold_over_edits_a_cadence_change_and_an_account_that_comes_back(
    pipeline, tmp_path
):
    for name in ("private_share", "banned_share", "unknown_share"):
        setattr(pipeline.api.config, name, 0.0)
    active = find_usernames(pipeline.api, "active", 9)
    back = active[0]  # private on day 2, public again on day 4, re-checked a week later
    start = pipeline.api.clock.today() - timedelta(days=9)
    pipeline.api.config.lifecycle = {
        back: [[(start + timedelta(days=1)).isoformat(), "private"],
               [(start + timedelta(days=3)).isoformat(), "active"]]
    }  # fmt: skip
    pipeline.write_cohort("journalists", active[4:])
    pipeline.write_cohort("politicians", active[:6])  # 2 shared
    pipeline.configure(daily_quota=5)  # 9 users, 5 a day: rotation
    for offset in range(10):
        day = start + timedelta(days=offset)
        if offset == 4:
            pipeline.write_cohort("politicians", active[:5])  # one member removed
        if offset == 5:
            (pipeline.cohorts / "cohorts.toml").write_text("[politicians]\ncadence_days = 2\n")
        pipeline.api.clock.set_date(day)
        assert pipeline.run(["journalists", "politicians"], day=day)[0].success
    kinds = pipeline.query(
        "SELECT error_kind FROM tiktok.user_info WHERE username = ? ORDER BY snapshot_date",
        [back],
    )
    assert ("refused",) in kinds and kinds[-1] == (None,)  # gone, then back in the panel
    out = tmp_path / "politicians"
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        manifest = export_dataset(conn, "politicians", out)
    assert_figures_match_files(out, manifest, other_cohort="journalists")


def test_a_warehouse_reached_through_a_link_is_rewritten_at_its_target(tmp_path):
    """A lab keeps its data on another disk and links the warehouse's path there: the rewrite
    after forgetting must leave the link a link and the target without the forgotten values."""
    other_disk = tmp_path / "other"
    other_disk.mkdir()
    target, link = other_disk / "w.duckdb", tmp_path / "w.duckdb"
    marker = "Bio-" + secrets.token_hex(20)
    with warehouse.connect(target) as conn:
        _answered_then_gone(conn, marker)  # the bio on disk, then redacted: in a freed block
        forget_gone_accounts(conn)
        conn.execute("CHECKPOINT")
    link.symlink_to(target)
    assert marker.encode() in target.read_bytes()
    rewrite_file(link)
    assert link.is_symlink() and link.resolve() == target
    assert marker.encode() not in target.read_bytes()
    assert list(tmp_path.glob("w.duckdb.rewrite*")) == []


def test_runs_the_daemon_launched_have_their_past_summaries_derived_again_by_the_sensor(pipeline):
    """A snapshot run not launched by the CLI (the daemon's, the UI's) leaves the re-derivation
    to the `summaries_after_forgetting` sensor: it asks cohort_summary's own job for the past
    partitions that counted the forgotten account, and nothing once they are derived again."""
    from dagster import build_sensor_context

    from research_pipeline.defs.tiktok.sensors import summaries_after_forgetting
    from research_pipeline.orchestration.runs import derive_summaries_again

    for name in ("private_share", "banned_share", "unknown_share"):
        setattr(pipeline.api.config, name, 0.0)
    users = find_usernames(pipeline.api, "active", 4)
    pipeline.write_cohort("panel", users)
    pipeline.configure(daily_quota=2)  # each member answered every other day
    start = pipeline.api.clock.today() - timedelta(days=2)
    day2 = start + timedelta(days=2)
    for offset in (0, 1):
        pipeline.api.clock.set_date(start + timedelta(days=offset))
        [result] = pipeline.run(["panel"], day=start + timedelta(days=offset))
        assert result.success
    assert summaries_to_derive_again(pipeline.instance)[0] == []
    # One answered on the first day, asked again on the third: private by then.
    leaver = pipeline.query(
        "SELECT min(username) FROM tiktok.user_info WHERE snapshot_date = ?", [start]
    )[0][0]
    pipeline.api.config.lifecycle = {leaver: [[day2.isoformat(), "private"]]}
    pipeline.api.clock.set_date(day2)
    job = pipeline.defs.resolve_job_def("snapshot_job")  # as the daemon runs it: no follow-up
    assert job.execute_in_process(instance=pipeline.instance, partition_key=f"panel|{day2}").success
    asked = summaries_after_forgetting(build_sensor_context(instance=pipeline.instance))
    assert [r.partition_key for r in asked] == [f"panel|{start}", f"panel|{start + timedelta(1)}"]
    assert {r.job_name for r in asked} <= {None, SUMMARIES_AFTER_FORGETTING_JOB}
    derive_summaries_again(pipeline.defs, pipeline.instance, log=lambda line: None)
    after = summaries_after_forgetting(build_sensor_context(instance=pipeline.instance))
    assert "no past summary" in after.skip_message
