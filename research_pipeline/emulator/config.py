"""The emulator's knobs: limits, credentials, latency and the faults it can inject."""

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from research_pipeline.emulator import documented


@dataclass
class EmulatorConfig:
    """Every knob. Rates are shares of user-info requests (0.0 to 1.0); None turns a limit off."""

    seed: int = 0
    client_key: str = "emulator-key"
    client_secret: str = "emulator-secret"
    rate_limit_per_minute: int | None = documented.RATE_LIMIT_PER_MINUTE
    daily_quota: int | None = documented.DAILY_QUOTA
    token_lifetime_seconds: float = documented.TOKEN_LIFETIME_SECONDS
    # Tokens seen to lapse before their `expires_in`: a token is refused (401
    # access_token_invalid) after it was accepted this many times (None: never).
    token_max_uses: int | None = None
    latency_seconds: float = 0.0
    # The real API's pace: answers take hundreds of milliseconds with multi-second tails. A
    # lognormal latency with this median and 99th percentile (seconds; 0: off), on top of
    # `latency_seconds`.
    latency_median_seconds: float = 0.0
    latency_p99_seconds: float = 0.0
    # A JSON 504 `{"error": {"code": "timeout"}}` after a long wait, as public clients recorded
    # (traktok issue 17): this share of user-info requests, answered after `timeout_504_seconds`.
    # It counts against the quota.
    timeout_504_rate: float = 0.0
    timeout_504_seconds: float = 240.0
    error_rate: float = 0.0  # HTTP 500 internal_error
    # HTTP 400 invalid_params "Something went wrong. Please try again later.": about the
    # request, not the user, and gone on a retry (seen from the real API)
    request_error_rate: float = 0.0
    # Hostile answers, for the reliability tests: per username, field values to answer instead
    # of the population's (e.g. {"alice": {"follower_count": "12345"}}), and a share of answers
    # whose body is cut short of its Content-Length.
    odd_values: dict = field(default_factory=dict)
    short_body_rate: float = 0.0
    malformed_rate: float = 0.0  # broken JSON, a body without `error`, or an HTML 504 page
    reset_rate: float = 0.0  # connection reset without an answer
    hang_rate: float = 0.0  # answer only after `hang_seconds` (client timeouts)
    hang_seconds: float = 5.0
    # The next N token requests answer only after `hang_seconds`: a slow token endpoint (a
    # loaded API or network), which a client with a short timeout sees as a timeout.
    token_stalls: int = 0
    # Every answer's body sent one byte at a time, this many seconds apart: each read gets a
    # byte well within any per-read timeout, the whole answer takes minutes (a slow-loris).
    drip_seconds: float = 0.0
    # ... the status line and headers too (a per-read timeout never fires on either).
    drip_headers: bool = False
    # Outages: the Research API has been seen answering only 500s for hours, and those 500s
    # count against the quota. The next `outage_requests` user-info requests, and every one
    # until `outage_until` (ISO time on the emulator's clock), answer 500 internal_error with an
    # empty message (as seen in the wild); then the API recovers.
    outage_requests: int = 0
    outage_until: str | None = None
    # Usernames whose every request answers 500 internal_error (a fault that follows one
    # account, for the per-user try budget).
    failing_usernames: list = field(default_factory=list)
    # How the spent daily quota is answered: "generic" (429 rate_limit_exceeded with the same
    # text as the per-minute limit, as TikTok's docs show) or "quota_code" (429
    # daily_quota_limit_exceeded, as a public Research API GUI recorded it).
    quota_answer: str = "generic"
    burst_429_every: int | None = None  # every Nth request starts a burst of 429s
    burst_429_length: int = 3
    # A Retry-After header on burst 429s: no source shows one from the Research API, so none
    # unless a test sets it (the client honours it when present).
    retry_after_seconds: float | None = None
    scope_authorized: bool = True
    midnight_after_requests: int | None = None  # the clock passes 00:00 UTC after N requests
    # The clock jumps by `date_jump_seconds` (e.g. -86400: back a day) after N requests: a Date
    # header a day off, as a misset server clock or a clock correction would send.
    date_jump_after_requests: int | None = None
    date_jump_seconds: float = 0.0
    # After 00:00 UTC the daily quota has been seen to stay exhausted for a while: every
    # user-info request answers 429 until this many seconds past midnight (emulator clock).
    quota_reset_lag_seconds: float = 0.0
    # Token errors come as flat OAuth bodies; one public client saw them inside HTTP 200.
    token_error_status: int = 401
    # Scripted account histories: username -> [["YYYY-MM-DD", kind], ...], kind one of
    # active, private, banned, unknown (deleted). From each date on (emulator clock) the
    # account answers as that kind; before the first date, as the population says.
    lifecycle: dict = field(default_factory=dict)
    private_share: float = 0.03
    banned_share: float = 0.01
    unknown_share: float = 0.03

    def update(self, changes: dict) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(
                f"unknown emulator settings: {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        if changes.get("outage_until"):
            changes = {**changes, "outage_until": _utc_time(changes["outage_until"])}
        for name, value in changes.items():
            setattr(self, name, value)


def _utc_time(text: str) -> str:
    """An ISO time; one without a zone is UTC (the emulator's clock is)."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
