"""The planner alone: the rules that decide each day's requests, simulated over many days."""

import math
from datetime import date, timedelta

from research_pipeline.planner import (
    TERMS_MAX_DAYS,
    CohortSpec,
    LastAnswer,
    gone_recheck_days,
    plan_day,
)
from research_pipeline.settings import daily_budget

DAY0 = date(2026, 3, 1)


def simulate(cohorts, days, quota, gone=frozenset(), start_history=None):
    """Plan every day and answer every planned user (`gone` ones as private). Returns the plans
    and each user's answer days."""
    history = dict(start_history or {})
    answered: dict[str, list[date]] = {}
    plans = []
    for offset in range(days):
        day = DAY0 + timedelta(days=offset)
        plan = plan_day(cohorts, history, day, daily_quota=quota)
        plans.append(plan)
        for user in plan.users:
            history[user] = LastAnswer(day, "private" if user in gone else "ok")
            answered.setdefault(user, []).append(day)
    return plans, answered


def gaps(days: list[date]) -> list[int]:
    return [(b - a).days for a, b in zip(days, days[1:], strict=False)]


def panel(sizes=(250, 80, 30), cadences=(7, 3, 1), shared=20):
    a = [f"a{i}" for i in range(sizes[0])]
    b = [f"b{i}" for i in range(sizes[1] - shared)] + a[:shared]  # 20 users in both
    c = [f"c{i}" for i in range(sizes[2])]
    return [
        CohortSpec("a", a, cadences[0]),
        CohortSpec("b", b, cadences[1]),
        CohortSpec("c", c, cadences[2]),
    ]


def test_a_user_in_several_cohorts_is_one_request_at_the_shortest_cadence():
    cohorts = [CohortSpec("weekly", ["x", "y"], 7), CohortSpec("daily", ["x"], 1)]
    plan = plan_day(cohorts, {}, DAY0, daily_quota=None)
    assert sorted(plan.users) == ["x", "y"] and plan.cadence_of == {"x": 1, "y": 7}
    assert plan.cohort_members == {"weekly": ["x", "y"], "daily": ["x"]}
    answered = {"x": LastAnswer(DAY0), "y": LastAnswer(DAY0)}
    # Answered today (for any cohort): not asked again, but still part of each cohort's rows.
    again = plan_day(cohorts, answered, DAY0, daily_quota=None)
    assert again.users == [] and again.cohort_members == {"weekly": ["x", "y"], "daily": ["x"]}
    asked = {"x": 0, "y": 0}
    for offset in range(1, 8):  # x every day; y once in its 7 days, on its own day
        for user in plan_day(
            cohorts, answered, DAY0 + timedelta(days=offset), daily_quota=None
        ).users:
            asked[user] += 1
            answered[user] = LastAnswer(DAY0 + timedelta(days=offset))
    assert asked == {"x": 7, "y": 1}


def test_thirty_days_of_overlapping_cohorts_refresh_everyone_within_cadence_and_level_the_load():
    cohorts = panel()
    quota = 100
    plans, answered = simulate(cohorts, 30, quota)
    cadence = plans[-1].cadence_of
    assert len(cadence) == 340 and set(answered) == set(cadence)  # nobody starved
    for plan in plans:
        assert len(plan.users) <= quota and len(set(plan.users)) == len(plan.users)
        due = plan.due + plan.due_gone
        assert len(plan.users) >= 0.98 * min(quota, due)  # no quota left while users are due
    first_cycle = max(cadence.values()) + 7  # the backlog of new users, then one full cadence
    for user, days in answered.items():
        late = [
            g
            for g, d in zip(gaps(days), days[1:], strict=False)
            if d >= DAY0 + timedelta(first_cycle)
        ]
        assert all(g <= cadence[user] for g in late), (user, days)
    steady = [len(p.users) for p in plans[first_cycle:]]
    demand = plans[-1].demand_per_day
    assert max(steady) <= quota and max(steady) - min(steady) <= 0.35 * demand  # level


