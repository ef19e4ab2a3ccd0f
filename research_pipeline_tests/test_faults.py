"""Fault matrix: the real pipeline (Dagster runs, a DuckDB file, the emulator over HTTP) under
faults and bad input. Each scenario asserts on the stored data and on the emulator's counts."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, instance_for_test

# The one private name the tests use: the race below (another process's insert between Dagster's
# read and its insert, on one connection) cannot be staged through Dagster's public API.
from dagster._core.storage.event_log.schema import DynamicPartitionsTable

from research_pipeline import warehouse
from research_pipeline.cli.plan_cmd import current_plan
from research_pipeline.coordination import Coordination
from research_pipeline.defs.tiktok.schedules import todays_plan
from research_pipeline.errors import CohortError
from research_pipeline.orchestration.partitions import split_key
from research_pipeline.orchestration.runs import register_cohorts, run_snapshot
from research_pipeline.settings import PipelineSettings, requests_per_day
from research_pipeline.tiktok import ClientSettings
from research_pipeline.tiktok.breaker import PROBE_AFTER, TRIP_AFTER
from research_pipeline.tiktok.ramp import START
from research_pipeline_tests.helpers import (
    EMULATOR_SECRET,
    Pipeline,
    cli_process_environment,
    fill,
    find_usernames,
    ok_requests,
    snapshot_process,
    step_attempts,
)

# End to end: the pipeline through Dagster or the CLI (`make check` leaves these out).
pytestmark = pytest.mark.e2e


def failure_messages(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]


def assert_all_ok_once(pipeline: Pipeline, users: list[str]) -> dict:
    stats = pipeline.api.stats()
    assert [ok_requests(stats, u) for u in users] == [1] * len(users)  # no success fetched twice
    statuses = pipeline.query("SELECT status, count(*) FROM tiktok.user_info GROUP BY status")
    assert statuses == [("ok", len(users))]
    return stats


def test_fifteen_percent_server_errors_end_all_ok_without_refetching_a_success(pipeline):
    users = find_usernames(pipeline.api, "active", 60)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.error_rate = 0.15
    [result] = pipeline.run(["c1"])
    assert result.success
    stats = assert_all_ok_once(pipeline, users)
    assert stats["user_info_requests"] == 60 + stats["by_outcome"]["internal_error"]
    assert pipeline.query("SELECT count(*) FROM tiktok.api_requests") == [
        (stats["user_info_requests"],)
    ]


def test_a_429_burst_holds_every_sender_for_retry_after(pipeline):
    users = find_usernames(pipeline.api, "active", 30)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.update(
        {
            "burst_429_every": 12,
            "burst_429_length": 2,
            "retry_after_seconds": 2,
            "latency_seconds": 0.01,
        }
    )
    # A per-minute window longer than the Retry-After, as TikTok's (61 s against at most 61):
    # with the tests' 0.5 s window, a probe after the 2 s pause that met the burst's second
    # 429 (when no request in flight had taken it) read as the daily quota, and 9 of 30 users
    # were left for the next day (seen once on a loaded machine).
    pipeline.configure(concurrency=4, rate_limit_window_seconds=10)
    [result] = pipeline.run(["c1"])
    assert result.success
    assert_all_ok_once(pipeline, users)
    events = pipeline.api.stats(with_events=True)["events"]
    first_429 = next(t for t, _, outcome in events if outcome == "rate_limit_burst")
    early = [t for t, _, _ in events if first_429 < t < first_429 + 1.95]
    # Inside the delay only the requests already out: the 3 in flight beside the 429, and those
    # a sender had started before the client read the 429 (one seen 28 ms after it on a loaded
    # CI machine). Not holding sends the burst's 18 other users at once.
    assert len(early) <= 2 * 4, early
    assert any(t >= first_429 + 2 for t, _, _ in events)


def test_short_lived_tokens_are_renewed_once_per_expiry(pipeline):
    users = find_usernames(pipeline.api, "active", 40)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.update({"token_lifetime_seconds": 3, "latency_seconds": 0.2})
    pipeline.configure(concurrency=2)
    started = time.monotonic()
    [result] = pipeline.run(["c1"])
    elapsed = time.monotonic() - started
    assert result.success and elapsed > 3.5
    stats = assert_all_ok_once(pipeline, users)
    renewals = stats["token_requests"]["ok"]
    assert 2 <= renewals <= elapsed / 2.7 + 2  # renewed at 90% of its life, not per request
    assert stats["by_outcome"].get("access_token_invalid", 0) <= 1


def test_resets_and_timeouts_are_retried_and_bounded(pipeline):
    users = find_usernames(pipeline.api, "active", 30)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.update({"reset_rate": 0.15, "hang_rate": 0.1, "hang_seconds": 1.0})
    pipeline.configure(timeout_seconds=0.3, max_attempts=6)
    [result] = pipeline.run(["c1"])
    assert result.success
    assert pipeline.query("SELECT DISTINCT status FROM tiktok.user_info") == [("ok",)]
    stats = pipeline.api.stats()
    assert stats["by_outcome"]["connection_reset"] > 0 and stats["by_outcome"]["hang"] > 0
    for user in users:
        # A timed-out request may still have been served: only those may be asked again.
        outcomes = stats["by_username"][user]
        assert 1 <= outcomes["ok"] <= 1 + outcomes.get("hang", 0)


def test_a_user_that_always_fails_costs_its_daily_tries_across_runs_and_retries(pipeline):
    """Tries are counted per API day across runs and Dagster retries (the ledger): three runs
    the same day, each with step retries, cost the failing user 5 requests, not 3 x 4 x 2."""
    users = find_usernames(pipeline.api, "active", 12)
    bad = users[0]
    pipeline.write_cohort("c1", users)
    pipeline.api.config.failing_usernames = [bad]
    pipeline.configure(max_attempts=2, tries_per_user_per_day=5)
    for _ in range(3):
        [result] = pipeline.run(["c1"])
        assert result.success
    stats = pipeline.api.stats()
    assert stats["by_username"][bad] == {"outage": 5}
    assert all(ok_requests(stats, u) == 1 for u in users[1:])
    rows = pipeline.query("SELECT status, is_final FROM tiktok.user_info WHERE username = ?", [bad])
    assert rows == [("internal_error", False)]  # its last error row, left for tomorrow
    assert pipeline.query("SELECT count(*) FROM tiktok.api_requests WHERE username = ?", [bad]) == [
        (5,)
    ]
    # Out of tries today: neither the plan the CLI prints nor the schedule's has it (before:
    # the CLI's plan counted no tries and printed it as planned; the run then skipped it).
    day = pipeline.api.clock.today()
    env = {**os.environ, **pipeline.env}
    cli_plan = current_plan(day, PipelineSettings.from_env(env), requests_per_day(env))
    resources = pipeline.defs.resources
    schedule_plan = todays_plan(
        resources["research_api"], resources["cohort_folder"], resources["warehouse"], day
    )
    assert cli_plan.users == schedule_plan.users == []


def test_garbled_answers_are_transient_and_never_crash_the_run(pipeline):
    users = find_usernames(pipeline.api, "active", 40)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.malformed_rate = 0.3
    pipeline.configure(max_attempts=8)
    [result] = pipeline.run(["c1"])
    assert result.success
    stats = assert_all_ok_once(pipeline, users)
    kinds = {k for k in stats["by_outcome"] if k.startswith("malformed:")}
    assert kinds == {"malformed:bad_json", "malformed:no_error_object", "malformed:html_504"}


def test_quota_running_out_mid_plan_keeps_and_derives_the_rows_and_the_rest_come_next(pipeline):
    users = find_usernames(pipeline.api, "active", 10)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.daily_quota = 4
    [result] = pipeline.run(["c1"])
    # Not a failure: the answered rows are stored and derived, the rest stay due. One attempt.
    assert result.success and step_attempts(result) == 1
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["plan_completed"].passed
    why = checks["plan_completed"].metadata["why"].value
    assert "4 of 10 planned users answered" in why and "6 not reached stay due" in why
    stored = {u for (u,) in pipeline.query("SELECT username FROM tiktok.user_info")}
    assert len(stored) == 4
    assert pipeline.query("SELECT count(*) FROM tiktok.follower_snapshots") == [(4,)]
    # Told apart from the per-minute limit by behaviour (the 429 text is TikTok's generic one):
    # after the quota ran out, the requests in flight plus a few probes, one at a time.
    refused = pipeline.api.stats()["by_outcome"]["rate_limit_daily"]
    assert refused <= 8 + 6, refused
    ledger = dict(pipeline.query("SELECT status, count(*) FROM tiktok.api_requests GROUP BY 1"))
    assert ledger["ok"] == 4 and ledger["rate_limit_exceeded"] == refused  # kept apart
    pipeline.api.config.daily_quota = None  # the reset
    assert pipeline.run(["c1"])[0].success
    assert_all_ok_once(pipeline, users)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [("wrong_secret", "TIKTOK_CLIENT_SECRET"), ("no_scope", "scope_not_authorized")],
)
def test_refused_credentials_fail_fast_without_a_retry_storm(pipeline, fault, expected):
    pipeline.write_cohort("c1", find_usernames(pipeline.api, "active", 30))
    if fault == "wrong_secret":
        pipeline.configure(client_secret="not-the-secret-7Hq")
    else:
        pipeline.api.config.scope_authorized = False
    [result] = pipeline.run(["c1"])
    assert not result.success and step_attempts(result) == 1
    assert expected in failure_messages(result)[0]
    stats = pipeline.api.stats()
    assert sum(stats["token_requests"].values()) == 1
    assert stats["user_info_requests"] <= START  # the ramp's first requests, none after


def test_plain_http_to_another_host_is_refused_before_the_secret_is_sent(pipeline):
    pipeline.write_cohort("c1", ["alice"])
    pipeline.configure(base_url="http://example.org")
    [result] = pipeline.run(["c1"])
    assert not result.success and step_attempts(result) == 1
    assert "refusing plain-http" in failure_messages(result)[0]
    assert EMULATOR_SECRET not in failure_messages(result)[0]


def test_hostile_cohort_names_are_refused_before_any_sql(pipeline):
    hostile = "x'; DROP TABLE tiktok.user_info; --"
    pipeline.write_cohort("c1", ["alice"])
    assert pipeline.run(["c1"])[0].success
    with pytest.raises(CohortError, match="invalid cohort name"):
        run_snapshot(pipeline.defs, pipeline.instance, pipeline.api.clock.today(), [hostile])
    with pytest.raises(CohortError):
        split_key(f"{hostile}|2026-11-24")
    assert hostile not in pipeline.instance.get_dynamic_partitions("cohorts")
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info") == [(1,)]


def test_secret_and_tokens_never_reach_dagster_home_duckdb_or_metadata(
    tmp_path, emulator, monkeypatch
):
    cohorts, database = tmp_path / "cohorts", tmp_path / "data" / "w.duckdb"
    cohorts.mkdir()
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        pipeline = Pipeline(instance, emulator, cohorts, database, monkeypatch)
        users = find_usernames(emulator, "active", 5) + find_usernames(emulator, "unknown")
        pipeline.write_cohort("c1", users)
        emulator.config.error_rate = 0.3
        assert pipeline.run(["c1"])[0].success
        issued = list(emulator.state.tokens)
        emulator.state.tokens.clear()  # forces a renewal on the next run
        pipeline.write_cohort("c2", find_usernames(emulator, "active", 8)[5:])  # new users
        emulator.config.scope_authorized = False  # a failing run: exception text too
        assert not pipeline.run(["c2"])[0].success
        texts = [str(e) for r in instance.get_runs() for e in instance.all_logs(r.run_id)]
    tokens = issued + list(emulator.state.tokens) + [EMULATOR_SECRET]
    assert len(tokens) >= 3
    blobs = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    blobs += [t.encode() for t in texts]
    for secret in tokens:
        assert not any(secret.encode() in blob for blob in blobs), "a secret leaked"


def _stored(database: Path) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return {u for (u,) in conn.execute("SELECT username FROM tiktok.user_info").fetchall()}


def test_a_killed_run_resumes_without_losing_or_duplicating_rows(tmp_path, emulator):
    env = cli_process_environment(tmp_path, emulator)
    users = find_usernames(emulator, "active", 300)
    (tmp_path / "cohorts" / "big.txt").write_text("\n".join(users) + "\n")
    emulator.config.latency_seconds = 0.05
    process = snapshot_process(env, "big")
    deadline = time.monotonic() + 120
    while emulator.stats()["by_outcome"].get("ok", 0) < 120:  # wait for real progress
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stored_before = _stored(tmp_path / "data" / "research.duckdb")
    served_before = emulator.stats()["by_outcome"]["ok"]
    assert 0 < len(stored_before) < 300
    rerun = snapshot_process(env, "big")
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    database = tmp_path / "data" / "research.duckdb"
    with duckdb.connect(str(database), read_only=True) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT username) FROM tiktok.user_info"
        ).fetchone()
    assert total == distinct == 300
    stats = emulator.stats()
    assert all(ok_requests(stats, u) == 1 for u in stored_before)  # stored: never asked again
    # Only the requests in flight at the kill (up to 32: answered by the emulator, never
    # received by the dead process) are asked again: every answer received was in the journal
    # before anything else, and the rerun stored it first. Before the journal, answers waiting
    # for a save were lost too (59 asked again in the run, up to 32 + 3 x 32 allowed).
    asked_again = stats["by_outcome"]["ok"] - 300
    print(f"asked again after the kill: {asked_again}")
    assert asked_again <= ClientSettings.concurrency
    # Every request is in the ledger, those the killed run never recorded included (noted
    # before sending, counted by the rerun): 358 sent, 300 recorded before this.
    with duckdb.connect(str(database), read_only=True) as conn:
        ledger, unrecorded = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'unrecorded') "
            "FROM tiktok.api_requests"
        ).fetchall()[0]
    # A request noted just before the kill may never have left the process: the ledger may
    # count it (never fewer than were served: the quota left is never overstated), at most
    # the concurrency can be in flight.
    served = stats["user_info_requests"]
    assert served <= ledger <= served + ClientSettings.concurrency, (ledger, served)
    print(f"ledger {ledger} rows, {unrecorded} of them unrecorded by the killed run")
    print(
        f"killed after {served_before} answers, {len(stored_before)} stored; "
        f"{asked_again} users asked again"
    )


def test_two_runs_writing_duckdb_at_once_both_succeed(tmp_path, emulator):
    env = cli_process_environment(tmp_path, emulator)
    emulator.config.latency_seconds = 0.02
    a = find_usernames(emulator, "active", 240)
    (tmp_path / "cohorts" / "one.txt").write_text("\n".join(a[:120]) + "\n")
    (tmp_path / "cohorts" / "two.txt").write_text("\n".join(a[120:]) + "\n")
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.get_runs()  # create Dagster's SQLite storage once, as any earlier use would
    first, second = snapshot_process(env, "one"), snapshot_process(env, "two")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert not any("lock" in out.lower() for out in outputs)
    assert _stored(tmp_path / "data" / "research.duckdb") == set(a)


def test_two_processes_started_together_never_spend_more_than_the_quota(tmp_path, emulator):
    env = {
        **cli_process_environment(tmp_path, emulator),
        "TIKTOK_DAILY_QUOTA": "30",
    }  # no dagster.yaml there
    # Slow answers: the second process plans (on an empty ledger) while the first is fetching.
    emulator.config.latency_seconds = 1.5
    users = find_usernames(emulator, "active", 80)
    (tmp_path / "cohorts" / "one.txt").write_text("\n".join(users) + "\n")
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.get_runs()
    first, second = snapshot_process(env, "one"), snapshot_process(env, "one")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    (tmp_path / "outputs.txt").write_text("\n=====\n".join(outputs))  # kept for a post-mortem
    failures = [
        line
        for out in outputs
        for line in out.splitlines()
        if "FAILED" in line or "error" in line.lower() or line.startswith("  tiktok__")
    ]
    assert {first.returncode, second.returncode} <= {0, 3}, failures  # 3: plan not finished
    # Both planned the same 30 users on an empty ledger; the shared reservation beside the
    # warehouse let 30 requests through in all, not 60, and the claims beside it made each of
    # them a different user (14 of the 30 were users both had asked, before claims).
    stats = emulator.stats()
    assert stats["user_info_requests"] == 30
    asked = {u: sum(c.values()) for u, c in stats["by_username"].items() if sum(c.values())}
    assert len(asked) == 30 and set(asked.values()) == {1}, asked
    assert _stored(tmp_path / "data" / "research.duckdb") == set(asked)


def test_a_cohort_another_process_registers_at_the_same_moment_is_not_an_error(pipeline):
    """Seen in the test above: both processes read 'one' as unknown, the second insert hit the
    UNIQUE key and that snapshot exited 1. Here the other process's insert lands between our
    read and our insert, and ours fails on Dagster's own table as it did then."""
    instance, patch = pipeline.instance, pipeline.monkeypatch
    add = instance.add_dynamic_partitions
    raised = []

    def raced(name, keys):
        patch.setattr(instance, "add_dynamic_partitions", add)  # only the first add races
        add(name, ["one"])  # the other process
        try:
            with instance.event_log_storage.index_connection() as conn:  # ours, read before
                conn.execute(
                    DynamicPartitionsTable.insert(),
                    [{"partitions_def_name": name, "partition": key} for key in keys],
                )
        except Exception as exc:
            raised.append(str(exc))
            raise

    patch.setattr(instance, "add_dynamic_partitions", raced)
    register_cohorts(instance, ["one", "two"])
    assert "UNIQUE" in raised[0]  # the race happened
    assert sorted(instance.get_dynamic_partitions("cohorts")) == ["one", "two"]
    patch.setattr(instance, "add_dynamic_partitions", lambda name, keys: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a failure nobody else explains still shows
        register_cohorts(instance, ["three"])


def test_a_past_partition_stays_refused_even_after_a_failed_attempt(pipeline):
    pipeline.write_cohort("c1", ["alice"])
    yesterday = pipeline.api.clock.today() - timedelta(days=1)
    [result] = pipeline.run(["c1"], day=yesterday)
    assert not result.success and step_attempts(result) == 1
    assert pipeline.api.stats()["user_info_requests"] == 0


@pytest.fixture(autouse=True)
def report_requests(request, emulator):
    """Print what each scenario cost (`pytest -s` shows it): the numbers in the closing notes."""
    yield
    stats = emulator.stats()
    ok = sum(1 for c in stats["by_username"].values() if c.get("ok"))
    twice = sum(1 for c in stats["by_username"].values() if c.get("ok", 0) > 1)
    print(
        f"\n[{request.node.name}] requests={stats['user_info_requests']} "
        f"users_ok={ok} ok_twice={twice} tokens={stats['token_requests']} "
        f"outcomes={stats['by_outcome']}"
    )


def test_one_odd_value_is_that_users_error_row_never_a_failed_batch(pipeline):
    users = find_usernames(pipeline.api, "active", 20)
    odd = {
        users[0]: {"follower_count": "12345"},
        users[1]: {"likes_count": 1.5},
        users[2]: {"video_count": 2**70},
        users[3]: {"is_verified": "yes"},
        users[4]: {"follower_count": -5},  # stored as ok before: now the user's error row
    }
    pipeline.write_cohort("c1", users)
    pipeline.api.config.odd_values = odd
    [result] = pipeline.run(["c1"])
    assert result.success
    rows = dict(pipeline.query("SELECT username, status FROM tiktok.user_info"))
    assert len(rows) == 20 and [rows[u] for u in odd] == ["invalid_answer"] * 5
    assert sum(status == "ok" for status in rows.values()) == 15
    messages = dict(pipeline.query(
        "SELECT username, error_message FROM tiktok.user_info WHERE status = 'invalid_answer'"
    ))  # fmt: skip
    assert "follower_count='12345' is not a whole number" in messages[users[0]]
    assert "is out of range" in messages[users[2]]
    assert "follower_count=-5 is out of range" in messages[users[4]]
    stats = pipeline.api.stats()
    assert stats["user_info_requests"] == 20  # none asked twice, every request in the ledger
    assert pipeline.query("SELECT count(*) FROM tiktok.api_requests") == [(20,)]


def test_bodies_cut_short_are_per_request_transient_errors_not_a_cancelled_run(pipeline):
    users = find_usernames(pipeline.api, "active", 40)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.short_body_rate = 0.3
    pipeline.configure(max_attempts=8)
    [result] = pipeline.run(["c1"])
    assert result.success
    assert pipeline.api.stats()["by_outcome"]["short_body"] > 0
    assert_all_ok_once(pipeline, users)


def test_answers_dripped_a_byte_at_a_time_end_at_the_deadline_and_then_the_breaker(pipeline):
    """A byte every 50 ms keeps every read within its 30 s timeout and one answer ~10 s long;
    the deadline (1 s here) ends each attempt, and timeouts in a row are an outage: the asking
    stops after a handful of requests, every one of them in the ledger, the users stay due."""
    users = find_usernames(pipeline.api, "active", 6)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.drip_seconds = 0.05
    pipeline.configure(request_deadline_seconds=1, max_attempts=2)
    [result] = pipeline.run(["c1"])
    assert result.success and step_attempts(result) == 1  # an outage is not retried
    requests = pipeline.api.stats()["user_info_requests"]
    # Those in flight, the one retry sent while the streak was one (the breaker goes one at a
    # time from PROBE_AFTER = 2), then one probe: 8 when the six deadlines end apart (a loaded
    # machine), 6 or 7 when they end together.
    assert TRIP_AFTER <= requests <= len(users) + PROBE_AFTER
    assert pipeline.query("SELECT count(*) FROM tiktok.api_requests WHERE status = 'timeout'") == [
        (requests,)
    ]
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE is_final") == [(0,)]
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "plan_completed"]
    assert not check.passed and "server errors" in str(check.metadata["why"].value)


