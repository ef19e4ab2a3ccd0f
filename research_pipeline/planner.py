"""Which members to fetch on an API day: one plan for every cohort, within the day's quota.

Plain Python (no Dagster, no SQL): the asset, the schedule, the CLI and the tests call it with
the same inputs and get the same plan.

The rules, and why:
- A user in several cohorts is one request, refreshed at the shortest of their cadences; one
  answer fills every cohort's row. TikTok's terms ask for a refresh at least every 15 days, so
  no cadence is longer than that (`TERMS_MAX_DAYS`).
- Each user has fixed refresh days: every `cadence` days, at an offset that depends on the
  username alone (`phase`: a hash of it, modulo the cadence), so adding or removing members
  moves nobody else's days; with many users each day of the cadence gets about the same number
  (within a few times the square root). A user is overdue when it has no final answer (data or
  a per-user error) for a whole cadence; a user never answered is overdue at once. A user whose
  refresh day came since its last answer, before a whole cadence passed (its first answer or a
  late one was off its days), is *early*: asked only with quota left after every overdue user
  and every due re-check, which puts it back on its own days. The daily load is level (demand /
  day) however the first cycle went, and lateness never carries over.
- Overdue users go most overdue first (days past their cadence; never answered first), then
  stalest, then by the same hash: deterministic, not alphabetical. With one cadence this is
  stalest-first, which bounds every member's refresh gap by ceil(unique users / daily budget)
  days even when demand exceeds the budget: once a user is due, only users answered before it go
  first, each at most once.
- Accounts whose last answer said they are gone (not found, refused...) are asked again
  `gone_recheck_days` after that answer (4x their cadence, 7 to 28 days; no fixed days): most
  never come back, so asking daily wastes quota, but a private account made public again is
  caught within a month. A small share of the day's budget (`RECHECK_SHARE`, 2%, at least one
  request) is theirs when they are due, so an account public again is found even when live
  demand exceeds the budget every day; the rest of them go after every overdue live user and
  before early asks.
- Never more than the quota left (and an optional lab budget below it); never quota unused while
  live users are due.
- A user whose tries today are spent (`out_of_tries`: every run and retry of the day counted,
  from the ledger) waits for tomorrow with its last error row: a user that always fails cannot
  drain the day through repeated runs.
"""

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from research_pipeline.tiktok.error_kinds import USER_GONE_KINDS

TERMS_MAX_DAYS = 15
RECHECK_SHARE = 0.02  # of the day's budget, reserved for due re-checks of gone accounts
GONE_KINDS = USER_GONE_KINDS  # not found, refused, private, banned (tiktok.error_kinds)


@dataclass(frozen=True)
class CohortSpec:
    name: str
    members: Sequence[str]
    cadence_days: int = 1


@dataclass(frozen=True)
class LastAnswer:
    """A user's last final answer: its API day, and 'ok' or the error kind."""

    snapshot_date: date
    kind: str = "ok"

    @property
    def gone(self) -> bool:
        return self.kind in GONE_KINDS


@dataclass(frozen=True)
class CohortForecast:
    cohort: str
    members: int
    cadence_days: int
    requests_per_day: float  # members / cadence (a shared user counts in each of its cohorts)
    planned_today: int
    due_today: int
    never_fetched: int
    stalest_age_days: int | None  # days since the stalest answered live member's last answer
    days_for_full_refresh: int


