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
from typing import TYPE_CHECKING

from research_pipeline.tiktok.error_kinds import is_server_failure
from research_pipeline.tiktok.errors import ApiOutageError

if TYPE_CHECKING:
    from research_pipeline.tiktok.answer import Answer

__all__ = ["OutageBreaker", "is_server_failure", "TRIP_AFTER", "PROBE_AFTER"]

TRIP_AFTER = 5  # server failures in a row that mean "the API is down, not this user"
PROBE_AFTER = 2  # from this many in a row, one request at a time


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

    def note(self, answer: "Answer") -> None:
        """Count one answer; raises ApiOutageError when the streak reaches `trip_after`. A
        429 or an expired token says nothing of whether the API is up: the streak stays."""
        with self._lock:
            if not answer.server_failure:
                if answer.shows_api_up:
                    self._streak = 0
                return
            self._streak += 1
            what = (
                f"HTTP {answer.http_status} {answer.status}"
                if answer.http_status
                else answer.status
            )
            message = answer.message
            self.last_failure = f"{what}{f' ({message[:80]})' if message else ''}"
            if self._streak >= self.trip_after:
                raise ApiOutageError(
                    f"the API answered the last {self._streak} requests with server errors "
                    f"(last: {self.last_failure}): stopped for now so the quota is not spent "
                    "on an outage; the next run tries again with one request first",
                    streak=self._streak,
                )
