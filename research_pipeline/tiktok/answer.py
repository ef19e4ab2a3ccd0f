"""What an answer means, decided once: one HTTP exchange (or its failure) becomes one `Answer`.

Every part that acts on an answer reads this: the guards of the session (quota, rate window,
429 tracker, outage breaker, ramp, token), the retry loop, the ledger and the warehouse (the
stored `error_kind` is `error_kinds.error_kind`, the same rule). Before, seven places decided
it and disagreed: a JSON 503 tripped the breaker but was stored as `other`; the breaker reset
on the quota's own 429 code but not on the generic one.

Evidence comes from the answer, never from our own wording: the error code wherever it appears
(even inside an HTTP 200), `message` or `msg`, the HTTP status, and whether an error names the
user asked (shared/tiktok-api-notes.md lists what the real API and public clients saw).
"""

import re
from dataclasses import dataclass, replace
from datetime import datetime

import requests

from research_pipeline.tiktok import constants
from research_pipeline.tiktok.constants import (
    CONNECTION_ERROR,
    MALFORMED_RESPONSE,
    NOT_ABOUT_USER,
    NOT_CONNECTED,
    REDIRECTED,
    REQUEST_REJECTED,
    TIMEOUT,
)
from research_pipeline.tiktok.error_kinds import (
    error_kind,
    is_server_failure,
    named_username,
    user_kind,
)
from research_pipeline.tiktok.models import Outcome

_FATAL_CODES = (constants.SCOPE_NOT_AUTHORIZED, constants.SCOPE_PERMISSION_MISSED)
_NAMES_DAILY_QUOTA = re.compile(r"daily\s+(?:request\s+)?(?:quota|limit)", re.IGNORECASE)
_NO_API_ANSWER = (TIMEOUT, CONNECTION_ERROR, NOT_CONNECTED, MALFORMED_RESPONSE)


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange, classified."""

    status: str  # "ok", the API's error code, or one of ours above
    outcome: Outcome | None = None  # OK / USER_ERROR: final; None: may be asked again
    message: str = ""
    log_id: str = ""
    http_status: int | None = None
    data: dict | None = None
    retry_after: float | None = None
    served_at: datetime | None = None  # the API's clock (Date header): the answer's day
    quota_spent: bool = False  # a 429 whose code or text names the daily quota

    @property
    def kind(self) -> str | None:
        return error_kind(self.status, self.message, self.http_status)

    @property
    def rate_limited(self) -> bool:
        return self.http_status == 429 or self.status in constants.RATE_LIMIT_STATUSES

    @property
    def spent(self) -> bool:
        """Whether the daily quota counted it (every answered request does, 500s included)."""
        return not (self.rate_limited or self.status == NOT_CONNECTED)

    @property
    def a_try(self) -> bool:
        """Whether it counts as a try of the user (its daily try budget)."""
        return self.spent and self.status != constants.ACCESS_TOKEN_INVALID

    @property
    def server_failure(self) -> bool:
        return is_server_failure(self.status, self.http_status)

    @property
    def token_invalid(self) -> bool:
        return self.status == constants.ACCESS_TOKEN_INVALID

    @property
    def no_scope(self) -> bool:
        return self.status in _FATAL_CODES

    @property
    def rejected(self) -> bool:
        """About our request as a whole (not its user): many in a row stop the run."""
        return self.status in (REQUEST_REJECTED, REDIRECTED)

    @property
    def reached_api(self) -> bool:
        """The API read our request (and its token): any answer of its own shape."""
        return self.http_status is not None and self.status not in _NO_API_ANSWER

    @property
    def shows_api_up(self) -> bool:
        """For the breaker: the API answered properly (data or a per-user error)."""
        return self.reached_api and not (
            self.server_failure or self.rate_limited or self.token_invalid
        )

    @property
    def healthy(self) -> bool | None:
        """For the ramp: the API is up and takes our pace (True), says slow down or stop
        (False), or neither (None: an expired token, a request never sent)."""
        if self.token_invalid or self.status == NOT_CONNECTED:
            return None
        return not (self.server_failure or self.rate_limited or self.rejected)


def failed(status: str, message: str) -> Answer:
    """An exchange that got no answer (timeout, lost connection, never connected...)."""
    return Answer(status, message=message)


def transport_failure(exc: requests.RequestException) -> Answer:
    """A `requests` failure: never opened (refused, connect timeout) is not spent; anything
    after that may have reached the API. The exception's text may echo the request: only its
    class is kept."""
    if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
        return failed(NOT_CONNECTED, type(exc).__name__)
    if isinstance(exc, requests.Timeout):
        return failed(TIMEOUT, "no answer within the timeout")
    return failed(CONNECTION_ERROR, type(exc).__name__)


def _never_connected(exc: BaseException) -> bool:
    import urllib3.exceptions

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        args = getattr(current, "args", ())
        current = next((a for a in args if isinstance(a, BaseException)), None)
    return False


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    # "Retry-After: 0" on every 429 would be a tight loop that only the 600/minute window
    # caps: read it (and nonsense) as no Retry-After, so our backoff and the quota rule apply.
    return seconds if 0 < seconds < float("inf") else None


def classify(response: requests.Response, asked: str | None = None) -> Answer:
    """Sort an HTTP answer into ok, per-user error (about `asked`), or not final, by evidence.
    An answer of no known shape is not final, its raw text kept."""
    status = response.status_code
    if response.is_redirect or 300 <= status < 400:
        target = response.headers.get("Location", "")[:200]
        return Answer(REDIRECTED, message=f"HTTP {status} to {target!r}: not followed",
                      http_status=status)  # fmt: skip
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    body, error = _body_and_error(response)
    if error is None:
        return _without_error_object(response, retry_after)
    code = error["code"]
    message = str(error.get("message") or error.get("msg") or "")
    plain = Answer(code, message=message, log_id=str(error.get("log_id") or ""),
                   http_status=status)  # fmt: skip
    if code == constants.OK:
        data = body.get("data")
        if status != 200 or not isinstance(data, dict):
            return replace(
                plain, status=MALFORMED_RESPONSE, message=f"HTTP {status}: ok without data"
            )
        return replace(plain, outcome=Outcome.OK, data=data)
    if status == 429 or code in constants.RATE_LIMIT_STATUSES:
        return _rate_limited(plain, retry_after)
    if code == constants.ACCESS_TOKEN_INVALID or code in _FATAL_CODES:
        return plain
    if status >= 500 or code == constants.INTERNAL_ERROR:
        return replace(plain, message=message or f"HTTP {status}")
    return _per_user_or_not(plain, code, asked)


def _without_error_object(response: requests.Response, retry_after: float | None) -> Answer:
    """A bare 429 is the rate limit (a proxy's, or the API's before its body); any other answer
    without an error object is of no known shape."""
    status = response.status_code
    if status == 429:
        return Answer(constants.RATE_LIMIT_EXCEEDED, message="HTTP 429", http_status=status,
                      retry_after=retry_after)  # fmt: skip
    return Answer(
        MALFORMED_RESPONSE,
        message=f"HTTP {status} with an unexpected body: {response.text[:300]!r}",
        http_status=status,
    )


def _body_and_error(response: requests.Response) -> tuple[dict | None, dict | None]:
    """The JSON body and its error object (an error code wherever it appears, even inside an
    HTTP 200), or None for what has no such shape."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return body if isinstance(body, dict) else None, None
    return body, error


