"""The guards every request passes (session.py), each a small part with the same two steps.

In the order they run before a send: the token (auth), a place among the requests in flight
(ramp), the 429 tracker's probe, the outage breaker's probe, the minute window, a reservation
of the day's quota, and the note that a request is about to leave (so a killed process's
requests are counted). After the answer, in reverse: the quota is given back for a request the
API did not count, or declared spent; the breaker counts server failures; the tracker tells
the per-minute limit from the daily quota and pauses every sender; the ramp grows or halves;
the token is marked as working, or renewed after a lapse. Each guard knows only its own part;
the rules they share about what an answer means are the `Answer`'s (answer.py).
"""

import logging
import threading
from collections.abc import Callable

from research_pipeline.tiktok.answer import Answer
from research_pipeline.tiktok.breaker import OutageBreaker
from research_pipeline.tiktok.errors import FatalApiError, QuotaExhaustedError
from research_pipeline.tiktok.limits import (
    DailyQuota,
    RateLimitTracker,
    SlidingWindowLimiter,
    next_utc_midnight,
)
from research_pipeline.tiktok.ramp import InFlightRamp
from research_pipeline.tiktok.session import Exchange
from research_pipeline.tiktok.token import AccessTokenProvider

log = logging.getLogger(__name__)

# Request-level rejections in a row (a 4xx not about its user, a redirect) that stop the run:
# more than a blip, and few (the ramp halves the requests in flight at each, so they come one
# at a time before the stop).
REJECTIONS_TO_STOP = 8


class NotCancelled:
    """Nothing new is sent once the run is stopping (a signal, a fatal error elsewhere)."""

    def before(self, exchange: Exchange) -> None:
        exchange.check_cancelled()

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        pass


class Auth:
    """The bearer token; after the answer, what it proves about the token (tokens.refused
    decides when a 401 means "no access")."""

    def __init__(self, tokens: AccessTokenProvider):
        self.tokens = tokens

    def before(self, exchange: Exchange) -> None:
        exchange.token = self.tokens.get()
        exchange.headers["Authorization"] = f"Bearer {exchange.token}"

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        if answer is None:
            return
        if answer.token_invalid:
            self.tokens.refused(exchange.token)
        elif answer.reached_api:
            self.tokens.accepted(exchange.token)
        if answer.no_scope:
            raise FatalApiError(
                f"the API refused the research scope ({answer.status}: {answer.message}); "
                "the client needs approved Research API access",
                code=answer.status,
                log_id=answer.log_id,
            )


class Ramp:
    """A place among the requests in flight: more while answers are healthy, half on trouble."""

    def __init__(self, ramp: InFlightRamp):
        self.ramp = ramp

    def before(self, exchange: Exchange) -> None:
        if not self.ramp.enter(exchange.cancelled):
            exchange.check_cancelled()

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        self.ramp.leave(None if answer is None else answer.healthy)


class RateLimits:
    """While 429s persist, one probe at a time; each 429 pauses every sender, and one that
    outlasts the minute window is the daily quota (RateLimitTracker)."""

    def __init__(
        self,
        tracker: RateLimitTracker,
        limiter: SlidingWindowLimiter,
        quota: DailyQuota,
        reset_wait_seconds: float,
    ):
        self.tracker, self.limiter, self.quota = tracker, limiter, quota
        self.reset_wait_seconds = reset_wait_seconds

    def before(self, exchange: Exchange) -> None:
        exchange.notes["rate_probe"] = self.tracker.enter()

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        if exchange.notes.get("rate_probe"):
            self.tracker.leave()
        if answer is None or answer.quota_spent:
            return  # the quota's own answer: the Quota guard ends the day
        if not answer.rate_limited:
            self.tracker.note_answer()
            return
        waiting = self.tracker.waited_for_reset
        try:
            pause = self.tracker.note_429(answer.retry_after)
        except QuotaExhaustedError as exc:
            # Why, for every thread that next finds the quota gone (whichever says it first).
            self.quota.exhaust(str(exc))
            raise
        if self.tracker.waited_for_reset and not waiting:
            log.warning(
                "the daily quota is still spent after 00:00 UTC (its reset has been seen "
                "to lag): waiting for it, one probe at a time, for up to %.0f minutes",
                self.reset_wait_seconds / 60,
            )
        self.limiter.pause(pause)  # the limit is the endpoint's: hold every thread


class Breaker:
    """Server failures in a row: one request at a time, then stop (OutageBreaker)."""

    def __init__(self, breaker: OutageBreaker):
        self.breaker = breaker

    def before(self, exchange: Exchange) -> None:
        exchange.notes["outage_probe"] = self.breaker.enter(exchange.cancelled)

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        if exchange.notes.get("outage_probe"):
            self.breaker.leave()
        if answer is not None:
            self.breaker.note(answer)


class Window:
    """At most the endpoint's requests a minute (SlidingWindowLimiter)."""

    def __init__(self, limiter: SlidingWindowLimiter):
        self.limiter = limiter

    def before(self, exchange: Exchange) -> None:
        self.limiter.acquire()

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        pass


class Quota:
    """A reservation of the day's quota per request; given back when the API did not count
    it (a 429, a connection never opened), and the day ended on the quota's own answer."""

    def __init__(self, quota: DailyQuota, api_now: Callable):
        self.quota = quota
        self.api_now = api_now

    def before(self, exchange: Exchange) -> None:
        if not self.quota.use_held(exchange.subject or ""):  # a retry kept its reservation
            self.quota.reserve()

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        if answer is None or not answer.spent:
            self.quota.release()
        if answer is not None and answer.quota_spent:
            why = f"the API answered {answer.status} ({answer.message or 'HTTP 429'})"
            self.quota.exhaust(why)
            raise QuotaExhaustedError(
                f"{why}: the daily quota, shared by the whole lab, is spent for today",
                resets_at=next_utc_midnight(answer.served_at or self.api_now()),
            )


class NoteSent:
    """Tells the caller a request is about to leave (`on_send`), after every other guard."""

    def __init__(self, on_send: Callable[[str], None]):
        self.on_send = on_send

    def before(self, exchange: Exchange) -> None:
        self.on_send(exchange.subject or "")

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        pass


class Rejections:
    """Requests rejected as a whole in a row: many mean the API refuses our requests, and
    going on would spend the quota for nothing."""

    def __init__(self, stop_after: int = REJECTIONS_TO_STOP):
        self.stop_after = stop_after
        self._in_a_row = 0
        self._lock = threading.Lock()

    def before(self, exchange: Exchange) -> None:
        pass

    def after(self, exchange: Exchange, answer: Answer | None) -> None:
        if answer is None or answer.rate_limited or answer.token_invalid:
            return
        with self._lock:
            if not answer.rejected:
                self._in_a_row = 0
                return
            self._in_a_row += 1
            if self._in_a_row >= self.stop_after:
                raise FatalApiError(
                    f"the API rejected {self._in_a_row} requests in a row as a whole "
                    f"(HTTP {answer.http_status}: {answer.message}); stopping before more quota "
                    "is spent",
                    log_id=answer.log_id,
                )
