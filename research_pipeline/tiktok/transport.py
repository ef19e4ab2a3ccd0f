"""Bounded HTTP exchanges: one total deadline from connecting to the last byte, no redirect.

`requests`' timeout is per read: a server that sends its headers (or body) a byte at a time
restarts it with every byte and can hold a thread for ever. Here a watch thread closes the
exchange's socket when its deadline passes, whatever phase it is in, so the reading thread's
wait ends at once. A redirect is never followed: it could carry our token or credentials to
another host, or bring another host's answers (the caller sees the 3xx itself).
"""

import socket
import threading
import time

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from research_pipeline.tiktok.bodies import DeadlinePassed, read_body

_WATCHED = threading.local()


class _Watch:
    """Closes the socket of one exchange when its deadline passes (from a timer thread)."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self.connection: HTTPConnection | None = None
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Watch":
        _WATCHED.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _WATCHED.watch = None

    def _expire(self) -> None:
        self.expired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the reading thread's recv returns at once
            except OSError:
                pass


class _WatchedConnection:
    """Mixed into urllib3's connections: the exchange's watch learns which socket to close."""

    def request(self, *args, **kwargs):
        watch = getattr(_WATCHED, "watch", None)
        if watch is not None:
            watch.connection = self
            if watch.expired:
                raise urllib3.exceptions.ReadTimeoutError(None, None, "deadline passed")
        return super().request(*args, **kwargs)


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """`requests`' adapter whose connections a deadline watch can close."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def pooled_session(pool_size: int) -> requests.Session:
    """The one pooled HTTP client of a process's API session (and its token provider)."""
    session = requests.Session()
    adapter = WatchedAdapter(pool_connections=1, pool_maxsize=max(pool_size, 2))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def post_within(
    session: requests.Session,
    url: str,
    *,
    deadline_seconds: float,
    timeout_seconds: float,
    max_bytes: int,
    **kwargs,
) -> requests.Response:
    """POST and read the whole answer within `deadline_seconds` (connect, headers and body
    together) and `max_bytes`; never follows a redirect. Raises DeadlinePassed, BodyTooLarge,
    or `requests`' own errors."""
    with _Watch(deadline_seconds) as watch:
        try:
            response = session.post(
                url, timeout=timeout_seconds, stream=True, allow_redirects=False, **kwargs
            )
            read_body(response, watch.deadline, max_bytes)
        except requests.RequestException:
            if watch.expired:
                raise DeadlinePassed from None
            raise
        if watch.expired:
            raise DeadlinePassed
    return response
