"""Client-credentials access token: fetched once, shared by every thread, renewed before expiry."""

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import NoReturn

import requests

from research_pipeline.tiktok import constants
from research_pipeline.tiktok.bodies import MAX_TOKEN_BYTES, BodyTooLarge, DeadlinePassed
from research_pipeline.tiktok.errors import FatalApiError, TransientApiError
from research_pipeline.tiktok.scrub import scrub
from research_pipeline.tiktok.transport import post_within

# Tokens issued in a row without one request accepted: the second one refused too proves that
# the credentials have no Research API access (the first may have lapsed, or been revoked by a
# renewal another thread made).
TOKENS_WITHOUT_ACCEPTANCE = 2
# A token that was accepted and then refused lapsed (tokens have been seen to expire early):
# renewed, at most this many times in a row without a request accepted in between.
MAX_RENEWALS_WITHOUT_ACCEPTANCE = 4

# RFC 6750's b64token: what a bearer token may hold and still travel in a header.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


def server_time(header: str | None) -> datetime | None:
    """The moment in an HTTP Date header, or None when absent or unreadable."""
    try:
        moment = parsedate_to_datetime(header) if header else None
    except (TypeError, ValueError):
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


# A token request that times out or loses its connection is asked again this many times in all,
# after a short pause: one slow answer must not cost the day's run, and an endpoint that cannot
# be reached at all is still reported within seconds.
TOKEN_ATTEMPTS = 3
TOKEN_RETRY_PAUSE_SECONDS = 0.5

# OAuth errors that mean our request or credentials are wrong: asking again cannot help.
_REFUSALS = (
    constants.INVALID_CLIENT,
    constants.INVALID_REQUEST,
    "unauthorized_client",
    "unsupported_grant_type",
    "access_denied",
)