def test_a_run_past_its_deadline_asks_no_one_new_and_keeps_what_it_has(pipeline):
    users = find_usernames(pipeline.api, "active", 40)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.latency_seconds = 0.3  # the ramp: 4 in flight, then 8, 16...
    pipeline.configure(run_deadline_seconds=0.5)
    [result] = pipeline.run(["c1"])
    assert result.success  # the run worked; its plan did not finish (the check says so)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "plan_completed"]
    assert not check.passed and "deadline" in str(check.metadata["why"].value)
    stored = pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'")[0][0]
    requests = pipeline.api.stats()["user_info_requests"]
    assert 0 < stored == requests < 40  # every answer kept, nobody asked after the deadline
    # The rest stay due: the next run asks only them.
    pipeline.configure(run_deadline_seconds=7200)
    pipeline.run(["c1"])
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info")[0][0] == 40


def test_a_retry_after_of_a_day_ends_the_days_fetching_at_once_with_rows_kept(pipeline):
    users = find_usernames(pipeline.api, "active", 30)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.update(
        {"burst_429_every": 10, "burst_429_length": 1000, "retry_after_seconds": 86400}
    )
    [result] = pipeline.run(["c1"])  # returns: a run that waited the day out would hang here
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert "Retry-After" in checks["plan_completed"].metadata["why"].value
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'") == [(9,)]


