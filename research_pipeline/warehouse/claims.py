"""Which process of the project is asking which user today: claims shared across processes.

Two runs started together (two CLI snapshots, a schedule tick and a manual materialization)
plan on the same ledger and would ask the same users; the shared quota file keeps them within
the quota, but every user both asked is an answer paid for twice. Before a user is asked, the
run claims (API day, username) in a small SQLite file beside the warehouse; a user claimed by
another live process is left to it (its answer lands in the same warehouse). Claims of a
process that has ended (killed, crashed) count for nothing, so a re-run asks those users again.

SQLite (the standard library's) rather than DuckDB: claims are taken by many processes at once,
a few users at a time, and must never wait for a batch save holding DuckDB's write lock. They
are coordination, not data: written without fsync, forgotten after their day.
"""

import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from research_pipeline.errors import WarehouseError

log = logging.getLogger(__name__)

CLAIM_CHUNK = 16  # users claimed per transaction: a little ahead of the requests


def _days_ago(days: int) -> str:
    return datetime.fromtimestamp(datetime.now(UTC).timestamp() - days * 86400, UTC).isoformat()


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


class UserClaims:
    """Claims of this process on one file; `claimed` filters a stream of usernames."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.skipped: list[tuple[str, int]] = []  # (username, pid of the process holding it)
        self.held: set[str] = set()  # claimed by this process (for the day last claimed)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._open()
            except sqlite3.Error as exc:
                raise self._error(exc) from None
        return self._conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # 0600: only this user's runs read or write it
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise
            # Not our SQLite file (planted, or damaged): never a crash loop. Claims and notes
            # are coordination, not data: moved aside, named, started afresh.
            aside = self.path.with_name(self.path.name + ".rejected")
            os.replace(self.path, aside)
            log.warning("%s was not a claims file (%s): moved aside to %s", self.path, exc, aside)
            return self._open()
        return conn

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS claims (day TEXT NOT NULL, username TEXT NOT NULL, "
            "host TEXT NOT NULL, pid INTEGER NOT NULL, PRIMARY KEY (day, username))"
        )
        # Every request, noted just before it is sent: what a killed process sent but
        # never recorded in the ledger can be counted afterwards (`unrecorded`).
        conn.execute(
            "CREATE TABLE IF NOT EXISTS sent (day TEXT NOT NULL, username TEXT NOT NULL, "
            "host TEXT NOT NULL, pid INTEGER NOT NULL, sent_at TEXT NOT NULL)"
        )

    def claim(self, day: date, usernames: Iterable[str]) -> list[str]:
        """Claim what no other live process holds; returns the usernames now ours."""
        ours: list[str] = []
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM claims WHERE day < ?", [day.isoformat()])
                for username in usernames:
                    row = conn.execute(
                        "SELECT host, pid FROM claims WHERE day = ? AND username = ?",
                        [day.isoformat(), username],
                    ).fetchall()
                    if row:
                        host, pid = row[0]
                        mine = host == self.host and pid == self.pid
                        if not mine and (host != self.host or process_alive(pid)):
                            self.skipped.append((username, pid))
                            continue
                    conn.execute(
                        "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                        [day.isoformat(), username, self.host, self.pid],
                    )
                    ours.append(username)
                conn.execute("COMMIT")
                self.held.update(ours)
            except BaseException as exc:
                if conn.in_transaction:  # SQLite ends it itself on some errors (disk full)
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise
        return ours

    def _error(self, exc: sqlite3.Error) -> WarehouseError:
        return WarehouseError(
            f"cannot note which users this run asks in {self.path}: {exc}. Free space on its "
            "disk (it sits beside the warehouse), then run again; no one new is asked meanwhile"
        )

    def claimed(self, day: date, usernames: Iterable[str]) -> Iterator[str]:
        """The usernames this process may ask, claimed a chunk at a time as they are pulled."""
        names = iter(usernames)
        while chunk := [name for _, name in zip(range(CLAIM_CHUNK), names, strict=False)]:
            yield from self.claim(day, chunk)

    def note_sent(self, day: date, username: str) -> None:
        """A request for `username` is about to be sent (called from the client's threads)."""
        with self._lock:
            try:
                self._connection().execute(
                    "INSERT INTO sent VALUES (?, ?, ?, ?, ?)",
                    [day.isoformat(), username, self.host, self.pid, datetime.now(UTC).isoformat()],
                )
            except sqlite3.Error as exc:  # not sent: what cannot be noted cannot be reconciled
                raise self._error(exc) from None

    def sent_by_ended_processes(self) -> list[tuple[str, str, int, str]]:
        """(day, username, requests noted, first sent_at) for users whose every sender that
        day has ended: what those runs sent is all the ledger can ever get from them."""
        with self._lock:
            conn = self._connection()
            conn.execute("DELETE FROM sent WHERE sent_at < ?", [_days_ago(7)])
            rows = conn.execute(
                "SELECT day, username, host, pid, count(*), min(sent_at) FROM sent "
                "GROUP BY day, username, host, pid"
            ).fetchall()
        totals: dict[tuple[str, str], list] = {}
        live: set[tuple[str, str]] = set()
        for day, username, host, pid, count, first in rows:
            if host != self.host or pid == self.pid or process_alive(pid):
                live.add((day, username))
            entry = totals.setdefault((day, username), [0, first])
            entry[0] += count
            entry[1] = min(entry[1], first)
        return [(d, u, n, first) for (d, u), (n, first) in totals.items() if (d, u) not in live]

    def release(self, day: date, usernames: Iterable[str]) -> None:
        """Give back claims of users this process will not ask after all (the run stopped before
        their turn): another run may ask them today."""
        names = [(day.isoformat(), name, self.host, self.pid) for name in usernames]
        if not names:
            return
        with self._lock:
            self._connection().executemany(
                "DELETE FROM claims WHERE day = ? AND username = ? AND host = ? AND pid = ?", names
            )
            self.held.difference_update(name for _, name, _, _ in names)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
