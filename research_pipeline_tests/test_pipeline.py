"""The Dagster pipeline end to end: real instance, real DuckDB file, emulator over HTTP."""

import base64
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from research_pipeline.definitions import load_project_defs
from research_pipeline.defs.resources import CohortFolder
from research_pipeline.defs.tiktok.schedules import daily_snapshot_schedule
from research_pipeline.defs.tiktok.sensors import cohort_files_sensor
from research_pipeline.orchestration.runs import contiguous_blocks, run_snapshot
from research_pipeline_tests.helpers import find_usernames

# End to end: the pipeline through Dagster or the CLI (`make check` leaves these out).
pytestmark = pytest.mark.e2e


def failure_messages(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]


def test_every_member_ends_with_a_row_of_data_or_error(pipeline):
    active = find_usernames(pipeline.api, "active", 3)
    others = [find_usernames(pipeline.api, kind)[0] for kind in ("private", "banned", "unknown")]
    pipeline.write_cohort("mixed", active + others)
    [result] = pipeline.run(["mixed"])
    assert result.success
    rows = dict(pipeline.query("SELECT username, status FROM tiktok.user_info"))
    assert rows == {**{u: "ok" for u in active}, **{u: "invalid_params" for u in others}}
    messages = pipeline.query(
        "SELECT error_message, log_id FROM tiktok.user_info WHERE status <> 'ok' ORDER BY username"
    )
    assert all(message and log_id for message, log_id in messages)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {
        "tiktok/user_info",
        "tiktok/gone_accounts",
        "tiktok/follower_snapshots",
        "tiktok/engagement_snapshots",
        "tiktok/panel_days",
        "tiktok/cohort_summary",
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "unique_users": True,
        "counts_not_negative": True,
        "refreshed_within_cadence": True,
        "refreshed_within_terms": True,
        "plan_completed": True,
        "error_share_below_threshold": False,
    }
    kinds = dict(pipeline.query("SELECT username, error_kind FROM tiktok.user_info"))
    # The API gives no reason for a refusal: private and banned accounts are both "refused".
    assert [kinds[u] for u in others] == ["refused", "refused", "not_found"]
    assert {s for (s,) in pipeline.query("SELECT DISTINCT source FROM tiktok.user_info")} == {
        "emulator"
    }
    [ledger] = pipeline.query("SELECT count(*) FROM tiktok.api_requests")
    assert ledger[0] == pipeline.api.stats()["user_info_requests"] == 6
    summaries = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "tiktok/cohort_summary"
    ]
    # The day's summary did not exist when the forgetting pass ran: only the summary step
    # derives it (without the refused accounts' profiles), once, with its chart.
    assert [e.step_key for e in summaries] == ["tiktok__cohort_summary"]
    summary = summaries[-1]
    metadata = summary.materialization.metadata
    assert metadata["median_followers"].value > 0
    chart = Path(metadata["chart_file"].value)
    assert chart.parent == pipeline.database.parent / "charts"
    png = chart.read_bytes()
    assert png.startswith(b"\x89PNG")
    # The UI shows the same image in one click: inline in the Markdown metadata.
    assert f"(data:image/png;base64,{base64.b64encode(png).decode()})" in metadata["chart"].value
    user_info_metadata = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "tiktok/user_info"
    )
    numbers = user_info_metadata.materialization.metadata
    assert (numbers["ok"].value, numbers["errors"].value, numbers["requests_spent"].value) == (
        3,
        3,
        6,
    )


def test_rerun_resumes_without_requests_and_refetch_replaces_rows(pipeline):
    users = find_usernames(pipeline.api, "active", 5)
    pipeline.write_cohort("c1", users)
    assert pipeline.run(["c1"])[0].success
    assert pipeline.api.stats()["user_info_requests"] == 5
    assert pipeline.run(["c1"])[0].success
    assert pipeline.api.stats()["user_info_requests"] == 5  # nothing spent on stored users
    assert pipeline.run(["c1"], refetch=True)[0].success
    assert pipeline.api.stats()["user_info_requests"] == 10
    for table in ("user_info", "follower_snapshots", "engagement_snapshots"):
        [(rows, distinct)] = pipeline.query(
            f"SELECT count(*), count(DISTINCT username) FROM tiktok.{table}"  # noqa: S608
        )
        assert rows == distinct == 5
    assert pipeline.query("SELECT count(*) FROM tiktok.cohort_summary") == [(1,)]