def test_a_corrupt_warehouse_fails_at_once_with_its_path_and_spends_nothing(pipeline):
    pipeline.write_cohort("c1", find_usernames(pipeline.api, "active", 3))
    pipeline.database.parent.mkdir(parents=True, exist_ok=True)
    pipeline.database.write_bytes(b"this is not a DuckDB file" * 100)
    [result] = pipeline.run(["c1"])
    assert not result.success and step_attempts(result) == 1
    [message] = failure_messages(result)
    assert f"cannot open the warehouse {pipeline.database}" in message
    assert pipeline.api.stats()["user_info_requests"] == 0


def on_small_disk(pipeline: Pipeline, disk: Path, users: int) -> list[str]:
    """The pipeline's warehouse on `disk`, created (schema written) before the disk fills."""
    pipeline.database = disk / "research.duckdb"
    pipeline.configure()
    names = find_usernames(pipeline.api, "active", users)
    pipeline.write_cohort("c1", names)
    with warehouse.connect(pipeline.database) as conn:
        conn.execute("CHECKPOINT")
    return names


def test_a_full_disk_fails_at_once_with_its_cause_and_spends_nothing(pipeline, small_disk):
    on_small_disk(pipeline, small_disk, 300)
    fill(small_disk, 512 * 1024)
    [result] = pipeline.run(["c1"])
    assert not result.success and step_attempts(result) == 1  # no retries into a full disk
    [message] = failure_messages(result)
    assert "disk is full" in message or "No space left" in message, message
    assert "cannot rollback" not in message
    assert pipeline.api.stats()["user_info_requests"] == 0


