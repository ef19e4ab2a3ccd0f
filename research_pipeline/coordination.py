"""What the processes of one project share while they spend the day: one file, one owner.

Several processes may spend one project's day at once: two CLI snapshots, a schedule tick and a
manual materialization, two Dagster homes on one warehouse. They share one SQLite file beside
the warehouse, `<warehouse>.coordination`:
- `quota`: the day's reservations, so that together they never send more than the quota (each
  request reserved in a write transaction, keyed by the API's day);
- `claims`: which process is asking which user today. Both would plan on the same ledger and
  ask the same users, and every user both asked is an answer paid for twice; a user claimed by
  another live process is left to it (its answer lands in the same warehouse). Claims of a
  process that has ended (killed, crashed) count for nothing, so a re-run asks those users;
- `sent`: every request, noted just before it is sent, so what a killed process sent but never
  recorded in the ledger is counted afterwards (`unrecorded`).
`Coordination` also names the journal (every answer as it arrives, journal.py): every side file
a day's run relies on comes from one object.

SQLite (the standard library's) rather than DuckDB: reservations and claims are taken by many
processes at once, a request at a time, and must never wait for a batch save holding DuckDB's
write lock. They are coordination, not data: written without fsync (a killed process loses
nothing, the system holds the pages; a power cut may lose the last reservations, and the
ledger's count of the day is the floor every reservation starts from), forgotten after a week.
A file that is not SQLite is moved aside and made anew, never a crash loop.
"""

import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from research_pipeline.errors import WarehouseError
from research_pipeline.journal import Journal
from research_pipeline.processes import process_alive

log = logging.getLogger(__name__)

