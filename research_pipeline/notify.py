"""Telling someone: an alert (subject and text) sent to a chat webhook and/or by email.

Nothing here knows Dagster: `defs/tiktok/alerts.py` decides when a day deserves an alert and
what it says; this module only delivers it. The webhook is any Slack-compatible incoming webhook
(Slack, Mattermost, Rocket.Chat, Teams' Slack-compatible connector), sent with Slack's own SDK
(`slack_sdk.webhook`: retries, timeouts and error bodies handled by a maintained library, not by
our HTTP code); email goes through the lab's SMTP server with the standard library.
"""

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from research_pipeline.errors import ResearchPipelineError
from research_pipeline.tiktok.settings import check_declared, declared, read_declared


class NotificationError(ResearchPipelineError):
    """An alert could not be delivered on one of its channels."""


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str


@dataclass(frozen=True)
class AlertChannels:
    """Where alerts go; an empty setting turns its channel off."""

    webhook_url: str = declared(
        "RESEARCH_PIPELINE_ALERT_WEBHOOK_URL", "", "a Slack-compatible incoming webhook", "secret"
    )
    email_to: str = declared("RESEARCH_PIPELINE_ALERT_EMAIL_TO", "", "who is emailed", "text")
    email_from: str = declared(
        "RESEARCH_PIPELINE_ALERT_EMAIL_FROM",
        "",
        "the sender; default research-pipeline@HOST",
        "text",
    )
    smtp_host: str = declared("RESEARCH_PIPELINE_SMTP_HOST", "", "the lab's SMTP server", "text")
    smtp_port: int = declared(
        "RESEARCH_PIPELINE_SMTP_PORT", 587, "its port", "whole", (1, 65_535, False)
    )
    smtp_user: str = declared("RESEARCH_PIPELINE_SMTP_USER", "", "its login, if any", "text")
    smtp_password: str = declared(
        "RESEARCH_PIPELINE_SMTP_PASSWORD", "", "its password; never logged", "secret"
    )
    smtp_starttls: bool = declared(
        "RESEARCH_PIPELINE_SMTP_STARTTLS", True, "STARTTLS before logging in", "flag"
    )
    ui_url: str = declared(
        "RESEARCH_PIPELINE_UI_URL", "", "the Dagster UI's address, linked from alerts", "text"
    )
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        check_declared(self)

    @property
    def configured(self) -> list[str]:
        """The channels that will be used, by name (never their addresses or secrets)."""
        return [
            name for name, on in (("webhook", self.webhook_url), ("email", self.email_to)) if on
        ]

    def send(self, alert: Alert) -> list[str]:
        """Delivers `alert` on every configured channel; returns the channels used. Every channel
        is tried even when one fails; then one NotificationError names what failed."""
        failures = []
        for channel, deliver in (("webhook", self._webhook), ("email", self._email)):
            if channel not in self.configured:
                continue
            try:
                deliver(alert)
            except Exception as exc:  # noqa: BLE001 - each channel's own failure, reported below
                failures.append(f"{channel}: {type(exc).__name__}: {exc}")
        if failures:
            raise NotificationError("alert not delivered: " + "; ".join(failures))
        return self.configured

    def _webhook(self, alert: Alert) -> None:
        from slack_sdk.webhook import WebhookClient

        client = WebhookClient(self.webhook_url, timeout=int(self.timeout_seconds))
        answer = client.send(text=f"*{alert.subject}*\n{alert.text}")
        if answer.status_code != 200:
            # The body says why (no_text, invalid_token...); the URL holds the secret: not shown.
            raise NotificationError(f"the webhook answered {answer.status_code}: {answer.body}")

    def _email(self, alert: Alert) -> None:
        if not self.smtp_host:
            raise NotificationError("RESEARCH_PIPELINE_SMTP_HOST is not set")
        message = EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = self.email_from or f"research-pipeline@{self.smtp_host}"
        message["To"] = self.email_to
        message.set_content(alert.text)
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds) as smtp:
            if self.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.smtp_user:
                smtp.login(self.smtp_user, self.smtp_password)
            smtp.send_message(message)


# Where the secrets come from (the code location's resource names them, never their values).
WEBHOOK_VARIABLE = "RESEARCH_PIPELINE_ALERT_WEBHOOK_URL"
SMTP_PASSWORD_VARIABLE = "RESEARCH_PIPELINE_SMTP_PASSWORD"


def alert_channels_from_env(env) -> AlertChannels:
    """The alert channels from the environment's settings: what the daemon's resource holds,
    read at once (the CLI and the watchdog need no Dagster to tell someone)."""
    return AlertChannels(**read_declared(AlertChannels, env))