def test_a_full_warehouse_costs_no_answer_its_journal_keeps_them_for_the_next_run(
    pipeline, small_disk, tmp_path
):
    """The warehouse's disk fills mid-run: the asking goes on (every answer is in the journal,
    on another disk), the step says where they are, and the next run stores them first."""
    users = on_small_disk(pipeline, small_disk, 300)
    side = tmp_path / "side"
    side.mkdir()
    coordination = Coordination.beside(pipeline.database).path
    os.symlink(side / coordination.name, coordination)  # quota reservations, claims: room
    pipeline.configure(journal_dir=side / "journal")
    filler = fill(small_disk, 256 * 1024)

    [failed] = pipeline.run(["c1"])
    assert not failed.success and step_attempts(failed) == 1
    [message] = failure_messages(failed)
    assert "kept in the journal" in message and str(side / "journal") in message, message
    assert pipeline.api.stats()["user_info_requests"] == len(users)  # nobody left unasked

    filler.unlink()
    [result] = pipeline.run(["c1"])
    assert result.success
    stats = pipeline.api.stats()
    assert [ok_requests(stats, u) for u in users] == [1] * len(users)  # nobody asked twice
    assert stats["user_info_requests"] == len(users)
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'") == [(300,)]
    assert pipeline.query("SELECT count(*) FROM tiktok.api_requests") == [(len(users),)]
    assert list((side / "journal").glob("*.jsonl")) == []  # stored, then deleted


