"""The Research API client: user info for one username, or for many in bounded parallel.

User info is one endpoint on the API session (session.py): every request passes the same
guards (token, requests in flight, 429 tracker, outage breaker, minute window, daily quota)
and comes back as one classified `Answer` (answer.py). This module adds what is user info's
own: the request body, retries of one user within its tries, and the `UserInfoResult`. It
knows nothing of Dagster or storage; callers that keep an audit trail pass `on_request`, called
once for every request sent, with the user's result when that request ended its asking (so
both are kept at once); `on_send`, called with the username just before each is sent, lets them
know of a request whose answer never arrives (a killed process).
"""

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime

from research_pipeline.tiktok import constants, guards
from research_pipeline.tiktok.answer import Answer
from research_pipeline.tiktok.bodies import MAX_USER_INFO_BYTES
from research_pipeline.tiktok.breaker import OutageBreaker
from research_pipeline.tiktok.errors import (
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
)
from research_pipeline.tiktok.models import Outcome, RequestRecord, UserInfoResult
from research_pipeline.tiktok.ramp import InFlightRamp
from research_pipeline.tiktok.scrub import scrub, scrub_deep
from research_pipeline.tiktok.session import ApiSession, Exchange
from research_pipeline.tiktok.settings import ClientSettings, source_of
from research_pipeline.tiktok.token import AccessTokenProvider
from research_pipeline.tiktok.transport import pooled_session
from research_pipeline.tiktok.usernames import normalize_username
from research_pipeline.tiktok.validation import INVALID_ANSWER, problems_in

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ResearchApiClient:
    def __init__(
        self,
        settings: ClientSettings,
        *,
        on_request: Callable[[RequestRecord], None] | None = None,
        on_send: Callable[[str], None] | None = None,
        on_result: Callable[[UserInfoResult], None] | None = None,
        quota_used_today: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utc_now,
        shared_quota: SharedReservations | None = None,
    ):
        self.settings = settings
        self._on_request = on_request
        self._on_result = on_result
        self._sleep = sleep
        self._now = now
        self._random = random.Random()
        self.http = pooled_session(settings.concurrency)
        self.tokens = AccessTokenProvider(
            self.http,
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
        self.session = self._session(on_send)
        self._user_info_url = settings.base_url + constants.USER_INFO_PATH
        self._fields_param = ",".join(settings.fields)

    def _session(self, on_send: Callable[[str], None] | None) -> ApiSession:
        """The guards every request passes, in order (guards.py says what each does)."""
        settings = self.settings
        return ApiSession(
            self.http,
            [
                guards.NotCancelled(),
                guards.Auth(self.tokens),
                guards.Ramp(self.ramp),
                guards.RateLimits(
                    self.rate_limits, self.limiter, self.quota, settings.reset_wait_seconds
                ),
                guards.Breaker(self.breaker),
                guards.Window(self.limiter),
                guards.Quota(self.quota, self.api_now),
                guards.Rejections(),
                # Last, after every wait above: nothing leaves once the run is stopping.
                guards.NotCancelled(),
                *([guards.NoteSent(on_send)] if on_send is not None else []),
            ],
            timeout_seconds=settings.timeout_seconds,
            deadline_seconds=settings.request_deadline_seconds,
            max_bytes=MAX_USER_INFO_BYTES,
            scrub=self._scrubbed,
        )

    def __repr__(self) -> str:
        return f"ResearchApiClient(base_url={self.settings.base_url!r})"

    def __enter__(self) -> "ResearchApiClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

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
        except (FetchCancelledError, QuotaExhaustedError):
            raise  # a spent quota asks no one new, but lets retries that hold a place go
        except TikTokApiError:
            cancelled.set()
            raise

    def _fetch(
        self, username: str, cancelled: threading.Event, max_attempts: int | None = None
    ) -> UserInfoResult:
        """Ask until a final answer or `max_attempts` tries (what is left of the user's tries
        today; default: the setting). A 429, an expired token or a connection never opened
        is not a try: the guards bound those (the tracker, the token's renewals, the
        breaker)."""
        max_attempts = max_attempts or self.settings.max_attempts
        tries = 0
        last: Answer | None = None  # the last answer that was a try
        while True:
            concluded = _Conclusion(self, username, tries, max_attempts)
            try:
                answer = self.session.send(
                    self._user_info_exchange(username, cancelled), concluded.record
                )
            except (QuotaExhaustedError, FetchCancelledError):
                if last is None or concluded.result is not None:
                    raise
                return self._retry_not_sent(username, last, tries)
            except TransientApiError:  # the token endpoint: a try, so a dead one ends
                tries += 1
                if tries >= max_attempts:
                    raise
                self._sleep(self._backoff(tries))
                continue
            tries += answer.a_try
            last = answer if answer.a_try else last
            if concluded.result is not None:
                if concluded.result.outcome is Outcome.TRANSIENT_ERROR:
                    log.warning(
                        "giving up on %s after %d attempts: %s %s",
                        username,
                        tries,
                        answer.status,
                        answer.message,
                    )
                return concluded.result
            if not (answer.rate_limited or answer.token_invalid):
                self._sleep(self._backoff(max(tries, 1)))

    def _retry_not_sent(self, username: str, last: Answer, tries: int) -> UserInfoResult:
        """A retry that could not be sent (the quota spent, the run stopping): the last answer
        is the user's row, handed to `on_result`, since no request carries it."""
        result = self._result(username, last, tries, Outcome.TRANSIENT_ERROR)
        if self._on_result is not None:
            self._on_result(result)
        return result

    def _user_info_exchange(self, username: str, cancelled: threading.Event) -> Exchange:
        return Exchange(
            self._user_info_url,
            json={"username": username},
            params={"fields": self._fields_param},
            cancelled=cancelled,
            subject=username,
        )

    def _conclusion(
        self, username: str, answer: Answer, tries: int, max_attempts: int
    ) -> UserInfoResult | None:
        """The user's result when this answer ends its asking: a final answer, or one that is
        not final with no try left. None when it is asked again."""
        if answer.outcome is not None:
            return self._result(username, answer, tries)
        if not answer.a_try or answer.no_scope or tries < max_attempts:
            return None
        return self._result(username, answer, tries, Outcome.TRANSIENT_ERROR)

    def _record(self, username: str, answer: Answer, result: UserInfoResult | None) -> None:
        """Hand the request (with the user's result, when it ended the asking) to the caller's
        ledger before any guard may stop the run."""
        if self._on_request is not None:
            self._on_request(
                RequestRecord(
                    self._now(),
                    username,
                    answer.http_status,
                    answer.status,
                    answer.log_id,
                    answer.message,
                    result,
                )
            )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff, jittered to 50-100% of its ceiling: retrying threads spread out."""
        ceiling = min(
            self.settings.backoff_max_seconds,
            self.settings.backoff_base_seconds * 2 ** (attempt - 1),
        )
        return ceiling * (0.5 + self._random.random() / 2)

    def _result(
        self, username: str, answer: Answer, attempts: int, outcome: Outcome | None = None
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
            attempts=max(attempts, 1),
            fields={name: data.get(name) for name in self.settings.fields},
            served_at=answer.served_at,
            extra={k: v for k, v in data.items() if k not in self.settings.fields},
        )

    def _scrubbed(self, answer: Answer) -> Answer:
        """An answer can echo the request (an error page, a hostile server): never keep our
        secret or a token from it, in its message, its log_id or any text field."""
        secrets = (self.settings.client_secret, *self.tokens.issued())
        data = scrub_deep(answer.data, secrets) if answer.data else answer.data
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
                        failure = error  # no one new is submitted from now on
                        if not isinstance(error, QuotaExhaustedError):
                            cancelled.set()
        finally:
            cancelled.set()
            # Abandoned (or the consumer went away): do not wait for answers nobody will read.
            pool.shutdown(wait=not abandon.is_set(), cancel_futures=True)
            self.quota.release_held()
        if failure is not None:
            raise failure


class _Conclusion:
    """What one exchange concluded for its user, worked out when the answer is recorded (before
    any guard may stop the run), so the journal gets the request and the result together."""

    def __init__(self, client: ResearchApiClient, username: str, tries: int, max_attempts: int):
        self.client, self.username = client, username
        self.tries, self.max_attempts = tries, max_attempts
        self.result: UserInfoResult | None = None

    def record(self, answer: Answer) -> None:
        """A failed try to be retried keeps the retry's reservation now; with none left in
        the day, the user ends here, with this answer as its row (never without one)."""
        client, tries = self.client, self.tries + answer.a_try
        self.result = client._conclusion(self.username, answer, tries, self.max_attempts)
        if self.result is None and answer.a_try and not answer.quota_spent:
            if not client.quota.hold(self.username):
                self.result = client._result(self.username, answer, tries, Outcome.TRANSIENT_ERROR)
        client._record(self.username, answer, self.result)