@dataclass
class Plan:
    day: date
    budget: int | None  # requests we may spend today in all (quota and lab budget), None: no cap
    spent_today: int
    users: list[str]  # planned requests, in order
    cohort_members: dict[str, list[str]]  # per cohort: planned members plus those answered today
    due: int  # live users overdue today (a whole cadence without a final answer, or never)
    due_gone: int
    left_waiting: list[str]  # due users the budget could not serve today (stalest first)
    unique_users: int
    demand_per_day: float  # requests a day the cadences need, over unique users
    daily_budget: int | None  # the day's budget before today's spending
    cadence_of: dict[str, int] = field(default_factory=dict)
    forecast: list[CohortForecast] = field(default_factory=list)
    out_of_tries: int = 0  # due users whose tries today are spent: they wait for tomorrow
    early: int = 0  # users whose refresh day came before a whole cadence passed (asked last)
    early_planned: int = 0
    rechecks_reserved: int = 0  # due re-checks of gone accounts asked before live users

    def decisions(self, members: Sequence[str]) -> list[tuple[str, str, int | None]]:
        """Each member's decision, kept so a gap's reason is recorded, never guessed: planned
        (asked today, with its place in the order), deferred (due, past the budget's cut, with
        its place), or not_due (its cadence did not call for it, or it was answered today)."""
        place = {user: i for i, user in enumerate([*self.users, *self.left_waiting])}
        planned = set(self.users)
        return [
            (
                user,
                "planned" if user in planned else "deferred" if user in place else "not_due",
                place.get(user),
            )
            for user in members
        ]

    @property
    def feasible(self) -> bool:
        return self.daily_budget is None or self.demand_per_day <= self.daily_budget

    @property
    def sustainable_cadence_days(self) -> int | None:
        """The shortest cadence, the same for every unique user, that the budget sustains."""
        if self.daily_budget is None or self.unique_users == 0:
            return 1
        if self.daily_budget == 0:
            return None
        return max(1, math.ceil(self.unique_users / self.daily_budget))

    def summary(self) -> str:
        """One line for a schedule tick, a log or the CLI: what runs, what waits and why."""
        budget = "no quota" if self.budget is None else f"{self.budget} requests left today"
        early = (
            f", {self.early_planned} of {self.early} early on their refresh day (asked only "
            "with quota left after the others)"
            if self.early
            else ""
        )
        text = (
            f"{self.day}: {len(self.users)} of {self.unique_users} users planned ({self.due} due, "
            f"{self.due_gone} gone accounts due for a re-check"
            + (
                f", {self.rechecks_reserved} of them in the day's reserved share"
                if self.rechecks_reserved
                else ""
            )
            + f"{early}); {budget}"
        )
        if self.left_waiting:
            text += f"; {len(self.left_waiting)} due users wait for tomorrow (budget used up)"
        if self.out_of_tries:
            text += (
                f"; {self.out_of_tries} used up their tries today (transient errors every time) "
                "and wait for tomorrow"
            )
        if not self.feasible:
            text += (
                f". INFEASIBLE: the cadences need {self.demand_per_day:,.0f} requests a day, the "
                f"budget is {self.daily_budget:,}; it sustains a cadence of "
                f"{self.sustainable_cadence_days} days for all {self.unique_users:,} users"
            )
            if (self.sustainable_cadence_days or TERMS_MAX_DAYS + 1) > TERMS_MAX_DAYS:
                text += (
                    f", longer than the {TERMS_MAX_DAYS} days TikTok's terms allow: drop members "
                    "or raise the budget"
                )
        return text


def gone_recheck_days(cadence_days: int) -> int:
    return min(28, max(7, 4 * cadence_days))


def cadence_within_terms(cadence_days: int, sustainable_days: int | None = None) -> int:
    """A cohort's cadence as the plan and the checks use it: at least a day, at most TikTok's
    15 days; with `sustainable_days` (a panel the budget cannot keep at its cadences), no
    shorter than the cadence the budget sustains."""
    return max(1, min(max(int(cadence_days), sustainable_days or 0), TERMS_MAX_DAYS))


def allowed_age_days(cadence_days: int, gone: bool, sustainable_days: int | None = None) -> int:
    """How old a member's last final answer may be before the member is due (the plan) or
    stale (the refreshed_within_cadence check): its cadence within the terms, or the re-check
    interval of an account that was gone. The one rule both follow."""
    days = cadence_within_terms(cadence_days, sustainable_days)
    return gone_recheck_days(days) if gone else days