def test_removed_member_rows_are_dropped_on_rematerialization(pipeline):
    users = find_usernames(pipeline.api, "active", 4)
    pipeline.write_cohort("c1", users)
    pipeline.run(["c1"])
    pipeline.write_cohort("c1", users[:3])
    assert pipeline.run(["c1"])[0].success
    assert {u for (u,) in pipeline.query("SELECT username FROM tiktok.user_info")} == set(users[:3])


def test_a_past_date_is_refused_without_spending_quota(pipeline):
    pipeline.write_cohort("c1", find_usernames(pipeline.api, "active", 2))
    [result] = pipeline.run(["c1"], day=pipeline.api.clock.today() - timedelta(days=1))
    assert not result.success
    assert "returns current values only" in failure_messages(result)[0]
    assert pipeline.api.stats()["user_info_requests"] == 0


def test_transient_errors_are_retried_by_dagster_for_the_failing_users_only(pipeline):
    users = find_usernames(pipeline.api, "active", 8)
    pipeline.write_cohort("c1", users)
    pipeline.configure(max_attempts=1)
    pipeline.api.config.error_rate = 0.4
    [result] = pipeline.run(["c1"])
    assert result.success
    stats = pipeline.api.stats()
    assert all(stats["by_username"][u].get("ok") == 1 for u in users)
    assert pipeline.query("SELECT count(*) FROM tiktok.user_info WHERE status = 'ok'") == [(8,)]


def test_derived_snapshots_over_three_days_with_a_member_missing_on_one(pipeline):
    a, b, c = find_usernames(pipeline.api, "active", 3)
    days = [pipeline.api.clock.today() - timedelta(days=n) for n in (2, 1, 0)]
    for day, members in zip(days, ([a, b, c], [a, c], [a, b, c]), strict=True):
        pipeline.api.clock.set_date(day)
        pipeline.write_cohort("c1", members)
        assert pipeline.run(["c1"], day=day)[0].success
    raw = {
        (d, u): (f, likes, v)
        for d, u, f, likes, v in pipeline.query(
            "SELECT snapshot_date, username, follower_count, likes_count, video_count "
            "FROM tiktok.user_info"
        )
    }
    derived = pipeline.query(
        "SELECT f.snapshot_date, f.username, f.previous_snapshot_date, f.follower_delta, "
        "f.follower_growth_per_day, e.likes_delta, e.likes_per_video "
        "FROM tiktok.follower_snapshots f JOIN tiktok.engagement_snapshots e "
        "USING (snapshot_date, cohort, username) WHERE snapshot_date = ? ORDER BY 2",
        [days[2]],
    )
    expected_previous = {a: days[1], b: days[0], c: days[1]}  # b was not in day 2's cohort
    for day, user, previous, delta, growth, likes_delta, likes_per_video in derived:
        assert previous == expected_previous[user]
        now, before = raw[(day, user)], raw[(previous, user)]
        assert delta == now[0] - before[0]
        assert growth == pytest.approx((now[0] - before[0]) / (day - previous).days)
        assert likes_delta == now[1] - before[1]
        assert likes_per_video == pytest.approx(now[1] / now[2])
    first_day = pipeline.query(
        "SELECT count(*) FROM tiktok.follower_snapshots WHERE snapshot_date = ? "
        "AND previous_snapshot_date IS NULL AND follower_delta IS NULL",
        [days[0]],
    )
    assert first_day == [(3,)]


def test_a_backfill_of_several_cohorts_is_one_run(pipeline):
    for n in range(4):
        pipeline.write_cohort(f"cohort{n}", find_usernames(pipeline.api, "active", 8)[n * 2 :][:2])
    results = pipeline.run([f"cohort{n}" for n in range(4)])
    assert len(results) == 1 and results[0].success
    partitions = {
        e.partition
        for e in results[0].get_asset_materialization_events()
        if e.asset_key.to_user_string() == "tiktok/cohort_summary"
    }
    today = pipeline.api.clock.today()
    assert partitions == {f"cohort{n}|{today}" for n in range(4)}
    for asset in pipeline.defs.resolve_all_asset_specs():
        policy = pipeline.defs.resolve_assets_def(asset.key).backfill_policy
        assert policy.policy_type.value == "SINGLE_RUN"


def test_non_neighbouring_cohorts_go_in_separate_runs():
    assert contiguous_blocks(["a", "c", "d"], ["a", "b", "c", "d", "e"]) == [["a"], ["c", "d"]]


