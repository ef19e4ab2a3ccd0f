"""Someone is told when a day fails: Dagster's own run-failure and run-status sensors, run by
the daemon, turn a failed run, or a run whose plan was not finished or whose data breaks the
15-day terms, into one alert per API day and cause (research_pipeline.notify delivers it): an
outage, refused credentials, the quota spent, cadences the budget cannot serve, a storage
failure, a failed derivation are each told once, whichever came first.

A lab server runs unattended for months and the API serves today only: a day found missing
weeks later in a chart is lost for good. The alert names the cohorts, the API day, what failed
and what to do; a later tick failing the same day for the same cause sends nothing more (the
day's alerts already sent are kept in Dagster's run storage, beside the sensors' cursors).
"""

from datetime import date

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from research_pipeline.defs.resources import AlertsResource
from research_pipeline.notify import Alert, AlertChannels
from research_pipeline.orchestration.partitions import cohort_partitions, split_key

# The checks of user_info that mean a day went wrong (the others are about the data's shape).
DAY_CHECKS = {
    "plan_completed": (
        "planned members were not fetched",
        "nothing, if the reason above is an outage or a late quota reset: the next tick asks "
        "for the members still due. If others in the lab spent the quota, agree on each one's "
        "share (RESEARCH_PIPELINE_DAILY_BUDGET); `research-pipeline plan` shows who is due",
    ),
    "refreshed_within_terms": (
        "data older than TikTok's 15 days is held",
        "run `research-pipeline plan` to see who is overdue; refresh them (a snapshot) or "
        "remove them from their cohort so their data is deleted",
    ),
}


def run_scope(instance: DagsterInstance, run: DagsterRun) -> tuple[date | None, list[str]]:
    """The API day and cohorts a run was for, from its partition tags."""
    single = run.tags.get(PARTITION_NAME_TAG)
    start, end = (
        run.tags.get(ASSET_PARTITION_RANGE_START_TAG),
        run.tags.get(ASSET_PARTITION_RANGE_END_TAG),
    )
    if single:
        day, cohort = split_key(single)
        return day, [cohort]
    if not (start and end):
        return None, []
    (day, first), (_, last) = split_key(start), split_key(end)
    registered = instance.get_dynamic_partitions(cohort_partitions.name)
    if first in registered and last in registered:
        return day, registered[registered.index(first) : registered.index(last) + 1]
    return day, [first, last]


def tell_once(
    instance: DagsterInstance, channels: AlertChannels, day, cause: str, alert: Alert, run_id: str
) -> str:
    """Sends `alert` unless this day's alert for `cause` went out already, from the daemon's
    sensors or the CLI (the record is in Dagster's run storage, which both share). Returns what
    was done, in one line; raises NotificationError when a channel failed."""
    if not channels.configured:
        return (
            "no alert channel configured (RESEARCH_PIPELINE_ALERT_WEBHOOK_URL or "
            f"RESEARCH_PIPELINE_ALERT_EMAIL_TO): not sent: {alert.subject}"
        )
    key = f"research_pipeline/alert_sent/{day}/{cause}"
    storage = instance.run_storage
    if storage.get_cursor_values({key}).get(key):
        return f"already told today: {alert.subject}"
    used = channels.send(alert)
    storage.set_cursor_values({key: run_id})
    return f"alert sent by {', '.join(used)}: {alert.subject}"


# Every cause an alert of a day may have been sent for (tell_once's keys).
_CAUSES = (
    *(f"failed:{c}" for c in ("credentials", "outage", "storage", "date", "interrupted",
                               "failed", "derivation")),
    *(f"plan_completed:{c}" for c in ("quota", "outage", "deadline", "interrupted",
                                      "infeasible")),
    "plan_completed", "refreshed_within_terms", "daemon",
)  # fmt: skip


def tell_recovery(instance: DagsterInstance, channels: AlertChannels, day, run_id: str) -> str:
    """A day that was told as failed has now been carried out: say so, once."""
    keys = {f"research_pipeline/alert_sent/{day}/{cause}": cause for cause in _CAUSES}
    told = instance.run_storage.get_cursor_values(set(keys))
    causes = sorted(keys[key] for key, value in told.items() if value)
    if not causes:
        return "nothing was told of this day: no recovery to tell"
    alert = Alert(
        subject=f"research-pipeline: {day} recovered",
        text=f"API day {day}: the day's plan has now been carried out (told before: "
        f"{', '.join(causes)}). Nothing more to do.",
    )
    return tell_once(instance, channels, day, "recovered", alert, run_id)


def _deliver(context, alerts: AlertsResource, day, cause: str, alert: Alert):
    """The sensors' delivery: a channel's failure fails the tick (Dagster shows it and tries
    again); anything not sent is the tick's skip reason."""
    said = tell_once(
        context.instance, alerts.channels(), day, cause, alert, context.dagster_run.run_id
    )
    if not said.startswith("alert sent"):
        return SkipReason(said)
    context.log.info(said)
    return None