def test_a_full_journal_disk_stops_the_asking_at_once_and_nothing_is_bought_again(
    pipeline, small_disk, tmp_path
):
    """The journal's disk fills mid-run: no one new is asked, the failure names the path and
    the free space, the answers received go to the warehouse, and after space is freed the
    next run asks only those never asked."""
    users = find_usernames(pipeline.api, "active", 300)
    pipeline.write_cohort("c1", users)
    pipeline.api.config.latency_seconds = 0.02
    pipeline.configure(journal_dir=small_disk / "journal")
    filler = fill(small_disk, 24 * 1024)  # room for the file and a few dozen lines

    [failed] = pipeline.run(["c1"])
    assert not failed.success and step_attempts(failed) == 1
    [message] = failure_messages(failed)
    assert f"cannot write the journal {small_disk / 'journal'}" in message, message
    assert "MB free" in message and "No space left" in message
    assert "every answer received is stored in the warehouse" in message
    sent = pipeline.api.stats()["user_info_requests"]
    assert 0 < sent < len(users)  # it stopped asking once the journal refused
    stored = pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'")[0][0]
    assert stored == sent  # the requests in flight too

    filler.unlink()
    [result] = pipeline.run(["c1"])
    assert result.success
    stats = pipeline.api.stats()
    assert [ok_requests(stats, u) for u in users] == [1] * len(users)  # nobody asked twice


