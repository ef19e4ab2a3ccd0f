"""Panels bigger than the quota, on real parts: the emulator over HTTP with its clock, a DuckDB
file in tmp_path, the planner and the snapshot layer the asset uses (no Dagster run per day, so
30 API days take seconds; test_pipeline.py runs the same code through Dagster)."""

import math
from datetime import date, timedelta

import pytest

from research_pipeline import warehouse
from research_pipeline.planner import TERMS_MAX_DAYS, CohortSpec, gone_recheck_days
from research_pipeline.snapshot import DailySnapshot
from research_pipeline.tiktok.error_kinds import USER_GONE_KINDS
from research_pipeline.warehouse import DERIVED_TABLES, derive
from research_pipeline_tests.helpers import client_settings

START = date(2026, 5, 1)


def overlapping_cohorts(scale: int = 10) -> list[CohortSpec]:
    """The issue's 2,500 / 800 / 300 users (200 shared, cadences 7 / 3 / 1), divided by
    `scale`; the quota is divided alike."""
    a = [f"creator{i}" for i in range(2500 // scale)]
    shared = a[: 200 // scale]
    b = [f"politician{i}" for i in range((800 - 200) // scale)] + shared
    c = [f"journalist{i}" for i in range(300 // scale)]
    return [
        CohortSpec("creators", a, 7),
        CohortSpec("politicians", b, 3),
        CohortSpec("press", c, 1),
    ]


class Panel:
    """Run API days one after another, as the daily schedule would."""

    def __init__(self, api, database, cohorts, quota):
        self.api, self.database, self.cohorts, self.quota = api, database, cohorts, quota
        self.days: list[dict] = []
        self.progress = None  # where the day's run draws its progress bar (None: a terminal)

    def session(self):
        return warehouse.connect(self.database)

    def run_day(self, day: date, *, collaborator_spent: int = 0) -> dict:
        self.api.clock.set_date(day)
        self.api.state.reset_stats()
        self.api.config.daily_quota = self.quota - collaborator_spent  # the lab's other work
        daily = DailySnapshot(
            client_settings(self.api, daily_quota=self.quota),
            self.cohorts,
            self.session,
            log=lambda _: None,
            progress=self.progress,
        )
        run = daily.run(day)
        plan, partitions = run.plan, run.partitions
        with self.session() as conn:
            for table in DERIVED_TABLES:
                derive(conn, table, [p.key for p in partitions])
        stats = self.api.stats()
        record = {"day": day, "plan": plan, "run": run, "stats": stats}
        self.days.append(record)
        return record


@pytest.fixture
def panel(emulator, tmp_path):
    return Panel(emulator, tmp_path / "w.duckdb", overlapping_cohorts(), quota=100)


@pytest.mark.e2e
def test_thirty_days_of_overlapping_cohorts_refresh_every_live_member_within_its_cadence(panel):
    for offset in range(30):
        panel.run_day(START + timedelta(days=offset))
    cadence = panel.days[-1]["plan"].cadence_of
    assert len(cadence) == 340
    for record in panel.days:
        stats, plan = record["stats"], record["plan"]
        by_user = stats["by_username"]
        assert stats["user_info_requests"] <= panel.quota  # never over the quota
        assert all(sum(c.values()) == 1 for c in by_user.values())  # nobody asked twice a day
        assert stats["user_info_requests"] >= 0.98 * min(panel.quota, plan.due + plan.due_gone)
    with warehouse.connect(panel.database, read_only=True) as conn:
        answers = conn.execute(
            "SELECT username, list(DISTINCT snapshot_date ORDER BY snapshot_date), "
            "arg_max(coalesce(error_kind, 'ok'), snapshot_date) "
            "FROM tiktok.user_info WHERE is_final GROUP BY username"
        ).fetchall()
    assert {u for u, *_ in answers} == set(cadence)  # none starved
    first_cycle_end = START + timedelta(days=max(cadence.values()) + 7)
    late = []
    for user, days, kind in answers:
        allowed = min(cadence[user], TERMS_MAX_DAYS)
        if kind in USER_GONE_KINDS:  # gone: re-checked, not refreshed
            allowed = gone_recheck_days(allowed)
        for before, after in zip(days, days[1:], strict=False):
            if after > first_cycle_end and (after - before).days > allowed:
                late.append((user, before, after))
        if kind == "ok":  # and nobody live is overdue at the end
            assert (panel.days[-1]["day"] - days[-1]).days < cadence[user]
    assert late == []


@pytest.mark.e2e
def test_infeasible_demand_keeps_every_gap_within_users_over_budget(emulator, tmp_path):
    users = [f"member{i}" for i in range(50)]  # demand 50 a day, budget 20: 2.5x
    panel = Panel(emulator, tmp_path / "w.duckdb", [CohortSpec("big", users, 1)], quota=20)
    emulator.config.private_share = emulator.config.banned_share = 0.0
    emulator.config.unknown_share = 0.0
    for offset in range(12):
        panel.run_day(START + timedelta(days=offset))
    bound = math.ceil(len(users) / panel.quota)
    with warehouse.connect(panel.database, read_only=True) as conn:
        gaps = conn.execute(
            "SELECT max(gap) FROM (SELECT snapshot_date - lag(snapshot_date) OVER "
            "(PARTITION BY username ORDER BY snapshot_date) AS gap FROM tiktok.user_info)"
        ).fetchall()[0][0]
        users_seen = conn.execute(
            "SELECT count(DISTINCT username) FROM tiktok.user_info"
        ).fetchall()
    assert gaps <= bound and users_seen == [(50,)]
    assert "INFEASIBLE" in panel.days[0]["plan"].summary()


# An independent formulation of the derived tables: window functions and ASOF joins over
# user_info, written apart from warehouse/sql/.
INDEPENDENT_FOLLOWERS = """
WITH ok_days AS (
    SELECT DISTINCT username, snapshot_date, follower_count FROM tiktok.user_info
    WHERE status = 'ok'
),
lagged AS (
    SELECT username, snapshot_date, follower_count,
           lag(snapshot_date) OVER w AS prev_date, lag(follower_count) OVER w AS prev_count
    FROM ok_days WINDOW w AS (PARTITION BY username ORDER BY snapshot_date)
)
SELECT u.snapshot_date, u.cohort, u.username, u.follower_count, l.prev_date,
       u.follower_count - l.prev_count,
       (u.follower_count - l.prev_count) / (u.snapshot_date - l.prev_date)
FROM tiktok.user_info u JOIN lagged l USING (username, snapshot_date)
WHERE u.status = 'ok'
ORDER BY ALL
"""
DERIVED_FOLLOWERS = """
SELECT snapshot_date, cohort, username, follower_count, previous_snapshot_date, follower_delta,
       follower_growth_per_day
FROM tiktok.follower_snapshots ORDER BY ALL
"""
INDEPENDENT_SUMMARY = """
WITH finals AS (
    SELECT DISTINCT username, snapshot_date, status, error_kind, follower_count, likes_count
    FROM tiktok.user_info WHERE is_final
),
latest AS (
    SELECT m.snapshot_date, m.cohort, m.username, m.cadence_days,
           f.snapshot_date AS last_day, f.status, f.error_kind, f.follower_count, f.likes_count
    FROM tiktok.cohort_members m ASOF LEFT JOIN finals f
      ON m.username = f.username AND m.snapshot_date >= f.snapshot_date
)
SELECT snapshot_date, cohort, count(*) AS members,
       count(*) FILTER (WHERE last_day IS NULL) AS never_fetched,
       sum(follower_count) FILTER (WHERE status = 'ok') AS total_followers,
       sum(likes_count) FILTER (WHERE status = 'ok') AS total_likes,
       max(snapshot_date - last_day) FILTER (WHERE error_kind IS NULL
           OR error_kind NOT IN ('not_found', 'refused', 'private', 'banned')) AS max_age_days
FROM latest GROUP BY ALL ORDER BY ALL
"""
DERIVED_SUMMARY = """
SELECT snapshot_date, cohort, members, never_fetched, total_followers, total_likes, max_age_days
FROM tiktok.cohort_summary ORDER BY ALL
"""


@pytest.mark.e2e
def test_derived_tables_match_an_independent_sql_across_a_skipped_and_a_partial_day(panel):
    for offset in range(12):
        if offset == 6:
            continue  # a day not fetched at all (lost for good)
        record = panel.run_day(
            START + timedelta(days=offset), collaborator_spent=60 * (offset == 9)
        )
        if offset == 9:  # a partial day: a collaborator spent most of the quota first
            assert (
                record["run"].quota_message
                and record["run"].answered < record["plan"].users.__len__()
            )
    with warehouse.connect(panel.database, read_only=True) as conn:
        derived = conn.execute(DERIVED_FOLLOWERS).fetchall()
        independent = conn.execute(INDEPENDENT_FOLLOWERS).fetchall()
        assert len(derived) > 1000
        assert [r[:6] for r in derived] == [r[:6] for r in independent]
        for mine, theirs in zip(derived, independent, strict=True):
            assert mine[6] == pytest.approx(theirs[6])
        across_gaps = conn.execute(
            "SELECT count(*) FROM tiktok.follower_snapshots WHERE days_since_previous > 1"
        ).fetchall()[0][0]
        assert across_gaps > 100  # rotation and the skipped day: deltas span several days
        assert (
            conn.execute(DERIVED_SUMMARY).fetchall() == conn.execute(INDEPENDENT_SUMMARY).fetchall()
        )
        partial = START + timedelta(days=9)
        rows = conn.execute(
            "SELECT count(*) FROM tiktok.follower_snapshots WHERE snapshot_date = ?", [partial]
        ).fetchall()[0][0]
        assert rows > 0  # every paid-for answer of the partial day is derived


def test_a_run_crossing_midnight_at_the_api_dates_each_answer_by_its_own_day(panel):
    day = START
    panel.api.config.midnight_after_requests = 12
    record = panel.run_day(day)
    run = record["run"]
    assert run.new_day == day + timedelta(days=1) and run.new_day_answers >= 1
    with warehouse.connect(panel.database, read_only=True) as conn:
        by_day = dict(
            conn.execute(
                "SELECT snapshot_date, count(DISTINCT username) FROM tiktok.user_info GROUP BY 1"
            ).fetchall()
        )
        stored = {u for (u,) in conn.execute("SELECT username FROM tiktok.user_info").fetchall()}
    answered = {u for u, c in record["stats"]["by_username"].items() if c.get("ok")}
    assert answered <= stored  # no paid-for answer lost
    # At most the 12 served before midnight are under the old day; every later one under the
    # new day (how many were in flight when the day changed depends on timing).
    assert by_day[day] <= 12
    assert by_day[day + timedelta(days=1)] == run.new_day_answers >= 1
    assert sum(by_day.values()) == run.answered  # each answer once, under its own day
    # The new day's plan counts what was already answered that day: nobody asked twice.
    panel.api.config.midnight_after_requests = None
    panel.run_day(day + timedelta(days=1))
    with warehouse.connect(panel.database, read_only=True) as conn:
        twice = conn.execute(
            "SELECT count(*) FROM (SELECT username FROM tiktok.api_requests "
            "WHERE snapshot_date = ? AND status = 'ok' GROUP BY username HAVING count(*) > 1)",
            [day + timedelta(days=1)],
        ).fetchall()
    assert twice == [(0,)]


def test_fetching_draws_a_progress_bar_with_rate_time_left_and_quota(panel):
    import io

    panel.progress = io.StringIO()
    day = panel.api.clock.today()
    record = panel.run_day(day)
    planned = record["run"].planned_users
    drawn = panel.progress.getvalue().replace("\r", "\n").splitlines()
    final = [line for line in drawn if f"{planned}/{planned}" in line]
    assert planned == 100 and final, drawn[-3:]
    assert "user/s" in final[-1] and "quota left 0" in final[-1]


def test_a_quota_short_mid_stream_answers_exactly_the_plans_first_users(emulator, tmp_path):
    """Cohorts named so that their order is not the priority order: the fetch follows the plan
    (most overdue first, across cohorts), so a shortfall cuts the least overdue."""
    for name in ("private_share", "banned_share", "unknown_share"):
        setattr(emulator.config, name, 0.0)
    cohorts = [
        CohortSpec("a_weekly", [f"w{i}" for i in range(40)], 7),
        CohortSpec("b_three_day", [f"t{i}" for i in range(40)], 3),
        CohortSpec("c_daily", [f"d{i}" for i in range(40)], 1),
    ]
    database = tmp_path / "w.duckdb"
    day0 = START
    emulator.clock.set_date(day0)
    DailySnapshot(client_settings(emulator), cohorts, lambda: warehouse.connect(database),
                  log=lambda _: None).run(day0)  # fmt: skip
    day = day0 + timedelta(days=3)  # daily 2 days overdue, 3-day at its deadline, weekly early
    emulator.clock.set_date(day)
    emulator.state.reset_stats()
    emulator.config.daily_quota = 60  # a colleague spent the rest: the client does not know
    daily = DailySnapshot(
        client_settings(emulator, concurrency=1),
        cohorts,
        lambda: warehouse.connect(database),
        log=lambda _: None,
    )
    run = daily.run(day)
    served = [u for _, u, outcome in emulator.stats(with_events=True)["events"] if outcome == "ok"]
    assert run.quota_message and len(served) == 60
    assert served == run.plan.users[:60]  # the plan's order, across cohorts
    assert {u[0] for u in served} == {"d", "t"}  # the daily cohort first, no early weekly ask