def test_sensor_registers_new_cohort_files_once(pipeline):
    pipeline.write_cohort("fresh", ["alice"])
    (pipeline.cohorts / "Bad Name.txt").write_text("bob\n")
    sensor = pipeline.defs.resolve_sensor_def(cohort_files_sensor.name)
    resources = {"cohort_folder": CohortFolder(path=str(pipeline.cohorts))}
    context = build_sensor_context(instance=pipeline.instance, resources=resources)
    result = sensor(context)
    assert result.dynamic_partitions_requests == [AddDynamicPartitionsRequest("cohorts", ["fresh"])]
    pipeline.instance.add_dynamic_partitions("cohorts", ["fresh"])
    again = sensor(
        build_sensor_context(instance=pipeline.instance, resources=resources, cursor=result.cursor)
    )
    assert not again.dynamic_partitions_requests


def test_schedule_requests_one_run_for_the_days_plan_and_skips_when_nothing_is_due(pipeline):
    today = pipeline.api.clock.today()
    pipeline.write_cohort("small", find_usernames(pipeline.api, "active", 3))
    pipeline.write_cohort("large", find_usernames(pipeline.api, "active", 10))
    pipeline.instance.add_dynamic_partitions("cohorts", ["large", "small"])

    def tick():
        return schedule_tick(pipeline, today)

    pipeline.configure(daily_quota=5)
    [request] = tick().run_requests
    assert request.tags["dagster/asset_partition_range_start"] == f"large|{today}"
    assert request.tags["dagster/asset_partition_range_end"] == f"small|{today}"
    assert pipeline.run(["large", "small"])[0].success
    assert pipeline.api.stats()["user_info_requests"] == 5  # the plan, within the quota
    pipeline.configure(daily_quota=100)
    assert pipeline.run(["large", "small"])[0].success  # the other 8 are due: fetched now
    skipped = tick()
    assert not skipped.run_requests and "nothing to fetch" in skipped.skip_message


def schedule_tick(pipeline, day: date):
    """One tick of the daily schedule at 00:15 of `day`, with the resources the daemon gives."""
    needed = daily_snapshot_schedule.required_resource_keys
    context = build_schedule_context(
        instance=pipeline.instance,
        resources={k: v for k, v in pipeline.defs.resources.items() if k in needed},
        scheduled_execution_time=_midnight_plus(day),
        repository_def=pipeline.defs.get_repository_def(),
    )
    return daily_snapshot_schedule.evaluate_tick(context)


def _midnight_plus(day: date):
    from datetime import UTC, datetime

    return datetime(day.year, day.month, day.day, 0, 15, tzinfo=UTC)