def spread_key(username: str) -> int:
    """A deterministic, well-mixed number per user (not alphabetical: that would favour 'a...')."""
    return int.from_bytes(hashlib.blake2b(username.encode(), digest_size=8).digest(), "big")


def latest_slot(phase: int, interval: int, day: date) -> date:
    """The latest refresh day on or before `day` of a user whose days are `interval` apart,
    starting at `phase` (0 .. interval - 1)."""
    return day - timedelta(days=(day.toordinal() - phase) % interval)


def _second_key(username: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(username.encode(), digest_size=8, person=b"overflow").digest(), "big"
    )


def phases(cadence: Mapping[str, int]) -> dict[str, int]:
    """Each user's offset within its cadence: its own hash modulo the cadence, so an edit of the
    panel moves nobody else (ranks in a hash order moved almost everyone). A hash alone loads
    the days unevenly (a few times the square root of the users a day), so a day over its share
    (ceil(users / cadence)) hands its extra users, those last by a second hash, to the lightest
    days: the load stays level within one, and an edit moves only a few overflow users."""
    by_interval: dict[int, list[str]] = {}
    for user, days in cadence.items():
        by_interval.setdefault(days, []).append(user)
    offset: dict[str, int] = {}
    for interval, users in by_interval.items():
        buckets: list[list[str]] = [[] for _ in range(interval)]
        for user in users:
            buckets[spread_key(user) % interval].append(user)
        share = math.ceil(len(users) / interval)
        overflow: list[str] = []
        for bucket in buckets:
            bucket.sort(key=_second_key)
            overflow += bucket[share:]
            del bucket[share:]
        for user in sorted(overflow, key=_second_key):
            lightest = min(range(interval), key=lambda i: (len(buckets[i]), i))
            buckets[lightest].append(user)
        for day, bucket in enumerate(buckets):
            for user in bucket:
                offset[user] = day
    return offset


def plan_day(
    cohorts: Sequence[CohortSpec],
    history: Mapping[str, LastAnswer],
    day: date,
    *,
    daily_quota: int | None,
    spent_today: int = 0,
    out_of_tries: Collection[str] = (),
) -> Plan:
    """The plan for `day`. `history` maps username -> last final answer (any cohort), up to and
    including `day`; `spent_today` is what this project already spent on `day` (the ledger);
    `daily_quota` is the quota, or the lab's budget below it (settings.daily_budget);
    `out_of_tries`: users not to ask again today. Four small steps: who is due (`sort_due`),
    in which order (`rank`), how many the budget takes (`cut`), and what each cohort gets
    (`cohort_forecasts`)."""
    cadence = cadences(cohorts)
    budget = None if daily_quota is None else max(0, daily_quota - spent_today)
    due = sort_due(cadence, history, day)
    ordered, reserved = rank(due, budget)
    tired = [u for u in ordered if u in out_of_tries]
    ordered = [u for u in ordered if u not in out_of_tries] if tired else ordered
    users, waiting = cut(ordered, budget)
    planned = set(users)
    sustainable = None
    if daily_quota is not None and due.demand > daily_quota and daily_quota > 0:
        sustainable = math.ceil(len(cadence) / daily_quota)
    members, forecast = cohort_forecasts(
        cohorts, history, day, planned, set(ordered), due.answered_today, sustainable
    )
    return Plan(
        day=day,
        budget=budget,
        spent_today=spent_today,
        users=users,
        cohort_members=members,
        due=len(due.live),
        due_gone=len(due.gone),
        left_waiting=waiting,
        unique_users=len(cadence),
        demand_per_day=due.demand,
        daily_budget=daily_quota,
        cadence_of=cadence,
        forecast=forecast,
        out_of_tries=len(tired),
        early=len(due.early),
        early_planned=sum(1 for u in due.early if u in planned),
        rechecks_reserved=reserved,
    )