def test_infeasible_demand_rotates_members_with_a_bounded_gap():
    users = [f"u{i}" for i in range(250)]
    quota = 100  # demand 250 a day: 2.5x the quota
    plans, answered = simulate([CohortSpec("big", users, 1)], 30, quota)
    assert not plans[0].feasible and plans[0].sustainable_cadence_days == 3
    assert "INFEASIBLE" in plans[0].summary() and "cadence of 3 days" in plans[0].summary()
    bound = math.ceil(len(users) / quota)
    assert set(answered) == set(users)
    assert max(g for days in answered.values() for g in gaps(days)) <= bound
    assert all(len(p.users) == quota for p in plans)


def test_gone_accounts_are_rechecked_rarely_and_never_crowd_out_live_ones():
    live = [f"live{i}" for i in range(10)]
    gone = [f"gone{i}" for i in range(10)]
    history = {u: LastAnswer(DAY0 - timedelta(days=40), "private") for u in gone}
    history |= {u: LastAnswer(DAY0 - timedelta(days=40)) for u in live}
    plan = plan_day([CohortSpec("c", live + gone, 1)], history, DAY0, daily_quota=12)
    # The reserved share (2% of 12: one request) first, then every live user, then the rest.
    assert plan.users[0] in gone
    assert plan.users[1:11] == sorted(live, key=plan.users.index)
    assert len(plan.users) == 12 and plan.due_gone == 10
    assert gone_recheck_days(1) == 7 and gone_recheck_days(3) == 12 and gone_recheck_days(15) == 28
    # A gone account answered yesterday is not asked again before its re-check interval.
    recent = {u: LastAnswer(DAY0 - timedelta(days=1), "not_found") for u in gone}
    assert plan_day([CohortSpec("c", gone, 1)], recent, DAY0, daily_quota=None).users == []


def test_the_terms_cap_every_cadence_at_fifteen_days():
    plan = plan_day([CohortSpec("slow", ["x"], 90)], {}, DAY0, daily_quota=None)
    assert plan.cadence_of == {"x": TERMS_MAX_DAYS}


def test_the_budget_counts_what_was_spent_today_and_the_lab_budget():
    cohorts = [CohortSpec("c", [f"u{i}" for i in range(50)], 1)]
    plan = plan_day(cohorts, {}, DAY0, daily_quota=1000, spent_today=985)
    assert len(plan.users) == 15 and len(plan.left_waiting) == 35
    lab = plan_day(cohorts, {}, DAY0, daily_quota=daily_budget(1000, 20), spent_today=5)
    assert len(lab.users) == 15 and lab.daily_budget == 20


def test_plans_are_deterministic_and_not_alphabetical():
    cohorts = [CohortSpec("c", [f"user{i:03d}" for i in range(100)], 1)]
    first = plan_day(cohorts, {}, DAY0, daily_quota=10).users
    assert first == plan_day(cohorts, {}, DAY0, daily_quota=10).users
    assert first != sorted(first)


def test_refresh_days_of_untouched_members_survive_a_cohort_edit():
    """Editing a cohort (100 removed, a new cohort of 120 added) moves nobody else's days: over
    the week after the edit, untouched members are asked on the same days as without it."""
    before = panel(sizes=(2500, 800, 300), shared=200)  # the panel
    kept = before[0].members[100:]
    after = [CohortSpec("a", kept, 7), before[1], before[2],
             CohortSpec("new", [f"n{i}" for i in range(120)], 7)]  # fmt: skip
    _, settled = simulate(before, 21, quota=None)
    history = {u: LastAnswer(days[-1]) for u, days in settled.items()}
    asked_with, asked_without = {}, {}
    for offset in range(21, 28):
        day = DAY0 + timedelta(days=offset)
        for cohorts, asked in ((after, asked_with), (before, asked_without)):
            for user in plan_day(cohorts, history, day, daily_quota=None).users:
                asked.setdefault(user, []).append(day)
    untouched = set(kept) | set(before[1].members) | set(before[2].members)
    moved = [u for u in untouched if asked_with.get(u) != asked_without.get(u)]
    # Only overflow users handed to lighter days can move (the load stays level within one):
    # a handful, where ranks in hash order moved 1,887 of 2,235 in the panel.
    assert len(moved) <= 0.02 * len(untouched), len(moved)