@pytest.mark.parametrize("jump_days", [-1, 1])
def test_a_date_that_jumps_mid_run_relabels_nothing_and_stops_no_one(pipeline, jump_days):
    """Only the API's day turning at midnight moves answers to the next day; a Date a day off
    at noon (back or forward) is the API's clock jumping: every row stays under the run's day,
    and the plan is carried out."""
    users = find_usernames(pipeline.api, "active", 30)
    pipeline.write_cohort("c1", users)
    pipeline.configure(concurrency=1)
    day = pipeline.api.clock.today()
    pipeline.api.clock.set_date(day)  # noon: far from any midnight
    pipeline.api.config.update(
        {"date_jump_after_requests": 10, "date_jump_seconds": jump_days * 86400}
    )
    [result] = pipeline.run(["c1"], day=day)
    assert result.success
    assert pipeline.query("SELECT DISTINCT snapshot_date FROM tiktok.user_info") == [(day,)]
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'") == [(30,)]


def test_a_date_gone_back_to_a_day_already_fetched_asks_no_one(pipeline):
    users = find_usernames(pipeline.api, "active", 20)
    pipeline.write_cohort("c1", users[:10])
    day = pipeline.api.clock.today()
    [first] = pipeline.run(["c1"], day=day)
    assert first.success
    pipeline.write_cohort("c1", users)  # ten more members, due at once
    sent = pipeline.api.stats()["user_info_requests"]
    pipeline.api.clock.set_date(day - timedelta(days=1))  # the API's clock went back
    [back] = pipeline.run(["c1"], day=day - timedelta(days=1))
    assert not back.success and "clock went back" in failure_messages(back)[0]
    assert pipeline.api.stats()["user_info_requests"] == sent  # nobody asked