def _where(run: DagsterRun, alerts: AlertsResource) -> str:
    base = alerts.ui_url.rstrip("/")
    return f"{base}/runs/{run.run_id}" if base else f"run {run.run_id} in the Dagster UI"


def step_failures(events) -> tuple[list[str], str]:
    """Each failed step's one-line reason, and the run's cause: the one its snapshot step
    gave (credentials, outage, storage, date, interrupted), `derivation` when only a later
    step failed, else `failed`."""
    reasons, causes = [], []
    for event in (e for e in events if e.is_step_failure):
        data = event.step_failure_data
        described = data.user_failure_data.description if data.user_failure_data else None
        text = described or (data.error.message if data.error else event.message) or ""
        reasons.append(f"{event.step_key}: {text.strip().splitlines()[0] if text else '?'}")
        metadata = data.user_failure_data.metadata if data.user_failure_data else {}
        cause = getattr(metadata.get("cause"), "value", None)
        causes.append(cause or ("failed" if "user_info" in event.step_key else "derivation"))
    return reasons, (causes[0] if causes else "failed")


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def failed_day_alert(context: RunFailureSensorContext, alerts: AlertsResource):
    """A snapshot run failed: the day's data may be incomplete."""
    run = context.dagster_run
    day, cohorts = run_scope(context.instance, run)
    reasons, cause = step_failures(context.get_step_failure_events())
    reasons = reasons or [context.failure_event.message or "the run failed"]
    alert = failed_day(day, cohorts, reasons, cause, _where(run, alerts))
    return _deliver(context, alerts, day, f"failed:{cause}", alert)


def failed_day(day, cohorts, reasons: list[str], cause: str, where: str) -> Alert:
    """The alert of a failed snapshot run (the daemon's sensor and the CLI send the same)."""
    return Alert(
        subject=f"research-pipeline: the snapshot of {day or 'a day'} failed ({cause})",
        text="\n".join(
            [
                f"API day: {day or 'unknown'}; cohorts: {', '.join(cohorts) or 'unknown'}.",
                "What failed: " + "; ".join(reasons),
                "What to do: the line above says it where it can. The API serves today only: "
                "fix it before the day ends (00:00 UTC); the next tick, or "
                "`research-pipeline snapshot`, fetches only what is still missing.",
                f"Details: {where}",
            ]
        ),
    )


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def unfinished_day_alert(context: RunStatusSensorContext, alerts: AlertsResource):
    """A snapshot run ended, but its plan was not finished or the terms check failed."""
    run = context.dagster_run
    records = context.instance.get_records_for_run(
        run_id=run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    evaluations = [
        evaluation
        for record in records
        if isinstance(
            evaluation := record.event_log_entry.dagster_event.event_specific_data,
            AssetCheckEvaluation,
        )
        and evaluation.check_name in DAY_CHECKS
    ]
    failed = [(e, _cause(e)) for e in evaluations if not e.passed or _cause(e) == "infeasible"]
    day, cohorts = run_scope(context.instance, run)
    if not failed:
        said = tell_recovery(context.instance, alerts.channels(), day, run.run_id)
        if said.startswith("alert sent"):
            context.log.info(said)
        return SkipReason(
            f"the day's plan was carried out and the data is within the terms; {said}"
        )
    skipped = None
    for evaluation, cause in failed:
        what, todo = INFEASIBLE if cause == "infeasible" else DAY_CHECKS[evaluation.check_name]
        facts = ", ".join(
            f"{name} {value.value}"
            for name, value in evaluation.metadata.items()
            if getattr(value, "value", "") not in ("", None)
        )
        alert = Alert(
            subject=f"research-pipeline: {day}: {what}",
            text="\n".join(
                [
                    f"API day: {day}; cohorts: {', '.join(cohorts) or 'unknown'}.",
                    f"What failed: the check {evaluation.check_name}: {facts}.",
                    f"What to do: {todo}.",
                    f"Details: {_where(run, alerts)}",
                ]
            ),
        )
        key = f"{evaluation.check_name}:{cause}" if cause else evaluation.check_name
        skipped = _deliver(context, alerts, day, key, alert) or skipped
    return skipped


# The plan was carried out, but the cadences need more than the budget: due users wait.
INFEASIBLE = (
    "the cadences need more requests than the budget: due members wait for later days",
    "lengthen a cadence, shrink a cohort, or raise RESEARCH_PIPELINE_DAILY_BUDGET; "
    "`research-pipeline plan` shows the cadence the budget sustains",
)


def _cause(evaluation: AssetCheckEvaluation) -> str:
    """plan_completed's cause (outage, quota, deadline, interrupted), or `infeasible` when the
    plan was carried out with due members left for later days; empty for the other checks."""
    if evaluation.check_name != "plan_completed":
        return ""
    metadata = evaluation.metadata
    cause = getattr(metadata.get("cause"), "value", "") or ""
    if evaluation.passed:
        return "infeasible" if getattr(metadata.get("due_waiting"), "value", 0) else ""
    return cause