def test_early_asks_only_when_nobody_is_overdue_or_due_for_a_recheck():
    cohorts = panel()
    gone = {f"a{i}" for i in range(10)}
    plans, _ = simulate(cohorts, 30, quota=45, gone=gone)  # demand ~78 a day: short
    early_days = 0
    for plan in plans:
        if plan.early_planned:
            early_days += 1
            assert plan.left_waiting == [] or len(plan.users) == plan.budget
            assert plan.due + plan.due_gone <= len(plan.users) - plan.early_planned
    roomy, _ = simulate(cohorts, 30, quota=200)  # room for everyone: early asks do happen
    roomy_days = sum(1 for p in roomy if p.early_planned)
    # Short of quota, early asks are the exception; with room, the rule. (The line before
    # this one, `... or early_days < len(plans)`, held whatever the planner did.)
    assert roomy_days > 0 and early_days < roomy_days, (early_days, roomy_days)


def test_thirty_days_with_an_edit_and_a_colleague_spend_every_request_where_the_plan_says():
    """The issue's month, scaled by ten: 3,750 members -> 375, a colleague spending 10-40 of the
    100 requests on 7 days, a cadence change and a cohort edit on day 15."""
    weekly = [f"creator{i}" for i in range(250)]
    cohorts = [
        CohortSpec("creators", weekly, 7),
        CohortSpec("politicians", [f"pol{i}" for i in range(60)] + weekly[:20], 3),
        CohortSpec("press", [f"press{i}" for i in range(30)], 1),
        CohortSpec("newcomers", [f"new{i}" for i in range(35)], 7),
    ]
    colleague = {3: 10, 6: 40, 9: 25, 12: 30, 18: 10, 21: 40, 27: 20}
    gone = {f"press{i}" for i in range(5)} | {f"creator{i}" for i in range(100, 110)}
    history: dict[str, LastAnswer] = {}
    for offset in range(30):
        day = DAY0 + timedelta(days=offset)
        if offset == 15:  # 10 creators removed, a cohort added, politicians every 2 days
            cohorts = [
                CohortSpec("creators", weekly[10:], 7),
                CohortSpec("politicians", cohorts[1].members, 2),
                cohorts[2],
                cohorts[3],
                CohortSpec("late", [f"late{i}" for i in range(20)], 7),
            ]
        plan = plan_day(
            cohorts, history, day, daily_quota=100, spent_today=colleague.get(offset, 0)
        )
        early = _early(plan, history, day)
        asked_early = set(plan.users) & early
        overdue_waiting = set(plan.left_waiting) - early  # overdue, or a due re-check
        if asked_early:  # early asks only when nobody overdue or due waits
            assert overdue_waiting == set(), (day, len(overdue_waiting))
        wanted = len(plan.users) + len(plan.left_waiting)
        assert len(plan.users) == min(plan.budget, wanted)  # quota 0 whenever users were due
        press = sum(1 for u in plan.users if u.startswith("press"))
        assert press >= 25 or not asked_early  # the daily cohort before any early ask
        for user in plan.users:
            history[user] = LastAnswer(day, "refused" if user in gone else "ok")


def _early(plan, history, day) -> set[str]:
    """Live users of `plan` whose whole cadence has not passed since their last answer."""
    return {
        u
        for u, days in plan.cadence_of.items()
        if u in history and not history[u].gone and (day - history[u].snapshot_date).days < days
    }