def test_the_quota_codes_reset_lag_is_counted_on_the_apis_clock_not_this_machines(pipeline):
    """The API's day began 5 minutes ago (whatever this machine's clock says): a quota code
    now may be yesterday's, seen to last hours after midnight. A later tick probes once and
    carries the day out once the quota is back; it does not give the day up."""
    users = find_usernames(pipeline.api, "active", 40)
    pipeline.write_cohort("c1", users)
    pipeline.configure(concurrency=1)
    now = pipeline.api.clock.now() + timedelta(days=1)
    day = now.date()
    pipeline.api.clock.set_time(datetime(day.year, day.month, day.day, 0, 5, tzinfo=UTC))
    pipeline.api.config.update({"daily_quota": 20, "quota_answer": "quota_code"})
    [first] = pipeline.run(["c1"], day=day)
    assert first.success
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'") == [(20,)]
    pipeline.api.config.daily_quota = None  # the late reset came: the lab's quota is back
    pipeline.api.clock.set_time(datetime(day.year, day.month, day.day, 0, 15, tzinfo=UTC))
    [later] = pipeline.run(["c1"], day=day)
    assert later.success  # before: with this machine past 04:00 UTC, nothing sent, day lost
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'") == [(40,)]


_READER = """
import sys, time, duckdb, requests
# A colleague's notebook, the obvious way: read-only, or (worse) duckdb.connect(path).
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[4] == "read_only")
print("open", flush=True)
stats = sys.argv[2] + "/emulator/stats"
while requests.get(stats, timeout=10).json()["user_info_requests"] < int(sys.argv[3]):
    time.sleep(0.05)  # holds the file until the day's users were all asked
conn.close()
"""