def _lifetime(value) -> float:
    """Seconds a token lives: the answer's `expires_in` when it is a sensible number, else the
    documented 2 hours (a negative or unreadable value must not mean a token per request)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return float(constants.TOKEN_LIFETIME_SECONDS)
    if not 0 < seconds <= 30 * 86400:
        return float(constants.TOKEN_LIFETIME_SECONDS)
    return seconds


class AccessTokenProvider:
    """Hands out a valid token; one lock makes concurrent callers share a single refresh."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        client_key: str,
        client_secret: str,
        timeout_seconds: float = 30.0,
        deadline_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._session = session
        self._sleep = sleep
        self._url = base_url + constants.TOKEN_PATH
        self._client_key = client_key
        self._client_secret = client_secret
        self._timeout = timeout_seconds
        self._deadline = deadline_seconds
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self._refused: FatalApiError | None = None
        self._server_clock_offset = timedelta(0)
        self.requests_made = 0
        self._issued: list[str] = []
        self._accepted: set[str] = set()  # tokens the API has taken at least once
        self._issued_since_accepted = 0

    def __repr__(self) -> str:
        return f"AccessTokenProvider(url={self._url!r}, token={'<set>' if self._token else None})"

    def get(self) -> str:
        with self._lock:
            if self._refused is not None:
                raise self._refused  # credentials do not heal: never ask twice
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch()
            return self._token

    def server_now(self) -> datetime:
        """The API's idea of now (from the Date header of the token answer): snapshots are
        labelled by the day the API served them, whatever this machine's clock says."""
        self.get()
        return datetime.now(UTC) + self._server_clock_offset

    def _note_server_clock(self, header: str | None) -> None:
        moment = server_time(header)
        if moment is not None:
            self._server_clock_offset = moment - datetime.now(UTC)

    def issued(self) -> tuple[str, ...]:
        """Tokens this provider has held (to scrub them from anything echoed back)."""
        return tuple(self._issued)

    def accepted(self, token: str) -> None:
        """The API took a request made with `token`: it works (or worked)."""
        if token in self._accepted:
            return
        with self._lock:
            self._accepted.add(token)
            self._issued_since_accepted = 0

    def refused(self, token: str) -> None:
        """A 401 (access_token_invalid) on `token`. Only a token that never worked, after a
        renewal that did not help either, proves "no access" (FatalApiError); a token that
        worked lapsed, and one another thread already renewed says nothing: renew and go on,
        a few times at most without a request accepted in between."""
        with self._lock:
            if self._token == token:
                self._token = None
            if self._issued_since_accepted >= MAX_RENEWALS_WITHOUT_ACCEPTANCE or (
                token not in self._accepted
                and self._issued_since_accepted >= TOKENS_WITHOUT_ACCEPTANCE
            ):
                self._refused = FatalApiError(
                    f"the API refused {self._issued_since_accepted} access tokens in a row "
                    "(access_token_invalid) without accepting one request: check that the "
                    "client has Research API access",
                    code="access_token_invalid",
                )
                raise self._refused

    def _post(self) -> requests.Response:
        """The token request, asked again after a timeout or a lost connection; its whole answer
        within the deadline and 64 KB (a streaming or dripping endpoint ends in seconds)."""
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            self.requests_made += 1
            try:
                # Never redirected: the secret goes to the configured origin only.
                return post_within(
                    self._session,
                    self._url,
                    deadline_seconds=self._deadline,
                    timeout_seconds=self._timeout,
                    max_bytes=MAX_TOKEN_BYTES,
                    data={
                        "client_key": self._client_key,
                        "client_secret": self._client_secret,
                        "grant_type": "client_credentials",
                    },
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            except (DeadlinePassed, BodyTooLarge) as exc:
                raise TransientApiError(
                    f"the token endpoint {self._url} sent no complete answer within "
                    f"{self._deadline:g} s and {MAX_TOKEN_BYTES:,} bytes ({type(exc).__name__})"
                ) from None
            except requests.RequestException as exc:
                if attempt == TOKEN_ATTEMPTS:
                    # The exception text of requests can echo the request; keep its class.
                    raise TransientApiError(
                        f"could not reach the token endpoint {self._url} in {attempt} "
                        f"attempts: {type(exc).__name__}"
                    ) from None
                self._sleep(TOKEN_RETRY_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")

    def _fetch(self) -> None:
        """Ask for a token: kept when issued; a refusal is remembered (no second ask with the
        same credentials); anything else is transient."""
        response = self._post()
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_redirect:
            self._refuse(
                f"the token endpoint {self._url} answered HTTP {response.status_code} with a "
                "redirect: refusing to send the client credentials anywhere else"
            )
        if not isinstance(body, dict):
            raise TransientApiError(
                f"token endpoint {self._url} answered HTTP {response.status_code} without JSON"
            )
        token = body.get("access_token")
        if response.ok and isinstance(token, str) and token:
            self._keep(token, body, response.headers.get("Date"))
            return
        error, description, log_id = self._error_of(body, response.status_code)
        refused = error in _REFUSALS or 400 <= response.status_code < 500
        if refused and response.status_code != 429:
            self._refuse(
                f"the token endpoint refused the client credentials ({error}: {description}). "
                "Check TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET.",
                code=error,
                log_id=log_id,
            )
        raise TransientApiError(f"token endpoint error {error}: {description} (log_id {log_id})")

    def _refuse(self, message: str, **details) -> NoReturn:
        self._refused = FatalApiError(message, **details)
        raise self._refused

    def _keep(self, token: str, body: dict, date_header: str | None) -> None:
        if not _TOKEN_SHAPE.match(token):
            # A token with a newline or a non-ASCII letter cannot go into an Authorization
            # header: every request would fail before it is sent (booked as spent, or a crash).
            self._refuse(
                f"the token endpoint {self._url} answered an access token that cannot be sent "
                "in an HTTP header (control, space or non-ASCII characters): nothing was sent"
            )
        self._note_server_clock(date_header)
        expires_in = _lifetime(body.get("expires_in"))
        # Renew 5 minutes early, or at 90% of a short lifetime.
        margin = min(300.0, expires_in * 0.1)
        self._token = token
        self._issued = (self._issued + [token])[-5:]
        self._issued_since_accepted += 1
        self._refresh_at = self._clock() + expires_in - margin

    def _error_of(self, body: dict, status: int) -> tuple[str, str, str]:
        """Code, description and log id of an error answer, the secret scrubbed from each (an
        echoing endpoint must not carry it into our errors, in any encoding). Flat OAuth bodies
        ({"error": code, "error_description": ...}), in a 4xx or inside an HTTP 200; the other
        endpoints' error object is tolerated too."""
        raw_error = body.get("error")
        if isinstance(raw_error, dict):
            error = str(raw_error.get("code") or f"http_{status}")
            description = str(raw_error.get("message") or raw_error.get("msg") or "")
        else:
            error = str(raw_error or f"http_{status}")
            description = str(body.get("error_description") or "")
        log_id = str(body.get("log_id") or "")
        return tuple(scrub(t, [self._client_secret]) for t in (error, description, log_id))
