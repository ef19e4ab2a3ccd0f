"""`research-pipeline watchdog`: tells someone when the Dagster daemon has stopped ticking.

The alerts of a failed day come from the daemon's sensors, so a dead daemon is the one failure
nobody hears of: no schedule fires, no day is fetched, and the API serves today only. The
watchdog runs apart from it (a systemd timer or a cron line, every 10 minutes: docs/deploy.md),
reads the daemon's heartbeats from Dagster's own storage, and tells the alert channels, once a
day, when the scheduler's last heartbeat is older than `--stale-minutes`.
"""

import os
import time
from datetime import UTC, datetime

import click

# The daemon beats every ~20 s; a scheduler silent this long is not busy, it is gone.
DEFAULT_STALE_MINUTES = 10
SCHEDULER = "SCHEDULER"


@click.command()
@click.option(
    "--stale-minutes",
    type=click.IntRange(1, 24 * 60),
    default=DEFAULT_STALE_MINUTES,
    show_default=True,
    help="How long without a scheduler heartbeat means the daemon has stopped.",
)
def watchdog(stale_minutes: int) -> int:
    """Exit 0 when the daemon's scheduler ticks; else tell the alert channels (once a day)
    and exit 1."""
    from research_pipeline.defs.tiktok.alerts import tell_once
    from research_pipeline.notify import Alert, NotificationError, alert_channels_from_env
    from research_pipeline.orchestration.instance import dagster_instance

    with dagster_instance() as instance:
        beats = instance.get_daemon_heartbeats()
        last = beats.get(SCHEDULER)
        age = None if last is None else time.time() - last.timestamp
        if age is not None and age < stale_minutes * 60:
            click.echo(f"the daemon's scheduler ticked {age:.0f} s ago")
            return 0
        seen = "never" if last is None else f"{age / 60:.0f} minutes ago"
        alert = Alert(
            subject="research-pipeline: the Dagster daemon has stopped",
            text=(
                f"The daemon's scheduler last ticked {seen}: no schedule fires and no day is "
                "fetched until it runs again, and the API serves today only. What to do: "
                "`systemctl status research-pipeline-daemon` (or `dagster-daemon run -w "
                "workspace.yaml`), then `research-pipeline snapshot` for today."
            ),
        )
        today = datetime.now(UTC).date()
        try:
            said = tell_once(instance, alert_channels_from_env(os.environ), today, "daemon",
                             alert, "watchdog")  # fmt: skip
        except NotificationError as exc:
            said = str(exc)
    click.echo(f"the daemon's scheduler last ticked {seen}: {said}", err=True)
    return 1
