"""How many requests go at once: a few at first, one more for every healthy answer, half on trouble.

A day at the real API's pace (answers around 0.3 s with multi-second tails, 600 a minute) ends
sooner the faster the minute's first requests go: request k + 600 waits for request k + 60 s. At
8 in flight a day of 1,000 took 1.64x its bound, at 32 1.24x (docs/benchmarks.md, real pace).
But every request in flight when the API goes down is a request of the day's quota lost, and a
run that starts in an outage should learn it from a handful. So a run starts at `START` in
flight and adds one per healthy answer (about doubling every round trip) up to `ceiling`, the
`concurrency` setting; a server failure, a 429 or a rejection of the request halves it, and the
outage breaker then takes over (one at a time, then stop). An outage at the day's start costs
about `START` requests; one in full flight costs the requests already out, at most `ceiling`.
"""

import threading

START = 4  # requests in flight before the first answer has shown the API is up


class InFlightRamp:
    def __init__(self, ceiling: int, start: int = START):
        self.ceiling = max(ceiling, 1)
        self._limit = min(max(start, 1), self.ceiling)
        self._in_flight = 0
        self._changed = threading.Condition()

    @property
    def limit(self) -> int:
        with self._changed:
            return self._limit

    def enter(self, cancelled: threading.Event) -> bool:
        """Wait for a place among the requests in flight; False when cancelled while waiting."""
        with self._changed:
            while self._in_flight >= self._limit:
                if cancelled.is_set():
                    return False
                # A place frees when an answer arrives (notified); the timeout only lets a
                # cancellation through while every request in flight is slow.
                self._changed.wait(0.05)
            self._in_flight += 1
            return True

    def leave(self, healthy: bool | None) -> None:
        """After the request: True grows the limit by one, False halves it, None keeps it."""
        with self._changed:
            self._in_flight -= 1
            if healthy is True:
                self._limit = min(self.ceiling, self._limit + 1)
            elif healthy is False:
                self._limit = max(1, self._limit // 2)
            self._changed.notify_all()
