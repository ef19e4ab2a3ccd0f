"""The Research API client: user info for one username, or for many in bounded parallel.

It composes small parts (token provider, sliding-window limiter, daily quota, backoff) over one
pooled `requests.Session`. It knows nothing of Dagster or storage; callers that keep an audit
trail pass `on_request`, called once for every request sent to the user-info endpoint, after
its answer (or failure); `on_send`, called with the username just before each is sent, lets
them know of a request whose answer never arrives (a killed process).
"""

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter

from research_pipeline.tiktok import constants
from research_pipeline.tiktok.bodies import (
    MAX_USER_INFO_BYTES,
    BodyTooLarge,
    DeadlinePassed,
    read_body,
)
from research_pipeline.tiktok.breaker import OutageBreaker, is_server_failure
from research_pipeline.tiktok.error_kinds import user_kind
from research_pipeline.tiktok.errors import (
    FatalApiError,
    FetchCancelledError,
    QuotaExhaustedError,
    TikTokApiError,
    TransientApiError,
)
from research_pipeline.tiktok.limits import (
    DailyQuota,
    RateLimitTracker,
    SharedReservations,
    SlidingWindowLimiter,
    next_utc_midnight,
)
from research_pipeline.tiktok.models import Outcome, RequestRecord, UserInfoResult
from research_pipeline.tiktok.ramp import InFlightRamp
from research_pipeline.tiktok.scrub import scrub
from research_pipeline.tiktok.settings import ClientSettings, source_of
from research_pipeline.tiktok.token import AccessTokenProvider, server_time
from research_pipeline.tiktok.usernames import normalize_username
from research_pipeline.tiktok.validation import INVALID_ANSWER, problems_in

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Answer:
    """One HTTP exchange, classified."""

    outcome: Outcome | None  # None: transient, may be retried
    status: str
    message: str = ""
    log_id: str = ""
    http_status: int | None = None
    data: dict | None = None
    retry_after: float | None = None
    served_at: datetime | None = None  # the API's clock (Date header): the answer's day
    quota_spent: bool = False  # a 429 whose code or text names the daily quota


def utc_now() -> datetime:
    return datetime.now(UTC)