def cadences(cohorts: Sequence[CohortSpec]) -> dict[str, int]:
    """Each unique user's cadence: the shortest of its cohorts', within TikTok's 15 days."""
    cadence: dict[str, int] = {}
    for cohort in cohorts:
        days = cadence_within_terms(cohort.cadence_days)
        for user in cohort.members:
            cadence[user] = min(cadence.get(user, days), days)
    return cadence


@dataclass
class Due:
    """Who is due on a day, each list most overdue first (then stalest, then the hash)."""

    live: list[str] = field(default_factory=list)  # live users overdue, or never answered
    gone: list[str] = field(default_factory=list)  # gone accounts due for a re-check
    early: list[str] = field(default_factory=list)  # refresh day came before the cadence passed
    answered_today: set[str] = field(default_factory=set)
    demand: float = 0.0  # requests a day the cadences need


def sort_due(cadence: Mapping[str, int], history: Mapping[str, LastAnswer], day: date) -> Due:
    keys: dict[str, list[tuple]] = {"live": [], "gone": [], "early": []}
    phase = phases(cadence)
    due = Due()
    for user, days in cadence.items():
        last = history.get(user)
        interval = allowed_age_days(days, gone=last is not None and last.gone)
        due.demand += 1 / interval
        if last is None:
            keys["live"].append((-math.inf, 0, spread_key(user), user))  # never answered: first
            continue
        if last.snapshot_date >= day:
            due.answered_today.add(user)
            continue
        age = (day - last.snapshot_date).days
        key = (interval - age, -age, spread_key(user), user)
        if age >= interval:
            keys["gone" if last.gone else "live"].append(key)
        elif not last.gone and last.snapshot_date < latest_slot(phase[user], interval, day):
            keys["early"].append(key)
    due.live, due.gone, due.early = ([u for *_, u in sorted(keys[k])] for k in keys)
    return due


def rank(due: Due, budget: int | None) -> tuple[list[str], int]:
    """The day's order: a share of the budget for gone accounts' re-checks (so they are never
    starved), every live due user, the other re-checks, then early asks last. Returns the
    order and the re-checks that went first."""
    reserved = (
        len(due.gone)
        if budget is None
        else min(len(due.gone), max(1, math.ceil(RECHECK_SHARE * budget)) if budget else 0)
    )
    return due.gone[:reserved] + due.live + due.gone[reserved:] + due.early, reserved


def cut(ordered: list[str], budget: int | None) -> tuple[list[str], list[str]]:
    """What the budget takes today, and who waits."""
    take = len(ordered) if budget is None else min(budget, len(ordered))
    return ordered[:take], ordered[take:]


def cohort_forecasts(
    cohorts: Sequence[CohortSpec],
    history: Mapping[str, LastAnswer],
    day: date,
    planned: set[str],
    due: set[str],
    answered_today: set[str],
    sustainable: int | None,
) -> tuple[dict[str, list[str]], list[CohortForecast]]:
    """Per cohort: its members the day covers (planned, or answered today already), and its
    forecast (demand, due, planned, never fetched, stalest, days for a full refresh)."""
    members_of: dict[str, list[str]] = {}
    forecast = []
    for cohort in cohorts:
        members = list(dict.fromkeys(cohort.members))
        members_of[cohort.name] = [u for u in members if u in planned or u in answered_today]
        live_ages = [
            (day - history[u].snapshot_date).days
            for u in members
            if u in history and not history[u].gone
        ]
        days = cadence_within_terms(cohort.cadence_days)
        forecast.append(
            CohortForecast(
                cohort=cohort.name,
                members=len(members),
                cadence_days=days,
                requests_per_day=len(members) / days,
                planned_today=sum(1 for u in members if u in planned),
                due_today=sum(1 for u in members if u in due),
                never_fetched=sum(1 for u in members if u not in history),
                stalest_age_days=max(live_ages) if live_ages else None,
                days_for_full_refresh=max(days, sustainable or days),
            )
        )
    return members_of, forecast