CLAIM_CHUNK = 16  # users claimed per transaction: a little ahead of the requests
KEEP_DAYS = 7  # rows of older days are deleted
MAX_RESERVATIONS = 10_000_000  # a count above this was not written by us: not trusted

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS quota (day TEXT PRIMARY KEY, reserved INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS claims (day TEXT NOT NULL, username TEXT NOT NULL, "
    "host TEXT NOT NULL, pid INTEGER NOT NULL, PRIMARY KEY (day, username))",
    "CREATE TABLE IF NOT EXISTS sent (day TEXT NOT NULL, username TEXT NOT NULL, "
    "host TEXT NOT NULL, pid INTEGER NOT NULL, sent_at TEXT NOT NULL)",
)


def _days_before(day: date, days: int) -> str:
    return (day - timedelta(days=days)).isoformat()


class CoordinationFile:
    """One process's connection to the coordination file, shared by its threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def __str__(self) -> str:
        return str(self.path)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: exclusive across every process of the project until it ends."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:  # SQLite ends it itself on some errors (disk full)
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

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
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            for statement in _SCHEMA:
                conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise
            # Not our SQLite file (planted, or damaged): moved aside, named, started afresh.
            aside = self.path.with_name(self.path.name + ".rejected")
            os.replace(self.path, aside)
            log.warning("%s was not a coordination file (%s): moved aside to %s", self, exc, aside)
            return self._open()
        return conn

    def _error(self, exc: sqlite3.Error) -> WarehouseError:
        return WarehouseError(
            f"cannot note this run's requests in {self.path}: {exc}. Free space on its disk (it "
            "sits beside the warehouse), then run again; no one new is asked meanwhile"
        )


class SharedQuota:
    """The day's reservations of every process of the project: the client's DailyQuota
    reserves each request here, so processes started together never send more than the quota
    between them."""

    def __init__(self, file: CoordinationFile):
        self.file = file

    def __str__(self) -> str:
        return str(self.file)

    def reserve(self, day: date, limit: int, floor: int) -> int | None:
        """Reserve one request of `day`; returns the day's reservations including it, or None
        when the day is reserved in full. `floor` is what this process knows was spent (its
        ledger): the count never starts below it."""
        with self.file.transaction() as conn:
            conn.execute("DELETE FROM quota WHERE day < ?", [_days_before(day, KEEP_DAYS)])
            used = max(self._reserved(conn, day), floor)
            if used >= limit:
                return None
            conn.execute("INSERT OR REPLACE INTO quota VALUES (?, ?)", [day.isoformat(), used + 1])
            return used + 1

    def release(self, day: date) -> None:
        """Give back one reservation of `day`: the API refused that request (a 429) without
        counting it, so the lab's day is not one request shorter."""
        with self.file.transaction() as conn:
            used = self._reserved(conn, day)
            if used > 0:
                conn.execute(
                    "UPDATE quota SET reserved = ? WHERE day = ?", [used - 1, day.isoformat()]
                )

    def reserved(self, day: date) -> int:
        with self.file.transaction() as conn:
            return self._reserved(conn, day)

    def _reserved(self, conn: sqlite3.Connection, day: date) -> int:
        rows = conn.execute("SELECT reserved FROM quota WHERE day = ?", [day.isoformat()])
        row = rows.fetchone()
        if row is None:
            return 0
        if type(row[0]) is not int or not 0 <= row[0] <= MAX_RESERVATIONS:
            log.warning(
                "the quota of %s in %s held %r, not a count: counting from the ledger",
                day,
                self,
                row[0],
            )
            return 0
        return row[0]


class UserClaims:
    """Claims of this process; `claimed` filters a stream of usernames."""

    def __init__(self, file: CoordinationFile):
        self.file = file
        self.skipped: list[tuple[str, int]] = []  # (username, pid of the process holding it)
        self.held: set[str] = set()  # claimed by this process (for the day last claimed)

    def claim(self, day: date, usernames: Iterable[str]) -> list[str]:
        """Claim what no other live process holds; returns the usernames now ours."""
        ours: list[str] = []
        me = (self.file.host, self.file.pid)
        with self.file.transaction() as conn:
            conn.execute("DELETE FROM claims WHERE day < ?", [day.isoformat()])
            for username in usernames:
                row = conn.execute(
                    "SELECT host, pid FROM claims WHERE day = ? AND username = ?",
                    [day.isoformat(), username],
                ).fetchone()
                if row is not None and tuple(row) != me:
                    host, pid = row
                    if host != self.file.host or process_alive(pid):
                        self.skipped.append((username, pid))
                        continue
                conn.execute(
                    "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                    [day.isoformat(), username, *me],
                )
                ours.append(username)
        self.held.update(ours)
        return ours

    def claimed(self, day: date, usernames: Iterable[str]) -> Iterator[str]:
        """The usernames this process may ask, claimed a chunk at a time as they are pulled."""
        names = iter(usernames)
        while chunk := [name for _, name in zip(range(CLAIM_CHUNK), names, strict=False)]:
            yield from self.claim(day, chunk)

    def note_sent(self, day: date, username: str) -> None:
        """A request for `username` is about to be sent (called from the client's threads).
        What cannot be noted is not sent: it could never be reconciled."""
        with self.file.transaction() as conn:
            conn.execute(
                "INSERT INTO sent VALUES (?, ?, ?, ?, ?)",
                [day.isoformat(), username, self.file.host, self.file.pid, _now()],
            )

    def sent_by_ended_processes(self) -> list[tuple[str, str, int, str]]:
        """(day, username, requests noted, first sent_at) for users whose every sender that
        day has ended: what those runs sent is all the ledger can ever get from them."""
        with self.file.transaction() as conn:
            week_ago = (datetime.now(UTC) - timedelta(days=KEEP_DAYS)).isoformat()
            conn.execute("DELETE FROM sent WHERE sent_at < ?", [week_ago])
            rows = conn.execute(
                "SELECT day, username, host, pid, count(*), min(sent_at) FROM sent "
                "GROUP BY day, username, host, pid"
            ).fetchall()
        totals: dict[tuple[str, str], list] = {}
        live: set[tuple[str, str]] = set()
        for day, username, host, pid, count, first in rows:
            if host != self.file.host or pid == self.file.pid or process_alive(pid):
                live.add((day, username))
            entry = totals.setdefault((day, username), [0, first])
            entry[0] += count
            entry[1] = min(entry[1], first)
        return [(d, u, n, first) for (d, u), (n, first) in totals.items() if (d, u) not in live]

    def release(self, day: date, usernames: Iterable[str]) -> None:
        """Give back claims of users this process will not ask after all (the run stopped before
        their turn): another run may ask them today."""
        me = (self.file.host, self.file.pid)
        names = [(day.isoformat(), name, *me) for name in usernames]
        if not names:
            return
        with self.file.transaction() as conn:
            conn.executemany(
                "DELETE FROM claims WHERE day = ? AND username = ? AND host = ? AND pid = ?", names
            )
        self.held.difference_update(name for _, name, _, _ in names)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SharedDay:
    """What one run uses of the coordination file: the quota's reservations and its claims,
    on one connection (closed with `close`)."""

    def __init__(self, path: Path):
        self.file = CoordinationFile(path)
        self.quota = SharedQuota(self.file)
        self.claims = UserClaims(self.file)

    def close(self) -> None:
        self.file.close()


class Coordination:
    """The side files of one warehouse that every process of the project shares: the
    coordination file and the journal. `None` from `beside`: nothing is shared (an
    in-memory warehouse, MotherDuck)."""

    def __init__(self, path: Path, journal: Journal):
        self.path = Path(path)
        self.journal = journal

    @classmethod
    def beside(cls, database: str | Path, journal_dir: str | Path | None = None):
        database = str(database)
        if database == ":memory:" or database.startswith("md:"):
            return None
        path = Path(database).with_name(Path(database).name + ".coordination")
        return cls(path, Journal(database, journal_dir or None))

    @contextmanager
    def day(self) -> Iterator[SharedDay]:
        """The quota and claims for one run, on a connection closed when the run ends."""
        shared = SharedDay(self.path)
        try:
            yield shared
        finally:
            shared.close()