@pytest.mark.parametrize("mode", ["read_only", "read_write"])
def test_a_reader_holding_the_warehouse_costs_no_fetched_user(pipeline, mode):
    """A notebook holds the warehouse when the day's run starts and until every planned user
    was asked: the day is planned from a read-only view (the file itself beside a read-only
    reader, else the readers' copy published after the last run), asked in full into the
    journal, and stored once the reader lets go (before: 0 users fetched, the day lost)."""
    users = find_usernames(pipeline.api, "active", 60)
    pipeline.write_cohort("c1", users[:10])
    [first] = pipeline.run(["c1"])  # an earlier day's run: the file and its published copy
    assert first.success
    pipeline.write_cohort("c1", users)  # 50 new members, due at once
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(pipeline.database), pipeline.api.url, "60", mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        [result] = pipeline.run(["c1"])
    finally:
        reader.kill()
        reader.wait()
    assert result.success
    stats = pipeline.api.stats()
    assert stats["user_info_requests"] == 60 and all(ok_requests(stats, u) == 1 for u in users)
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'") == [(60,)]
    assert pipeline.query("SELECT count(*) FROM tiktok.cohort_members") == [(60,)]


def test_a_file_where_the_charts_folder_should_be_is_a_warning_never_a_failed_day(pipeline):
    """Before: every later run failed (a crash loop, the days lost)."""
    users = find_usernames(pipeline.api, "active", 5)
    pipeline.write_cohort("c1", users)
    pipeline.database.parent.mkdir(parents=True, exist_ok=True)
    (pipeline.database.parent / "charts").write_text("not a folder")
    [result] = pipeline.run(["c1"])
    assert result.success
    assert pipeline.query("SELECT count(*) FROM tiktok.cohort_summary") == [(1,)]