def _rate_limited(plain: Answer, retry_after: float | None) -> Answer:
    """A 429: the code as it came (the ledger keeps it); the quota's own code, or a text that
    names the daily quota, ends the day at once. The generic one is told apart by behaviour."""
    spent = plain.status == constants.DAILY_QUOTA_LIMIT_EXCEEDED or bool(
        _NAMES_DAILY_QUOTA.search(plain.message)
    )
    code = plain.status
    if code not in constants.RATE_LIMIT_STATUSES:
        code = constants.RATE_LIMIT_EXCEEDED
    return replace(plain, status=code, retry_after=retry_after, quota_spent=spent)


def _per_user_or_not(plain: Answer, code: str, asked: str | None) -> Answer:
    """A 4xx is about its user only when it says so: it names the user asked, or says one of
    the per-user phrases without naming anyone else. One that names another username is an
    anomaly: it must never forget, tombstone or overwrite the user asked."""
    named = named_username(plain.message)
    if named is not None and asked is not None and named != asked.lower():
        return replace(
            plain,
            status=NOT_ABOUT_USER,
            message=f"{code}: an answer about {named!r}, not the user asked: {plain.message}",
        )
    if named is not None or user_kind(plain.message) is not None:
        return replace(plain, outcome=Outcome.USER_ERROR)
    return replace(
        plain,
        status=REQUEST_REJECTED,
        message=f"{code}: {plain.message or f'HTTP {plain.http_status}'}",
    )