class ResearchApiClient:
    def __init__(
        self,
        settings: ClientSettings,
        *,
        on_request: Callable[[RequestRecord], None] | None = None,
        on_send: Callable[[str], None] | None = None,
        quota_used_today: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utc_now,
        shared_quota: SharedReservations | None = None,
    ):
        self.settings = settings
        self._on_request = on_request
        self._on_send = on_send
        self._sleep = sleep
        self._now = now
        self._random = random.Random()
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(settings.concurrency, 2))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.tokens = AccessTokenProvider(
            self.session,
            settings.base_url,
            settings.client_key,
            settings.client_secret,
            timeout_seconds=settings.timeout_seconds,
            deadline_seconds=settings.request_deadline_seconds,
            clock=clock,
            sleep=sleep,
        )
        self.limiter = SlidingWindowLimiter(
            settings.rate_limit_per_minute, clock=clock, sleep=sleep
        )
        # With `shared_quota` (the reservations of every process of the project), the day's
        # count is shared across processes, keyed by the API's day.
        self.quota = DailyQuota(
            settings.daily_quota,
            used=quota_used_today,
            now=now,
            shared=shared_quota,
            api_day=lambda: self.api_now().date(),
        )
        self.rate_limits = RateLimitTracker(
            settings.rate_limit_window_seconds,
            settings.reset_wait_seconds,
            settings.reset_backoff_seconds,
            clock=clock,
            sleep=sleep,
            api_now=self.api_now,
        )
        self.breaker = OutageBreaker(sleep=sleep)
        self.ramp = InFlightRamp(settings.concurrency)
        # Request-level rejections in a row (a 4xx not about its user): many mean the API
        # refuses our requests as a whole, and going on would spend the quota for nothing.
        self._rejections_in_a_row = 0
        self._rejections_lock = threading.Lock()
        self._user_info_url = settings.base_url + constants.USER_INFO_PATH
        self._fields_param = ",".join(settings.fields)

    def __repr__(self) -> str:
        return f"ResearchApiClient(base_url={self.settings.base_url!r})"

    def __enter__(self) -> "ResearchApiClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    @property
    def source(self) -> str:
        """Where answers come from, for every stored row: the API's host, or 'emulator' for a
        loopback address (the real API is never on loopback: plain http is refused elsewhere)."""
        return source_of(self.settings.base_url)

    def api_now(self) -> datetime:
        """Now at the API (its Date header); fetches a token if none is held."""
        return self.tokens.server_now()

    # -- one user ---------------------------------------------------------------------------

    def fetch_user_info(self, username: str) -> UserInfoResult:
        """Ask for one user, retrying transient failures; a final answer or a transient-error
        result after `max_attempts`. Raises on fatal errors and on an exhausted quota."""
        return self._fetch(normalize_username(username), threading.Event())

    def _fetch_or_cancel(
        self, username: str, cancelled: threading.Event, max_attempts: int | None
    ) -> UserInfoResult:
        """In a worker: a fatal error cancels the queued fetches at once, before they send."""
        try:
            return self._fetch(username, cancelled, max_attempts)
        except FetchCancelledError:
            raise
        except TikTokApiError:
            cancelled.set()
            raise

    def _fetch(
        self, username: str, cancelled: threading.Event, max_attempts: int | None = None
    ) -> UserInfoResult:
        """`max_attempts`: what is left of the user's tries today (default: the setting)."""
        max_attempts = max_attempts or self.settings.max_attempts
        attempts = 0
        token_renewed = False
        while True:
            attempts += 1
            if cancelled.is_set():
                raise FetchCancelledError(f"fetch of {username!r} cancelled")
            try:
                token = self.tokens.get()
            except TransientApiError:
                if attempts >= max_attempts:
                    raise
                self._sleep(self._backoff(attempts))
                continue
            if not self.ramp.enter(cancelled):
                raise FetchCancelledError(f"fetch of {username!r} cancelled")
            healthy = None
            probe = self.rate_limits.enter()
            outage_probe = self.breaker.enter(cancelled)
            try:
                if cancelled.is_set():
                    raise FetchCancelledError(f"fetch of {username!r} cancelled")
                self.limiter.acquire()
                self.quota.reserve()
                sent_at = self._now()
                answer = self._post_user_info(username, token)
                healthy = _is_healthy(answer)
                result = self._conclusion(username, answer, attempts, max_attempts)
                self._record(sent_at, username, answer, result)
                self._refuse_scope(answer)
                self.breaker.note(answer.status, answer.http_status, answer.message)
            finally:
                if probe:
                    self.rate_limits.leave()
                if outage_probe:
                    self.breaker.leave()
                self.ramp.leave(healthy)
            if answer.http_status == 429 or answer.status in constants.RATE_LIMIT_STATUSES:
                self.quota.release()  # refused before any work: the API did not count it
            if answer.quota_spent:
                self.quota.exhaust()
                raise QuotaExhaustedError(
                    f"the API answered {answer.status} ({answer.message or 'HTTP 429'}): the "
                    "daily quota, shared by the whole lab, is spent for today",
                    resets_at=next_utc_midnight(answer.served_at or self.api_now()),
                )
            if answer.status == constants.RATE_LIMIT_EXCEEDED:
                # Not the user's failure and not counted as an attempt: the tracker bounds it,
                # and decides when it is the daily quota (then it raises).
                waiting = self.rate_limits.waited_for_reset
                try:
                    pause = self.rate_limits.note_429(answer.retry_after)
                except QuotaExhaustedError:
                    self.quota.exhaust()
                    raise
                if self.rate_limits.waited_for_reset and not waiting:
                    log.warning(
                        "the daily quota is still spent after 00:00 UTC (its reset has been seen "
                        "to lag): waiting for it, one probe at a time, for up to %.0f minutes",
                        self.settings.reset_wait_seconds / 60,
                    )
                self.limiter.pause(pause)  # the limit is the endpoint's: hold every thread
                attempts -= 1
                continue
            self.rate_limits.note_answer()
            self._note_rejection(answer)
            if result is not None:
                if result.outcome is Outcome.TRANSIENT_ERROR:
                    log.warning(
                        "giving up on %s after %d attempts: %s %s",
                        username,
                        attempts,
                        answer.status,
                        answer.message,
                    )
                return result
            if answer.status == constants.ACCESS_TOKEN_INVALID:
                if token_renewed:
                    raise FatalApiError(
                        "the API rejected a freshly issued access token (access_token_invalid); "
                        "check that the client has Research API access",
                        code=answer.status,
                        log_id=answer.log_id,
                    )
                self.tokens.invalidate(token)
                token_renewed = True
                attempts -= 1  # an expired token is not the user's failure
                continue
            self._sleep(self._backoff(attempts))

    def _conclusion(
        self, username: str, answer: "_Answer", attempts: int, max_attempts: int
    ) -> UserInfoResult | None:
        """The user's result when this answer ends its asking: a final answer, or a transient
        one with no try left. None when it is asked again (or the answer is not about it: a
        429, an expired token, the quota)."""
        if answer.outcome is not None:
            return self._result(username, answer, attempts)
        not_a_try = (
            answer.http_status == 429
            or answer.status in constants.RATE_LIMIT_STATUSES
            or answer.status in (constants.ACCESS_TOKEN_INVALID, *_FATAL_CODES)
        )
        if not_a_try or attempts < max_attempts:
            return None
        return self._result(username, answer, attempts, Outcome.TRANSIENT_ERROR)

    def _record(
        self, sent_at: datetime, username: str, answer: "_Answer", result: UserInfoResult | None
    ) -> None:
        """Hand the request (with the user's result, when it ended the asking) to the caller's
        ledger before anything else happens to it."""
        if self._on_request is not None:
            self._on_request(
                RequestRecord(
                    sent_at,
                    username,
                    answer.http_status,
                    answer.status,
                    answer.log_id,
                    answer.message,
                    result,
                )
            )

    def _note_rejection(self, answer: "_Answer") -> None:
        """Count request-level rejections in a row; stop once they are clearly not a blip."""
        with self._rejections_lock:
            if answer.status != REQUEST_REJECTED:
                self._rejections_in_a_row = 0
                return
            self._rejections_in_a_row += 1
            if self._rejections_in_a_row >= REJECTIONS_TO_STOP:
                raise FatalApiError(
                    f"the API rejected {self._rejections_in_a_row} requests in a row as a whole "
                    f"(HTTP {answer.http_status}: {answer.message}); stopping before more quota "
                    "is spent",
                    log_id=answer.log_id,
                )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff, jittered to 50-100% of its ceiling: retrying threads spread out."""
        ceiling = min(
            self.settings.backoff_max_seconds,
            self.settings.backoff_base_seconds * 2 ** (attempt - 1),
        )
        return ceiling * (0.5 + self._random.random() / 2)

    def _result(
        self, username: str, answer: _Answer, attempts: int, outcome: Outcome | None = None
    ) -> UserInfoResult:
        data = answer.data or {}
        problems = problems_in(data, self.settings.fields) if answer.outcome is Outcome.OK else []
        if problems:  # paid for, unusable: the user's own error row, the raw values kept
            answer = replace(
                answer,
                outcome=Outcome.USER_ERROR,
                status=INVALID_ANSWER,
                message="the API's answer failed validation: " + "; ".join(problems),
            )
            data = {}
        return UserInfoResult(
            username=username,
            outcome=outcome or answer.outcome,
            status=answer.status,
            fetched_at=self._now(),
            error_message=answer.message,
            log_id=answer.log_id,
            http_status=answer.http_status,
            attempts=attempts,
            fields={name: data.get(name) for name in self.settings.fields},
            served_at=answer.served_at,
            extra={k: v for k, v in data.items() if k not in self.settings.fields},
        )

    def _post_user_info(self, username: str, token: str) -> _Answer:
        deadline = time.monotonic() + self.settings.request_deadline_seconds
        if self._on_send is not None:
            self._on_send(username)
        try:
            response = self.session.post(
                self._user_info_url,
                params={"fields": self._fields_param},
                json={"username": username},
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.settings.timeout_seconds,
                stream=True,
            )
            read_body(response, deadline, MAX_USER_INFO_BYTES)
        except BodyTooLarge:
            answer = _Answer(
                None,
                constants.MALFORMED_RESPONSE,
                f"an answer larger than {MAX_USER_INFO_BYTES:,} bytes (a user-info answer is "
                "under 5 KB): not read further",
            )
        except DeadlinePassed:
            answer = _Answer(
                None,
                constants.TIMEOUT,
                f"no complete answer within {self.settings.request_deadline_seconds:g} s",
            )
        except requests.Timeout:
            answer = _Answer(None, constants.TIMEOUT, "no answer within the timeout")
        except requests.RequestException as exc:
            # Resets, a body shorter than its Content-Length, bad gzip: this request failed,
            # not the run. The exception's text may echo the request: keep only its class.
            answer = _Answer(None, constants.CONNECTION_ERROR, type(exc).__name__)
        else:
            answer = self._scrubbed(classify_user_info_response(username, response))
            served_at = server_time(response.headers.get("Date"))
            if served_at is not None:
                answer = replace(answer, served_at=served_at)
        return answer

    def _refuse_scope(self, answer: _Answer) -> None:
        if answer.status in _FATAL_CODES:
            raise FatalApiError(
                f"the API refused the research scope ({answer.status}: {answer.message}); "
                "the client needs approved Research API access",
                code=answer.status,
                log_id=answer.log_id,
            )

    def _scrubbed(self, answer: "_Answer") -> "_Answer":
        """An answer can echo the request (an error page, a hostile server): never keep our
        secret or a token from it, in its message, its log_id or any text field."""
        secrets = (self.settings.client_secret, *self.tokens.issued())
        data = answer.data
        if data:
            data = {k: scrub(v, secrets) if isinstance(v, str) else v for k, v in data.items()}
        return replace(
            answer,
            message=scrub(answer.message, secrets),
            log_id=scrub(answer.log_id, secrets),
            data=data,
        )

    # -- many users -------------------------------------------------------------------------

    def iter_user_info(
        self,
        usernames: Iterable[str],
        stop: threading.Event | None = None,
        *,
        attempts: Mapping[str, int] | None = None,
        abandon: threading.Event | None = None,
    ) -> Iterator[UserInfoResult]:
        """Fetch many users with up to `concurrency` requests in flight (the ramp: a few at
        first, more while answers are healthy), yielding results in the order they are answered
        (not the order asked).

        At most twice `concurrency` users are held at once, so a 100k cohort streams. On a fatal
        error or an exhausted quota, the fetches already answered are still yielded, then the
        error is raised: a row the API already paid for is never lost. Setting `stop` asks no
        one new: requests already sent are still answered and yielded, then the stream ends.
        `attempts` caps the tries of some users (what is left of their daily budget). Setting
        `abandon` stops waiting for the requests in flight: the stream ends at once (their
        answers are lost; the caller noted them through `on_send`).
        """
        names = iter(usernames)
        cancelled = stop or threading.Event()
        abandon = abandon or threading.Event()
        limits = attempts or {}
        window = self.settings.concurrency * 2
        failure: BaseException | None = None
        pending: set[Future] = set()
        pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="tiktok")
        try:
            while not abandon.is_set():
                while failure is None and not cancelled.is_set() and len(pending) < window:
                    name = next(names, None)
                    if name is None:
                        break
                    username = normalize_username(name)
                    limit = limits.get(username)
                    pending.add(pool.submit(self._fetch_or_cancel, username, cancelled, limit))
                if not pending:
                    break
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    error = future.exception()
                    if error is None:
                        yield future.result()
                    elif not isinstance(error, FetchCancelledError) and failure is None:
                        failure = error
                        cancelled.set()
        finally:
            cancelled.set()
            # Abandoned (or the consumer went away): do not wait for answers nobody will read.
            pool.shutdown(wait=not abandon.is_set(), cancel_futures=True)
        if failure is not None:
            raise failure


# A 4xx that is about the request, not its user (e.g. "Something went wrong. Please try again
# later."): retried like a 5xx, within `max_attempts`; many in a row stop the run.
REQUEST_REJECTED = "request_rejected"
# That many in a row stop the run: more than a blip, and few (the ramp
# halves the requests in flight at each, so they come one at a time before the stop).
REJECTIONS_TO_STOP = 8

_FATAL_CODES = (constants.SCOPE_NOT_AUTHORIZED, constants.SCOPE_PERMISSION_MISSED)
_NAMES_DAILY_QUOTA = re.compile(r"daily\s+(?:request\s+)?(?:quota|limit)", re.IGNORECASE)


def _is_healthy(answer: _Answer) -> bool | None:
    """For the ramp: an answer that shows the API up and taking our pace (data or a per-user
    error), one that says slow down or stop (a server failure, a 429, a rejected request), or
    neither (an expired token)."""
    if answer.status == constants.ACCESS_TOKEN_INVALID:
        return None
    return not (
        is_server_failure(answer.status, answer.http_status)
        or answer.http_status == 429
        or answer.status in constants.RATE_LIMIT_STATUSES
        or answer.status == REQUEST_REJECTED
    )


def classify_user_info_response(username: str, response: requests.Response) -> _Answer:
    """Sort an HTTP answer into ok, per-user error, or transient, by evidence: the error code
    wherever it appears (even inside an HTTP 200), `message` or `msg`, and whether the message
    is about this user. An answer of no known shape is transient, its raw text kept."""
    status = response.status_code
    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, str):
        if status == 429:
            return _Answer(None, constants.RATE_LIMIT_EXCEEDED, "HTTP 429", "", status, None,
                           retry_after)  # fmt: skip
        return _Answer(
            None,
            constants.MALFORMED_RESPONSE,
            f"HTTP {status} with an unexpected body: {response.text[:300]!r}",
            http_status=status,
        )
    message = str(error.get("message") or error.get("msg") or "")
    log_id = str(error.get("log_id") or "")
    if code == constants.OK:
        data = body.get("data")
        if status != 200 or not isinstance(data, dict):
            return _Answer(
                None,
                constants.MALFORMED_RESPONSE,
                f"HTTP {status}: ok without data",
                log_id,
                status,
            )
        return _Answer(Outcome.OK, constants.OK, "", log_id, status, data)
    if status == 429 or code in constants.RATE_LIMIT_STATUSES:
        # The code as it came (the ledger keeps it); the quota's own code, or a text that names
        # the daily quota, ends the day at once. The generic one is told apart by behaviour.
        spent = code == constants.DAILY_QUOTA_LIMIT_EXCEEDED or bool(
            _NAMES_DAILY_QUOTA.search(message)
        )
        status_code = (
            code if code in constants.RATE_LIMIT_STATUSES else constants.RATE_LIMIT_EXCEEDED
        )
        return _Answer(
            None, status_code, message, log_id, status, None, retry_after, quota_spent=spent
        )
    if code == constants.ACCESS_TOKEN_INVALID or code in _FATAL_CODES:
        return _Answer(None, code, message, log_id, status)
    if status >= 500 or code == constants.INTERNAL_ERROR:
        return _Answer(None, code, message or f"HTTP {status}", log_id, status)
    if _is_about_user(message, username):
        return _Answer(Outcome.USER_ERROR, code, message, log_id, status)
    return _Answer(None, REQUEST_REJECTED, f"{code}: {message or f'HTTP {status}'}", log_id, status)


def _is_about_user(message: str, username: str) -> bool:
    """A per-user answer (not found, refused, private, banned) names the user (`username: x`)
    or says one of the per-user phrases (error_kinds); any other 4xx is about our request."""
    return f"username: {username}" in message.lower() or user_kind(message) is not None


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    # "Retry-After: 0" on every 429 would be a tight loop that only the 600/minute window
    # caps: read it (and nonsense) as no Retry-After, so our backoff and the quota rule apply.
    return seconds if 0 < seconds < float("inf") else None