def test_gone_accounts_are_re_checked_on_time_even_when_live_demand_exceeds_the_budget():
    live = [f"u{i}" for i in range(300)]  # 300 daily members on 100 a day: always short
    gone = [f"g{i}" for i in range(4)]
    cohorts = [CohortSpec("big", live + gone, 1)]
    history = {g: LastAnswer(DAY0 - timedelta(days=7), "refused") for g in gone}  # due today
    plan = plan_day(cohorts, history, DAY0, daily_quota=100)
    assert sum(1 for u in plan.users if u in gone) == 2  # 2% of 100, though live ones wait
    assert len(plan.users) == 100
    later = {**history, **{u: LastAnswer(DAY0, "refused") for u in plan.users if u in gone}}
    tomorrow = plan_day(cohorts, later, DAY0 + timedelta(days=1), daily_quota=100)
    assert set(gone) <= set(plan.users) | set(tomorrow.users)  # all re-checked within 2 days


def test_the_recheck_share_is_small_and_only_for_due_rechecks():
    live = [f"u{i}" for i in range(300)]
    gone = [f"g{i}" for i in range(40)]
    history = {g: LastAnswer(DAY0 - timedelta(days=7), "refused") for g in gone}
    plan = plan_day([CohortSpec("big", live + gone, 1)], history, DAY0, daily_quota=100)
    assert sum(1 for u in plan.users if u.startswith("g")) == 2  # 2% of the day, no more
    quiet = plan_day([CohortSpec("big", live, 1)], {}, DAY0, daily_quota=100)
    assert len(quiet.users) == 100 and all(u.startswith("u") for u in quiet.users)


def test_the_plan_and_the_checks_share_one_allowed_age():
    from research_pipeline.planner import allowed_age_days

    assert allowed_age_days(3, gone=False) == 3
    assert allowed_age_days(40, gone=False) == 15  # TikTok's terms cap every cadence
    assert allowed_age_days(0, gone=False) == 1
    assert allowed_age_days(3, gone=True) == 12  # a gone account: its re-check interval
    assert allowed_age_days(1, gone=True) == 7 and allowed_age_days(15, gone=True) == 28
    assert allowed_age_days(2, gone=False, sustainable_days=9) == 9  # a declared shortfall
    # The plan follows it: a member answered `allowed` days ago is due, one day less is not
    # (it may still be refreshed early when the budget has room: not counted as due).
    for cadence, gone in ((3, False), (20, False), (2, True)):
        allowed = allowed_age_days(cadence, gone)
        for age, due in ((allowed, True), (allowed - 1, False)):
            history = {"u": LastAnswer(DAY0 - timedelta(days=age), "private" if gone else "ok")}
            plan = plan_day([CohortSpec("c", ["u"], cadence)], history, DAY0, daily_quota=None)
            assert plan.due + plan.due_gone == int(due), (cadence, gone, age)


def test_the_planners_steps_each_do_one_thing():
    """due -> rank -> cut: re-checks get their share first, live due users next, the other
    re-checks, early asks last; the budget takes the head of that order."""
    from research_pipeline.planner import RECHECK_SHARE, Due, cut, rank

    due = Due(live=["l1", "l2"], gone=["g1", "g2", "g3"], early=["e1"])
    share = max(1, math.ceil(RECHECK_SHARE * 4))
    ordered, reserved = rank(due, budget=4)
    assert reserved == min(3, share)
    assert ordered == ["g1", "g2", "g3"][:reserved] + ["l1", "l2"] + ["g1", "g2", "g3"][
        reserved:
    ] + ["e1"]
    assert rank(due, budget=0) == (["l1", "l2", "g1", "g2", "g3", "e1"], 0)
    assert rank(due, budget=None)[1] == 3  # no cap: every re-check first
    assert cut(ordered, 4) == (ordered[:4], ordered[4:])
    assert cut(ordered, None) == (ordered, [])
