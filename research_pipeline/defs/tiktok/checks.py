"""Data checks on the raw snapshot, run with every materialization of `tiktok/user_info`."""

from collections.abc import Sequence
from datetime import date

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

from research_pipeline.planner import GONE_KINDS, TERMS_MAX_DAYS, allowed_age_days
from research_pipeline.snapshot import Partition, SnapshotRun
from research_pipeline.warehouse import queries

USER_INFO_KEY = AssetKey(["tiktok", "user_info"])
DEFAULT_MAX_ERROR_SHARE = 0.25

USER_INFO_CHECKS = [
    AssetCheckSpec(
        "unique_users",
        asset=USER_INFO_KEY,
        description="One row per (snapshot_date, cohort, username). Blocking: the derived "
        "tables are not computed from a raw snapshot that fails it.",
        blocking=True,
    ),
    AssetCheckSpec(
        "counts_not_negative",
        asset=USER_INFO_KEY,
        description="Follower, following, like and video counts are >= 0.",
    ),
    AssetCheckSpec(
        "refreshed_within_cadence",
        asset=USER_INFO_KEY,
        description="Every member of the cohort has a final answer no older than its cohort's "
        "cadence (accounts that are gone: their re-check interval); the stalest are named.",
    ),
    AssetCheckSpec(
        "refreshed_within_terms",
        asset=USER_INFO_KEY,
        description="TikTok's terms: every live member's data is at most 15 days old "
        "(RESEARCH_PIPELINE_MAX_DATA_AGE_DAYS); the oldest are named.",
    ),
    AssetCheckSpec(
        "plan_completed",
        asset=USER_INFO_KEY,
        description="Every user the day's plan chose was asked (warns when the quota ran out "
        "or due users had to wait for a later day).",
    ),
    AssetCheckSpec(
        "error_share_below_threshold",
        asset=USER_INFO_KEY,
        description="Warns when too many users answer with an error.",
    ),
]


def stale_members(
    conn,
    day: date,
    cohorts: Sequence[str],
    max_age: int | None = None,
    sustainable_days: int | None = None,
) -> list[tuple[str, str, int | None]]:
    """(cohort, username, age in days or None if never answered) of members whose last final
    answer is older than their cohort's cadence (or re-check interval), stalest first. With
    `max_age`: live members (not gone) whose data is older than that, whatever their cadence.
    With `sustainable_days` (a panel whose cadences need more than the budget: the plan says
    so every day), a member is stale only past the cadence the budget sustains: the check then
    fails when something went wrong, not every day of a known, declared shortfall."""
    stale = []
    for cohort, user, cadence, last_day, kind in queries.member_last_answers(conn, day, cohorts):
        age = None if last_day is None else (day - last_day).days
        if max_age is not None:
            if kind not in GONE_KINDS and age is not None and age > max_age:
                stale.append((cohort, user, age))
            continue
        allowed = allowed_age_days(cadence, kind in GONE_KINDS, sustainable_days)
        if age is None or age > allowed:
            stale.append((cohort, user, age))
    return sorted(stale, key=lambda s: (s[2] is not None, -(s[2] or 0), s[0], s[1]))


def check_user_info(
    conn,
    partitions: Sequence[Partition],
    run: SnapshotRun,
    max_error_share: float = DEFAULT_MAX_ERROR_SHARE,
    day: date | None = None,
    max_data_age_days: int = TERMS_MAX_DAYS,
) -> list[AssetCheckResult]:
    """Evaluate the checks over the run's partitions, each a small function of its own."""
    counts = queries.raw_check_counts(conn, {p.key: p.members for p in partitions})
    day = day or max((p.snapshot_date for p in partitions), default=None)
    cohorts = [p.cohort for p in partitions]
    return [
        *_shape_checks(counts),
        _cadence_check(conn, day, cohorts, run.plan),
        _terms_check(conn, day, cohorts, max_data_age_days),
        _plan_check(run),
        _error_share_check(counts, max_error_share),
    ]


