"""One road for every request: an API session of small guards around one pooled HTTP client.

A request (`Exchange`) passes every guard's `before` in order (a token, a place among the
requests in flight, the 429 and outage probes, the minute window, a reservation of the day's
quota), is sent once, comes back as one classified `Answer` (answer.py), is handed to the
caller's `record` (the journal: before anything else may stop the run), and then passes every
entered guard's `after` in reverse order (each may release, pause, renew or stop). A guard that
stops the run (quota spent, outage, refused scope) raises from `after`, once every guard has
seen the answer, so no place among the requests in flight or probe is ever left taken.

The session is endpoint-agnostic: user info is one `Endpoint` on top of it (client.py); the
next Research API endpoint is another description, not another send loop.

Each exchange is bounded (transport.py): a total deadline from connecting to the last byte, a
size cap on the body, no redirect followed.
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import requests

from research_pipeline.tiktok import answer as answers
from research_pipeline.tiktok.answer import Answer
from research_pipeline.tiktok.bodies import BodyTooLarge, DeadlinePassed
from research_pipeline.tiktok.constants import MALFORMED_RESPONSE, TIMEOUT
from research_pipeline.tiktok.errors import FetchCancelledError
from research_pipeline.tiktok.token import server_time
from research_pipeline.tiktok.transport import post_within


@dataclass
class Exchange:
    """One request on its way: what to send, and what the guards noted about it."""

    url: str
    json: dict
    params: dict = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)
    subject: str | None = None  # the username asked: an error must be about it
    headers: dict = field(default_factory=dict)
    token: str = ""
    notes: dict = field(default_factory=dict)  # a guard's own state between before and after

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise FetchCancelledError(f"request for {self.subject!r} cancelled")


class Guard(Protocol):
    """A part every request passes: `before` it is sent (may wait, may raise to not send it),
    `after` its answer (None when it was never answered; may raise to stop the run)."""

    def before(self, exchange: Exchange) -> None: ...

    def after(self, exchange: Exchange, answer: Answer | None) -> None: ...


# -- the session ------------------------------------------------------------------------------


class ApiSession:
    """Sends exchanges through the guards; classifies each answer once."""

    def __init__(
        self,
        http: requests.Session,
        guards: Sequence[Guard],
        *,
        timeout_seconds: float,
        deadline_seconds: float,
        max_bytes: int,
        scrub: Callable[[Answer], Answer] = lambda answer: answer,
        note_server_time: Callable[[str | None], None] = lambda _header: None,
    ):
        self.http = http
        self.guards = list(guards)
        self.timeout_seconds = timeout_seconds
        self.deadline_seconds = deadline_seconds
        self.max_bytes = max_bytes
        self._scrub = scrub
        self._note_server_time = note_server_time

    def send(self, exchange: Exchange, record: Callable[[Answer], None]) -> Answer:
        """Send `exchange` once through the guards; `record` gets the answer before any
        guard's `after` (which may raise to stop the run)."""
        entered: list[Guard] = []
        try:
            for guard in self.guards:
                guard.before(exchange)
                entered.append(guard)
            answer = self._transport(exchange)
        except BaseException:
            _after_all(entered, exchange, None, swallow=True)
            raise
        try:
            record(answer)
        finally:
            _after_all(entered, exchange, answer, swallow=False)
        return answer

    def _transport(self, exchange: Exchange) -> Answer:
        try:
            response = post_within(
                self.http,
                exchange.url,
                deadline_seconds=self.deadline_seconds,
                timeout_seconds=self.timeout_seconds,
                max_bytes=self.max_bytes,
                params=exchange.params,
                json=exchange.json,
                headers=exchange.headers,
            )
        except BodyTooLarge:
            return answers.failed(
                MALFORMED_RESPONSE,
                f"an answer larger than {self.max_bytes:,} bytes: not read further",
            )
        except DeadlinePassed:
            return answers.failed(TIMEOUT, f"no complete answer within {self.deadline_seconds:g} s")
        except requests.RequestException as exc:
            return answers.transport_failure(exc)
        header = response.headers.get("Date")
        self._note_server_time(header)
        answer = self._scrub(answers.classify(response, exchange.subject))
        served_at = server_time(header)
        if served_at is not None:
            answer = replace(answer, served_at=served_at)
        return answer


def _after_all(entered, exchange, answer, *, swallow: bool) -> None:
    """Every entered guard sees the answer (in reverse order); the first error is raised once
    all have (unless `swallow`: an error is already on its way)."""
    first: BaseException | None = None
    for guard in reversed(entered):
        try:
            guard.after(exchange, answer)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others
            first = first or exc
    if first is not None and not swallow:
        raise first
