"""Client-side limits: the 600/minute sliding window and the daily quota.

Staying under the window costs nothing; hitting it costs a 429, and every request, failed or
not, counts against the 1,000/day quota. Clocks and sleep are injectable so tests need not wait.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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


class DailyQuota:
    """Counts requests against the daily quota (reset at 00:00 UTC), refusing the one too many.

    `used` starts from what was already spent today (the pipeline reads it from its ledger).
    """

    def __init__(
        self,
        limit: int | None,
        used: int = 0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.limit = limit
        self._now = now
        self._day = now().date()
        self._used = used
        self._server_says_exhausted = False
        self._lock = threading.Lock()

    def _roll_over(self) -> None:
        today = self._now().date()
        if today != self._day:
            self._day, self._used, self._server_says_exhausted = today, 0, False

    def reserve(self) -> None:
        with self._lock:
            self._roll_over()
            if self._server_says_exhausted or (self.limit is not None and self._used >= self.limit):
                resets_at = next_utc_midnight(self._now())
                size = "the API's" if self.limit is None else f"the {self.limit}-request"
                raise QuotaExhaustedError(
                    f"{size} daily quota is used up ({self._used} requests counted today); "
                    f"it resets at {resets_at:%Y-%m-%d %H:%M} UTC",
                    resets_at=resets_at,
                )
            self._used += 1

    def exhaust(self) -> None:
        """The server said the quota is gone (it is shared by the whole lab): believe it."""
        with self._lock:
            self._roll_over()
            self._server_says_exhausted = True

    @property
    def used(self) -> int:
        with self._lock:
            self._roll_over()
            return self._used

    @property
    def remaining(self) -> int | None:
        with self._lock:
            self._roll_over()
            if self._server_says_exhausted:
                return 0
            return None if self.limit is None else max(0, self.limit - self._used)
