"""Every member-day accounted for (tiktok.panel_days): a multi-day emulator run that produces
each status (cadence, a quota smaller than the panel, private and gone accounts, an outage day,
an interrupted run, refused credentials, a day not run), every count checked against an
independent recomputation from the stored answers and plans."""

import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import duckdb
import pandas as pd
import pytest

from research_pipeline import warehouse
from research_pipeline.cli import main
from research_pipeline.datasets import export_dataset
from research_pipeline.member_days import STATUSES
from research_pipeline.warehouse.panel_days import derive_panel_days
from research_pipeline_tests.helpers import find_usernames

DAYS = 7


@pytest.fixture
def seven_days(pipeline):
    """Seven API days of two cohorts: `panel` (cadence 1, 8 members, one goes private on day
    1 and one is deleted on day 6) and `slow` (cadence 3, 4 members)."""
    for name in ("private_share", "banned_share", "unknown_share"):
        setattr(pipeline.api.config, name, 0.0)
    users = find_usernames(pipeline.api, "active", 12)
    panel, slow = users[:8], users[8:]
    private, deleted = panel[0], panel[1]
    pipeline.write_cohort("panel", panel)
    pipeline.write_cohort("slow", slow)
    (pipeline.cohorts / "cohorts.toml").write_text("[slow]\ncadence_days = 3\n")
    start = pipeline.api.clock.today() - timedelta(days=DAYS - 1)
    day = [start + timedelta(days=n) for n in range(DAYS)]
    pipeline.api.config.lifecycle = {
        private: [[day[1].isoformat(), "private"]],
        deleted: [[day[6].isoformat(), "unknown"]],
    }
    results = {}

    def run(n, **settings):
        pipeline.configure(**{"daily_quota": None, **settings})
        pipeline.api.config.daily_quota = settings.get("daily_quota")
        pipeline.api.clock.set_date(day[n])
        results[n] = pipeline.run(["panel", "slow"], day=day[n])

    run(0, daily_quota=5)  # 12 due, 5 asked: the others deferred
    run(1)
    # day 2: not run at all
    pipeline.api.config.outage_until = datetime.combine(day[3], time(23, 59), UTC).isoformat()
    run(3)
    pipeline.api.config.outage_until = None
    pipeline.api.config.latency_seconds = 0.3
    run(4, run_deadline_seconds=0.2)  # stops asking before most of the day's members
    pipeline.api.config.latency_seconds = 0.0
    pipeline.api.config.scope_authorized = False
    run(5)
    pipeline.api.config.scope_authorized = True
    run(6)
    return pipeline, day, results, dict(panel=panel, slow=slow, private=private, deleted=deleted)


# The groups, written out here (not read from the code under test).
GROUP_OF = {
    "observed": "observed",
    "not_due": "design",
    "deferred": "quota",
    **{s: "account" for s in ("private", "not_found", "refused", "banned", "forgotten")},
    **{
        s: "infrastructure"
        for s in (
            "server_error", "other_error", "outage", "interrupted", "no_access", "not_run",
            "not_recorded",
        )
    },
}  # fmt: skip