def test_project_definitions_and_instance_config_load(tmp_path, monkeypatch):
    from dagster import Definitions as Defs

    with instance_for_test():  # loading reads the current instance's definitions state
        defs = load_project_defs()
        Defs.validate_loadable(defs)
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == {
        "tiktok/user_info",
        "tiktok/gone_accounts",
        "tiktok/follower_snapshots",
        "tiktok/engagement_snapshots",
        "tiktok/panel_days",
        "tiktok/cohort_summary",
    }
    repo = Path(__file__).resolve().parent.parent
    validate = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w",
         "workspace.yaml"],
        cwd=repo, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert (
        "Validation successful for code location research_pipeline"
        in validate.stdout + validate.stderr
    )
    (tmp_path / "dagster.yaml").write_text((repo / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "research_pipeline/duckdb_writer", "limit": 1} in limits


def test_the_code_location_holds_every_definition_under_defs(tmp_path):
    """definitions.py lists the definitions by name (cheaper than walking the folder, see its
    docstring); the walk `dg` does over `defs/` finds the same ones, so nothing added there is
    left out of the code location."""
    from dagster import load_from_defs_folder

    import research_pipeline.definitions as code_location

    with instance_for_test():
        listed = load_project_defs()
        walked = load_from_defs_folder(path_within_project=Path(code_location.__file__).parent)

    def names(defs):
        return {
            "assets": {k.to_user_string() for k in defs.resolve_all_asset_keys()},
            "checks": {str(k) for k in defs.resolve_asset_graph().asset_check_keys},
            "jobs": {job.name for job in defs.jobs or []},
            "schedules": {schedule.name for schedule in defs.schedules or []},
            "sensors": {sensor.name for sensor in defs.sensors or []},
            "resources": set(defs.resources or {}),
            "loggers": set(defs.loggers or {}),
        }

    assert names(listed) == names(walked)
    assert len(names(listed)["checks"]) == 6 and len(names(listed)["sensors"]) == 4


def test_every_setting_is_a_resource_field_a_run_can_override_as_the_launchpad_does(
    pipeline, monkeypatch
):
    """The environment fills the resources' fields when the code location loads; a run's
    resource config (the launchpad's) overrides them for that run only. Dagster replaces the
    whole resource config then (fields not given take their class defaults), so the override
    names the credentials' variables and the API as well."""
    users = find_usernames(pipeline.api, "active", 6)
    pipeline.write_cohort("c1", users)
    pipeline.use_environment()  # the code location's path: settings from the environment
    monkeypatch.setenv("TIKTOK_CONCURRENCY", "3")
    monkeypatch.setenv("RESEARCH_PIPELINE_MAX_DATA_AGE_DAYS", "9")
    resources = load_project_defs().resources
    api = resources["research_api"]
    assert (api.concurrency, api.daily_quota, api.base_url) == (3, None, pipeline.api.url)
    assert resources["research_terms"].max_data_age_days == 9
    config = {
        "client_key": {"env": "TIKTOK_CLIENT_KEY"},
        "client_secret": {"env": "TIKTOK_CLIENT_SECRET"},
        "base_url": pipeline.api.url,
        "rate_limit_per_minute": None,
        "daily_quota": 2,
    }
    override = {"resources": {"research_api": {"config": config}}}
    [result] = run_snapshot(
        pipeline.defs, pipeline.instance, pipeline.api.clock.today(), ["c1"], override
    )
    assert result.success
    assert pipeline.api.stats()["user_info_requests"] == 2  # the run's quota, not "off"
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["plan_completed"].passed  # the plan was made with the run's quota too


def test_a_user_in_several_cohorts_costs_one_request_per_day(pipeline):
    shared, only_a, only_b = find_usernames(pipeline.api, "active", 3)
    pipeline.write_cohort("a", [shared, only_a])
    pipeline.write_cohort("b", [shared, only_b])
    pipeline.write_cohort("c", [shared])
    assert pipeline.run(["a", "b"])[0].success  # one run: one stream of requests
    assert pipeline.run(["c"])[0].success  # a later run: copies today's answer
    stats = pipeline.api.stats()
    assert stats["user_info_requests"] == 3 and stats["by_username"][shared] == {"ok": 1}
    rows = pipeline.query(
        "SELECT cohort, follower_count, log_id FROM tiktok.user_info WHERE username = ? "
        "ORDER BY cohort",
        [shared],
    )
    assert [r[0] for r in rows] == ["a", "b", "c"] and len({r[1:] for r in rows}) == 1


def test_the_ui_gets_dagsters_standard_metadata_code_versions_and_a_blocking_check(pipeline):
    pipeline.write_cohort("c1", find_usernames(pipeline.api, "active", 3))
    [result] = pipeline.run(["c1"])
    assert result.success
    by_asset = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    for name in ("user_info", "follower_snapshots", "engagement_snapshots", "cohort_summary"):
        metadata = by_asset[f"tiktok/{name}"]
        assert metadata["dagster/table_name"].value == f"tiktok.{name}"
        assert metadata["dagster/row_count"].value == (1 if name == "cohort_summary" else 3)
        columns = [c.name for c in metadata["dagster/column_schema"].schema.columns]
        assert "snapshot_date" in columns and "cohort" in columns
    assert "quota_left_today" not in by_asset["tiktok/user_info"]  # no quota set: no fake -1
    specs = {s.key.to_user_string(): s for s in pipeline.defs.resolve_all_asset_specs()}
    assert all(specs[f"tiktok/{n}"].code_version for n in ("follower_snapshots", "cohort_summary"))
    assert specs["tiktok/user_info"].freshness_policy is not None
    raw = pipeline.defs.resolve_assets_def(AssetKey(["tiktok", "user_info"]))
    checks = {c.name: c for c in raw.check_specs}
    assert checks["unique_users"].blocking


def test_a_cohort_bigger_than_the_quota_is_covered_in_rotation_through_dagster_runs(pipeline):
    users = find_usernames(pipeline.api, "active", 120)
    pipeline.write_cohort("big", users)
    pipeline.configure(daily_quota=50)
    start = pipeline.api.clock.today() - timedelta(days=3)  # partitions end tomorrow: go back
    fetched_by_day = []
    for offset in range(4):
        day = start + timedelta(days=offset)
        pipeline.api.clock.set_date(day)
        [result] = pipeline.run(["big"], day=day)
        assert result.success
        fetched_by_day.append(
            {
                u
                for (u,) in pipeline.query(
                    "SELECT username FROM tiktok.user_info WHERE snapshot_date = ?", [day]
                )
            }
        )
    assert [len(f) for f in fetched_by_day[:3]] == [50, 50, 50]  # every day's quota, no more
    assert set().union(*fetched_by_day[:3]) == set(users)  # all 120 within ceil(120 / 50) days
    summary = pipeline.query(
        "SELECT members, fetched, never_fetched FROM tiktok.cohort_summary ORDER BY snapshot_date"
    )
    assert summary[:3] == [(120, 50, 70), (120, 50, 20), (120, 50, 0)]


def test_each_partition_of_a_two_cohort_run_carries_its_own_numbers(pipeline):
    big = find_usernames(pipeline.api, "active", 9) + find_usernames(pipeline.api, "private", 1)
    small = find_usernames(pipeline.api, "active", 12)[9:] + find_usernames(
        pipeline.api, "unknown", 2
    )
    pipeline.write_cohort("big", big)
    pipeline.write_cohort("small", small)
    [result] = pipeline.run(["big", "small"])  # one run, two partitions
    assert result.success
    by_partition: dict[tuple, dict] = {}
    for event in result.get_asset_materialization_events():
        key = (event.asset_key.to_user_string(), event.partition.split("|")[0])
        by_partition[key] = event.materialization.metadata
    raw_big, raw_small = (
        by_partition[("tiktok/user_info", "big")],
        by_partition[("tiktok/user_info", "small")],
    )
    assert (raw_big["rows"].value, raw_big["ok"].value, raw_big["errors"].value) == (10, 9, 1)
    assert (raw_small["rows"].value, raw_small["ok"].value, raw_small["errors"].value) == (5, 3, 2)
    assert raw_big["errors_by_kind"].value == {"refused": 1}
    assert raw_small["errors_by_kind"].value == {"not_found": 2}
    assert (raw_big["requests_spent"].value, raw_small["requests_spent"].value) == (10, 5)
    assert raw_big["run_requests_spent"].value == raw_small["run_requests_spent"].value == 15
    for cohort, members in (("big", big), ("small", small)):
        summary = by_partition[("tiktok/cohort_summary", cohort)]
        expected = pipeline.query(
            "SELECT median(follower_count), count(*) FROM tiktok.user_info "
            "WHERE cohort = ? AND status = 'ok'",
            [cohort],
        )[0]
        assert summary["median_followers"].value == pytest.approx(expected[0])
        assert summary["members"].value == len(members)
        assert Path(summary["chart_file"].value).name == f"{cohort}.png"
        assert f"![cohort {cohort}](data:image/png;base64," in summary["chart"].value
        followers = by_partition[("tiktok/follower_snapshots", cohort)]
        assert followers["dagster/row_count"].value == expected[1]


def test_the_cohort_sensor_warns_once_and_never_about_the_projects_own_files(tmp_path):
    """Before: the repository's own cohorts/.gitkeep was warned about at every tick (36 times
    in 25 minutes)."""
    from research_pipeline.defs.tiktok.sensors import misnamed_cohort_files

    for name in (".gitkeep", "cohorts.toml", "README.md", "Bad Name.txt", "ok.csv"):
        (tmp_path / name).write_text("x\n")
    assert misnamed_cohort_files(sorted(tmp_path.iterdir())) == ["Bad Name.txt"]


def test_the_schedule_plans_the_apis_day_and_queues_nothing_while_a_run_of_it_is_in_flight(
    pipeline,
):
    """Before: the schedule planned this machine's date (0 users planned with the emulator's
    clock a day ahead), and a tick while a run was in flight queued a redundant one."""
    from dagster import DagsterRun, DagsterRunStatus

    from research_pipeline.orchestration.runs import partition_range_tags

    machine_today = pipeline.api.clock.today()
    api_day = machine_today + timedelta(days=1)  # within RESEARCH_PIPELINE_DAYS_AHEAD (1)
    pipeline.api.clock.set_date(api_day)
    pipeline.write_cohort("small", find_usernames(pipeline.api, "active", 3))
    pipeline.instance.add_dynamic_partitions("cohorts", ["small"])

    def tick():
        return schedule_tick(pipeline, machine_today)

    [request] = tick().run_requests
    assert request.tags["dagster/asset_partition_range_start"] == f"small|{api_day}"
    pipeline.instance.add_run(
        DagsterRun(
            job_name="snapshot_job",
            run_id="00000000-0000-0000-0000-0000000000aa",
            status=DagsterRunStatus.STARTED,
            tags=partition_range_tags(api_day, ["small"]),
        )
    )
    skipped = tick()
    assert not skipped.run_requests and "in flight (00000000)" in skipped.skip_message
