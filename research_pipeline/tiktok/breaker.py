"""The outage breaker: stop asking while the API is down, since its failures cost quota too.

The Research API has been seen answering only 500s for hours, and every 500 counts against the
1,000 requests a day; retrying each user five times would spend the day on nothing (tiktok-
library stops a crawl after 5 errors in a row). Server-side failures in a row, across users
(5xx, HTML error pages, timeouts, resets), trip the breaker: the client stops and says so, and
the users not answered stay due. After two in a row, requests go one at a time, so a streak
costs about the requests already in flight, not the whole concurrency again. A later run that
knows the day ended in an outage starts `suspicious`: one probe, and a failure trips at once.
"""

import threading
import time
from collections.abc import Callable

from research_pipeline.tiktok import constants
from research_pipeline.tiktok.errors import ApiOutageError

TRIP_AFTER = 5  # server failures in a row that mean "the API is down, not this user"
PROBE_AFTER = 2  # from this many in a row, one request at a time

_TRANSPORT_FAILURES = (
    constants.TIMEOUT,
    constants.CONNECTION_ERROR,
    constants.MALFORMED_RESPONSE,
    constants.INTERNAL_ERROR,
)


def is_server_failure(status: str, http_status: int | None) -> bool:
    """An answer that says the API is in trouble, whoever was asked."""
    return status in _TRANSPORT_FAILURES or (http_status is not None and http_status >= 500)


class OutageBreaker:
    def __init__(
        self,
        trip_after: int = TRIP_AFTER,
        probe_after: int = PROBE_AFTER,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.trip_after = trip_after
        self.probe_after = min(probe_after, trip_after)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._streak = 0
        self._probe_out = False
        self.last_failure = ""

    @property
    def streak(self) -> int:
        with self._lock:
            return self._streak

    def suspect_outage(self, last_failure: str) -> None:
        """The day's ledger ends in an outage: probe with one request; one failure trips."""
        with self._lock:
            self._streak = max(self._streak, self.trip_after - 1)
            self.last_failure = last_failure

    def enter(self, cancelled: threading.Event | None = None) -> bool:
        """Before a send: True when this send is the one probe (call `leave` after it)."""
        while True:
            with self._lock:
                if self._streak < self.probe_after:
                    return False
                if not self._probe_out:
                    self._probe_out = True
                    return True
            if cancelled is not None and cancelled.is_set():
                return False
            self._sleep(0.02)

    def leave(self) -> None:
        with self._lock:
            self._probe_out = False

    def note(self, status: str, http_status: int | None, message: str = "") -> None:
        """Count one answer; raises ApiOutageError when the streak reaches `trip_after`."""
        with self._lock:
            if not is_server_failure(status, http_status):
                if status not in (constants.RATE_LIMIT_EXCEEDED, constants.ACCESS_TOKEN_INVALID):
                    self._streak = 0  # the API answered properly: it is up
                return
            self._streak += 1
            what = f"HTTP {http_status} {status}" if http_status else status
            self.last_failure = f"{what}{f' ({message[:80]})' if message else ''}"
            if self._streak >= self.trip_after:
                raise ApiOutageError(
                    f"the API answered the last {self._streak} requests with server errors "
                    f"(last: {self.last_failure}): stopped for now so the quota is not spent "
                    "on an outage; the next run tries again with one request first",
                    streak=self._streak,
                )