def recompute(conn) -> dict[tuple, str]:
    """Each member-day's status from the stored tables, written again in Python: the day's
    answer, else the tombstone, else (a day no run recorded) due or not, else the plan."""
    members = conn.execute("SELECT * FROM tiktok.cohort_members").df()
    answers = {
        (r.snapshot_date, r.cohort, r.username): r
        for r in conn.execute("SELECT * FROM tiktok.user_info").df().itertuples()
    }
    finals = conn.execute(
        "SELECT username, snapshot_date FROM tiktok.user_info WHERE is_final"
    ).fetchall()
    plans = {
        (r.snapshot_date, r.cohort, r.username): r
        for r in conn.execute("SELECT * FROM tiktok.plan_decisions").df().itertuples()
    }
    since = {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT username, cohort, since FROM tiktok.tombstones").fetchall()}  # fmt: skip
    members["snapshot_date"] = members.snapshot_date.dt.date
    status = {}
    for cohort, rows in members.groupby("cohort"):
        recorded = sorted(set(rows.snapshot_date))
        day = recorded[0]
        while day <= recorded[-1]:
            as_of = max(r for r in recorded if r <= day)
            for user, cadence in rows[rows.snapshot_date == as_of][
                ["username", "cadence_days"]
            ].itertuples(index=False):
                key = (day, cohort, user)
                answer = answers.get((pd.Timestamp(day), cohort, user))
                if answer is not None:
                    kind = answer.error_kind
                    status[key] = (
                        "observed" if answer.status == "ok"
                        else kind if kind in ("private", "not_found", "refused", "banned")
                        else "deferred" if kind == "rate_limited"
                        else "server_error" if kind == "server_error"
                        else "other_error"
                    )  # fmt: skip
                elif (user, cohort) in since and day > since[(user, cohort)]:
                    status[key] = "forgotten"
                elif as_of != day:
                    answered = [d for u, d in finals if u == user and d <= day]
                    due = not answered or max(answered) <= day - timedelta(days=int(cadence))
                    status[key] = "not_run" if due else "not_due"
                else:
                    plan = plans.get((pd.Timestamp(day), cohort, user))
                    ending = {"quota": "deferred", "outage": "outage",
                              "credentials": "no_access"}  # fmt: skip
                    status[key] = (
                        "not_recorded" if plan is None
                        else plan.decision if plan.decision in ("deferred", "not_due")
                        else ending.get(plan.ended_because, "interrupted")
                    )  # fmt: skip
            day += timedelta(days=1)
    return status


def test_every_member_day_has_a_status_equal_to_a_recomputation_in_every_copy(
    seven_days, tmp_path, capsys
):
    pipeline, day, results, who = seven_days
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        stored = {
            (d, c, u): s
            for d, c, u, s in conn.execute(
                "SELECT snapshot_date, cohort, username, status FROM tiktok.panel_days"
            ).fetchall()
        }
        expected = recompute(conn)
        summaries = conn.execute(
            "SELECT snapshot_date, cohort, members_by_status FROM tiktok.cohort_summary"
        ).fetchall()
    # 1. The table: every member-day once, each status equal to the recomputation.
    assert len(stored) == len(expected) == 12 * DAYS
    assert stored == expected
    seen = set(stored.values())
    assert seen >= {
        "observed", "not_due", "deferred", "refused", "not_found", "forgotten",
        "server_error", "outage", "interrupted", "no_access", "not_run",
    }  # fmt: skip
    assert seen <= set(STATUSES)
    assert stored[(day[2], "panel", who["panel"][3])] == "not_run"  # nobody ran that day
    assert stored[(day[1], "panel", who["private"])] == "refused"  # the day it said so...
    assert stored[(day[6], "panel", who["private"])] == "forgotten"  # ...and after
    assert stored[(day[6], "panel", who["deleted"])] == "not_found"
    # 2. Reproducible: derived again from the stored answers and plans, the same table.
    with warehouse.connect(pipeline.database) as conn:
        derive_panel_days(conn, ["panel", "slow"], full=True)  # every day, from nothing
        again = dict(
            ((d, c, u), s)
            for d, c, u, s in conn.execute(
                "SELECT snapshot_date, cohort, username, status FROM tiktok.panel_days"
            ).fetchall()
        )
    assert again == stored
    # 3. The summaries count them; the UI shows the day's counts as partition metadata.
    by_day = Counter((d, c, s) for (d, c, _), s in stored.items())
    for snapshot_date, cohort, counts in summaries:
        for status, n in json.loads(counts).items():
            assert by_day[(snapshot_date, cohort, status)] == n
    # Every day's partition of every run that got that far, as the UI shows it.
    shown = {}
    for results_of_day in results.values():
        for event in results_of_day[0].get_asset_materialization_events():
            if event.asset_key.to_user_string() == "tiktok/panel_days":
                cohort, when = event.materialization.partition.split("|")
                shown[(when, cohort)] = {
                    k.removeprefix("members_"): v.value
                    for k, v in event.materialization.metadata.items()
                    if k.startswith("members_")
                }
    assert len(shown) == 2 * 5  # days 0, 1, 3, 4, 6 (2 not run, 5 refused), two cohorts
    for (when, cohort), counts in shown.items():
        expected_counts = {
            s: n for (d, c, s), n in by_day.items() if str(d) == when and c == cohort
        }
        assert counts == expected_counts, (when, cohort)
    # 4. The dataset: panel_days.parquet and its dictionary; METHODS' completeness equals
    # pandas on the exported file.
    out = tmp_path / "dataset"
    with warehouse.connect(pipeline.database, read_only=True) as conn:
        export_dataset(conn, "panel", out)
    files = pd.read_parquet(out / "panel_days.parquet")
    assert len(files) == 8 * DAYS
    groups = Counter(GROUP_OF[s] for s in files.status)
    methods = (out / "METHODS.md").read_text()
    total, observed = len(files), groups["observed"]
    assert f"Of the panel's {total:,} member-days, {observed:,} ({observed / total:.1%})" in methods
    for group, words in (
        ("design", "by design"), ("quota", "because the daily quota ran short"),
        ("account", "because of the account"), ("infrastructure", "because of the infrastructure"),
    ):  # fmt: skip
        assert f"{groups[group]:,} {words}" in methods, group
    dictionary = pd.read_csv(out / "data_dictionary.csv")
    meaning = dictionary[
        (dictionary.file == "panel_days.parquet") & (dictionary.column == "status")
    ]
    assert all(status in meaning.meaning.iloc[0] for status in STATUSES)
    # 5. A researcher's series in long form: values where observed, the status otherwise, read
    # as is by pandas and DuckDB; the forgotten accounts' days keep status and dates only.
    series = tmp_path / "panel.parquet"
    pipeline.use_environment()
    assert main(["export", "panel", "--cohort", "panel", "--out", str(series)]) == 0
    frame = pd.read_parquet(series)
    assert len(frame) == 8 * DAYS
    assert (
        frame.follower_count.notna().tolist()
        == (
            (frame.status == "observed") & ~frame.username.isin([who["private"], who["deleted"]])
        ).tolist()
    )
    read = duckdb.execute("SELECT count(*) FROM read_parquet(?)", [str(series)]).fetchall()
    assert read == [(8 * DAYS,)]
    with capsys.disabled():  # the closing note shows them
        print("\n" + methods.split("Of the panel's")[1].split(".")[0])
        print(Counter(stored.values()).most_common())