def _result(name: str, passed: bool, metadata: dict, warn: bool = False) -> AssetCheckResult:
    severity = AssetCheckSeverity.WARN if warn else AssetCheckSeverity.ERROR
    return AssetCheckResult(
        check_name=name, asset_key=USER_INFO_KEY, passed=passed, severity=severity,
        metadata=metadata,
    )  # fmt: skip


def _shape_checks(counts) -> list[AssetCheckResult]:
    """One row per user and partition; no negative count."""
    return [
        _result("unique_users", counts.duplicate_rows == 0,
                {"duplicate_rows": counts.duplicate_rows}),
        _result("counts_not_negative", counts.rows_with_negative_counts == 0,
                {"rows_with_negative_counts": counts.rows_with_negative_counts}),
    ]  # fmt: skip


def _cadence_check(conn, day, cohorts, plan) -> AssetCheckResult:
    """Every member answered within its cadence (or the cadence the budget sustains, when the
    plan says the cadences need more than the budget)."""
    sustainable = None if plan is None or plan.feasible else plan.sustainable_cadence_days
    stale = stale_members(conn, day, cohorts, sustainable_days=sustainable) if day else []
    allowed = (
        "each cohort's cadence"
        if sustainable is None
        else f"the cadence the budget sustains, {sustainable} days (plan: INFEASIBLE)"
    )
    return _result(
        "refreshed_within_cadence",
        not stale,
        {
            "allowed_days": allowed,
            "stale_members": len(stale),
            "never_answered": sum(1 for *_, age in stale if age is None),
            "stalest": ", ".join(
                f"{c}/{u} ({'never' if a is None else f'{a} days'})" for c, u, a in stale[:10]
            ),
        },
    )


def _terms_check(conn, day, cohorts, max_data_age_days: int) -> AssetCheckResult:
    """No live data older than the terms allow, of members or of anyone else the warehouse
    holds data of (members removed from their cohort, cohorts removed)."""
    too_old = stale_members(conn, day, cohorts, max_data_age_days) if day else []
    current = set(queries.members_on(conn, day)) if day else set()
    older = queries.live_data_older_than(conn, day, max_data_age_days, GONE_KINDS) if day else []
    outside = [("(no cohort)", user, age) for user, age in older if user not in current]
    too_old += outside
    return _result(
        "refreshed_within_terms",
        not too_old,
        {
            "max_age_days": max_data_age_days,
            "members_too_old": len(too_old) - len(outside),
            "former_members_too_old": len(outside),
            "oldest": ", ".join(f"{c}/{u} ({a} days)" for c, u, a in too_old[:10]),
        },
    )


def _plan_check(run: SnapshotRun) -> AssetCheckResult:
    """Every planned user asked. A spent quota that only cut retries (every planned user was
    asked) is the plan done; planned users not reached, or an outage, interrupt or deadline,
    are not. Due users the plan itself left for later days (the cadences need more than the
    budget) pass, but are counted: someone must hear of it (the alerts)."""
    passed = run.unreached == 0 and not (
        run.outage_message or run.interrupt_message or run.deadline_message
    )
    plan = run.plan
    waiting = len(plan.left_waiting) if plan is not None and not plan.feasible else 0
    return _result(
        "plan_completed",
        passed,
        {
            "planned_users": run.planned_users,
            "answered": run.answered,
            "not_reached": run.unreached,
            "why": run.stopped_because or ("the API's day changed" if run.new_day else ""),
            "cause": run.cause,
            "due_waiting": waiting,
        },
        warn=True,
    )


def _error_share_check(counts, max_error_share: float) -> AssetCheckResult:
    share = counts.error_rows / counts.rows if counts.rows else 0.0
    return _result(
        "error_share_below_threshold",
        share <= max_error_share,
        {"error_share": round(share, 4), "threshold": max_error_share},
        warn=True,
    )
