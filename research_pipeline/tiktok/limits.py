"""Client-side limits: the 600/minute sliding window and the daily quota.

Staying under the window costs nothing; hitting it costs a 429, and every request, failed or
not, counts against the 1,000/day quota. Clocks and sleep are injectable so tests need not wait.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from research_pipeline.tiktok.errors import QuotaExhaustedError


class SlidingWindowLimiter:
    """At most `max_requests` sends in any `window_seconds` (plus a margin for network jitter),
    and a shared pause that a 429's Retry-After imposes on every thread."""

    def __init__(
        self,
        max_requests: int | None,
        window_seconds: float = 60.0,
        margin_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.max_requests = max_requests
        self.window = window_seconds + margin_seconds
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until a request may be sent, then count it as sent."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait <= 0:
                    if self.max_requests is None:
                        return
                    while self._sent and self._sent[0] <= now - self.window:
                        self._sent.popleft()
                    if len(self._sent) < self.max_requests:
                        self._sent.append(now)
                        return
                    wait = self._sent[0] + self.window - now
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every sender for `seconds` (a 429 applies to the endpoint, not to one thread)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


def next_utc_midnight(now: datetime) -> datetime:
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


class SharedReservations(Protocol):
    """The day's reservations of every process of a project (research_pipeline.coordination):
    the client needs only these two calls, not how or where they are kept."""

    def reserve(self, day: date, limit: int, floor: int) -> int | None:
        """Reserve one request of `day` (never counting from below `floor`, what this process
        knows was spent); the day's reservations including it, or None when it is full."""

    def release(self, day: date) -> None:
        """Give back one reservation of `day` (the API did not count that request)."""


class DailyQuota:
    """Counts requests against the daily quota (reset at 00:00 UTC), refusing the one too many.

    `used` starts from what was already spent today (the pipeline reads it from its ledger).
    With `shared`, every reservation also goes through the project's shared file, keyed by the
    API's day (`api_day`), so concurrent processes share one count.
    """

    def __init__(
        self,
        limit: int | None,
        used: int = 0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        shared: SharedReservations | None = None,
        api_day: Callable[[], date] | None = None,
    ):
        self.limit = limit
        self._shared = shared
        self._api_day = api_day or (lambda: self._now().date())
        self._now = now
        self._day = now().date()
        self._used = used
        self._server_says_exhausted = False
        self._why = ""
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # reservations kept for a user's next try

    def _roll_over(self) -> None:
        today = self._now().date()
        if today != self._day:
            self._day, self._used, self._server_says_exhausted = today, 0, False

    def reserve(self) -> None:
        with self._lock:
            self._roll_over()
            if self._server_says_exhausted or (self.limit is not None and self._used >= self.limit):
                api_day = self._api_day()  # the API's next midnight, not this machine's
                resets_at = datetime(api_day.year, api_day.month, api_day.day, tzinfo=UTC)
                resets_at += timedelta(days=1)
                size = "the API's" if self.limit is None else f"the {self.limit}-request"
                why = self._why or f"{self._used} requests counted today"
                raise QuotaExhaustedError(
                    f"{size} daily quota is used up ({why}); "
                    f"it resets at {resets_at:%Y-%m-%d %H:%M} UTC",
                    resets_at=resets_at,
                )
            if self._shared is not None and self.limit is not None:
                day = self._api_day()
                reserved = self._shared.reserve(day, self.limit, self._used)
                if reserved is None:
                    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
                    resets_at = next_utc_midnight(midnight)
                    raise QuotaExhaustedError(
                        f"the {self.limit}-request daily quota is reserved in full for {day} by "
                        f"this project's runs (counted across processes in {self._shared}); it "
                        f"resets at {resets_at:%Y-%m-%d %H:%M} UTC",
                        resets_at=resets_at,
                    )
                self._used = max(self._used, reserved)
            else:
                self._used += 1

    def hold(self, key: str) -> bool:
        """Reserve the next try of `key` now (a user whose answer failed and is retried after
        a backoff), so that users after it in the plan cannot take it meanwhile; False when
        the day has none left."""
        try:
            self.reserve()
        except QuotaExhaustedError:
            return False
        with self._lock:
            self._held[key] = self._held.get(key, 0) + 1
        return True

    def use_held(self, key: str) -> bool:
        """Take the reservation held for `key`, if any (its retry is being sent)."""
        with self._lock:
            if not self._held.get(key):
                return False
            self._held[key] -= 1
            return True

    def release_held(self) -> None:
        """Give back what was held for retries that were never sent (the run stopped)."""
        with self._lock:
            count, self._held = sum(self._held.values()), {}
        for _ in range(count):
            self.release()

    def release(self) -> None:
        """The request just reserved was refused with a 429: the API did not count it."""
        with self._lock:
            self._roll_over()
            if self._used > 0:
                self._used -= 1
            if self._shared is not None and self.limit is not None:
                self._shared.release(self._api_day())

    def exhaust(self, why: str = "") -> None:
        """The server said the quota is gone (it is shared by the whole lab): believe it."""
        with self._lock:
            self._roll_over()
            self._server_says_exhausted = True
            self._why = why or self._why

    @property
    def remaining(self) -> int | None:
        with self._lock:
            self._roll_over()
            if self._server_says_exhausted:
                return 0
            return None if self.limit is None else max(0, self.limit - self._used)


# The API's short-term limit is per minute: a Retry-After longer than that is not it, and waiting
# it out (a 429 once said 86400) would freeze every thread past the day. Treated as the quota.
MAX_RETRY_AFTER_SECONDS = 61.0


class RateLimitTracker:
    """Tells the API's two 429s apart by behaviour, since both say `rate_limit_exceeded` with the
    same generic text: a 429 that persists beyond the minute window, while we ask at a trickle
    (one probe at a time), is the daily quota (shared by the lab, often spent by a colleague our
    ledger never saw); one that clears within the window was the per-minute limit.

    While limited, one request at a time probes (`enter`/`leave`), so detecting the quota costs
    about the requests in flight plus a handful of probes, not a retry storm. Early in the API's
    day (the quota has been seen to come back hours after 00:00 UTC) it keeps probing, with a
    longer backoff, up to `reset_wait_seconds` before giving up for today.
    """

    def __init__(
        self,
        window_seconds: float = 61.0,
        reset_wait_seconds: float = 1800.0,
        reset_backoff_seconds: float = 60.0,
        reset_lag_hours: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        api_now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.window = window_seconds
        self.reset_wait = reset_wait_seconds
        self.reset_backoff = reset_backoff_seconds
        self.reset_lag = timedelta(hours=reset_lag_hours)
        self._clock, self._sleep, self._api_now = clock, sleep, api_now
        self._lock = threading.Lock()
        self._first: float | None = None
        self._count = 0
        self._probe_out = False
        self.waited_for_reset = False

    def expect_quota(self) -> None:
        """Today already ended in 429s (the ledger says so): the next send is one probe, and a
        429 to it is the daily quota at once, without probing for another minute."""
        with self._lock:
            if self._first is None:
                self._first = self._clock() - self.window - 0.001
                self._count = 1

    def enter(self) -> bool:
        """Before a send: returns True when this send is the probe (call `leave` after it)."""
        while True:
            with self._lock:
                if self._first is None:
                    return False
                if not self._probe_out:
                    self._probe_out = True
                    return True
            self._sleep(0.05)

    def leave(self) -> None:
        with self._lock:
            self._probe_out = False

    def note_answer(self) -> None:
        """Any answer that is not a 429: the limit has cleared."""
        with self._lock:
            self._first, self._count = None, 0

    def note_429(self, retry_after: float | None) -> float:
        """Seconds every sender should pause; raises QuotaExhaustedError once it is the quota."""
        with self._lock:
            now = self._clock()
            if self._first is None:
                self._first = now
            self._count += 1
            persisted = now - self._first
            if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
                raise QuotaExhaustedError(
                    f"the API asked to wait {retry_after:.0f} s (Retry-After), longer than its "
                    "per-minute window: treated as the daily quota, spent for today",
                    resets_at=next_utc_midnight(self._api_now()),
                )
            if persisted <= self.window:
                if retry_after is not None:
                    return retry_after  # the API said how long: exactly that, nothing on top
                return min(2.0 ** (self._count - 1), max(self.window - persisted, 1.0))
            api_now = self._api_now()
            midnight = datetime(api_now.year, api_now.month, api_now.day, tzinfo=UTC)
            if api_now - midnight < self.reset_lag and persisted < self.window + self.reset_wait:
                self.waited_for_reset = True
                return min(self.reset_backoff * 2 ** min(self._count, 6), 600.0)
            raise QuotaExhaustedError(
                f"the API has answered 429 rate_limit_exceeded for {persisted:.0f} s, past its "
                "per-minute window, while we asked one request at a time: the daily quota "
                "(shared by the whole lab) is spent",
                resets_at=next_utc_midnight(api_now),
            )
