"""The one way to open the warehouse: wait for DuckDB's write lock, upgrade the schema, close.

DuckDB lets one process write a file at a time, and our writers hold it only for a batch: while
another process holds the lock, wait (with backoff) instead of failing. The connection is closed
whatever happens in the body, so a failed step never keeps the file locked.

A session is a cursor of one in-memory DuckDB per process with the file ATTACHed while sessions
use it: opening a file with `duckdb.connect` starts a whole database instance (19-21 ms
measured, about a dozen times a snapshot and once every batch of a big day), attaching it to the
running one ~1.3 ms. Detaching when the last session ends releases the lock as closing did.
"""

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from research_pipeline.errors import (
    WarehouseError,
    WarehouseLockedError,
    WarehouseNeedsUpgradeError,
)
from research_pipeline.warehouse.schema import LATEST_VERSION, current_version, upgrade

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 60.0
# DuckDB's lock error names the holder: '... Conflicting lock is held in /usr/bin/python3 (PID 12)'
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.+?) \(PID (\d+)\)")


def published_path(database: str | Path) -> Path:
    """Where researchers read the warehouse `database`: the copy the pipeline publishes beside
    it after every run (research_pipeline.warehouse.published)."""
    database = Path(database)
    return database.with_name(f"{database.stem}.published{database.suffix or '.duckdb'}")


def open_with_lock_wait(
    database: str, read_only: bool, wait_seconds: float = LOCK_WAIT_SECONDS
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_seconds
    delay = 0.01
    while True:
        try:
            return duckdb.connect(database, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class _Attachments:
    """The process's in-memory DuckDB and the files attached to it, each with its users."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._instance: duckdb.DuckDBPyConnection | None = None
        self._attached: dict[str, tuple[str, bool, int]] = {}  # path -> alias, read-only, users
        self._count = 0

    def _running(self) -> duckdb.DuckDBPyConnection:
        if self._pid != os.getpid():  # a forked child never touches its parent's instance
            self._pid, self._instance, self._attached = os.getpid(), duckdb.connect(), {}
        return self._instance

    def open(self, database: str, read_only: bool) -> duckdb.DuckDBPyConnection | None:
        """A cursor on `database` (raises DuckDB's error, e.g. the lock's); None when the file is
        attached in the other mode (the caller opens it as before, and DuckDB says why not)."""
        path = os.path.realpath(database)
        with self._lock:
            instance = self._running()
            alias, attached_read_only, users = self._attached.get(path, ("", read_only, 0))
            if users and attached_read_only != read_only:
                return None
            if not users:
                self._count += 1
                alias = f"warehouse_{self._count}"
                mode = " (READ_ONLY)" if read_only else ""
                instance.execute(f"ATTACH ? AS {alias}{mode}", [path])
            self._attached[path] = (alias, read_only, users + 1)
            cursor = instance.cursor()
        try:
            cursor.execute(f"USE {alias}")
        except BaseException:
            self.close(database, cursor)
            raise
        return cursor

    def close(self, database: str, cursor: duckdb.DuckDBPyConnection) -> None:
        path = os.path.realpath(database)
        cursor.close()
        with self._lock:
            alias, read_only, users = self._attached[path]
            if users > 1:
                self._attached[path] = (alias, read_only, users - 1)
                return
            del self._attached[path]
            try:
                self._running().execute(f"DETACH {alias}")  # checkpoints, releases the lock
            except duckdb.Error as exc:
                # Detached all the same, its lock released; what the sessions committed is in
                # the .wal, replayed by the next session (closing a connection of its own on a
                # full disk failed its checkpoint as quietly). Raising would hide the body's
                # own error, the one that says why.
                log.warning("checkpoint of %s when closing it failed: %s", database, exc)


_ATTACHMENTS = _Attachments()


def open_session(
    database: str, read_only: bool, wait_seconds: float = LOCK_WAIT_SECONDS
) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """(connection, attached): a cursor with the file attached, waiting for the lock as
    `open_with_lock_wait` does; a connection of its own when attached in the other mode."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.01
    while True:
        try:
            cursor = _ATTACHMENTS.open(database, read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        if cursor is None:
            return open_with_lock_wait(database, read_only, wait_seconds), False
        return cursor, True


@contextmanager
def connect(
    database: str | Path, read_only: bool = False, wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse with the schema at the latest version.

    Writers upgrade the schema (a file at the latest version costs one catalog query); readers
    of an older file are told to open it for writing once."""
    database = str(database)
    conn, attached = _open(database, read_only, wait_seconds)
    try:
        _bring_schema_to_latest(conn, database, read_only)
    except BaseException:
        _close(database, conn, attached)
        raise
    try:
        yield conn
    finally:
        _close(database, conn, attached)


def _open(database: str, read_only: bool, wait_seconds: float):
    """The connection (and whether the file was attached to a shared session), or one line
    saying who holds the file, or what else is wrong with it."""
    is_file = database != ":memory:" and not database.startswith("md:")  # MotherDuck: a name
    if is_file and read_only and not Path(database).exists():
        raise WarehouseError(
            f"no warehouse at {Path(database).resolve()}: take a snapshot first "
            "(`research-pipeline snapshot`), or set RESEARCH_PIPELINE_DUCKDB to its path"
        )
    if is_file:
        _check_file(Path(database))
    if is_file and not read_only:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    try:
        if is_file:
            return open_session(database, read_only, wait_seconds)
        return open_with_lock_wait(database, read_only, wait_seconds), False
    except duckdb.Error as exc:
        holder = _LOCK_HOLDER.search(str(exc))
        if holder is not None:
            program, pid = holder.groups()
            raise WarehouseLockedError(
                f"cannot open the warehouse {database}: process {pid} ({Path(program).name}) "
                f"holds it open, and DuckDB lets no one write while any connection is open, even "
                f"a read-only one. Close that connection (a notebook: conn.close()), and read "
                f"{published_path(database)} instead: the copy the pipeline publishes after "
                "every run and never locks"
            ) from None
        raise WarehouseError(
            f"cannot open the warehouse {database}: {str(exc).splitlines()[0]}. Check that it is "
            "a DuckDB file research-pipeline wrote, that its folder is writable and the disk has "
            "room (or point RESEARCH_PIPELINE_DUCKDB elsewhere)"
        ) from None


def _bring_schema_to_latest(conn, database: str, read_only: bool) -> None:
    try:
        version = _latest_or_none(conn)
        if version is None:  # a new, old or foreign file: the full checks
            _check_ours(conn, database)
            version = current_version(conn)
    except duckdb.Error as exc:  # a damaged file: its catalog cannot even be read
        raise WarehouseError(_damaged(database, exc)) from None
    if version != LATEST_VERSION:  # the daily case costs the one query above
        _bring_to_latest(conn, database, version, read_only)


def _close(database: str, conn: duckdb.DuckDBPyConnection, attached: bool) -> None:
    if attached:
        _ATTACHMENTS.close(database, conn)
    else:
        conn.close()


def _check_file(path: Path) -> None:
    """What is at the warehouse's path before DuckDB touches it: nothing (a new warehouse), or
    a non-empty file. A folder or an empty file (a truncated warehouse?) is refused."""
    if path.is_dir():
        raise WarehouseError(
            f"{path} is a folder, not a warehouse file: point RESEARCH_PIPELINE_DUCKDB at a file"
        )
    if path.is_file() and path.stat().st_size == 0:
        raise WarehouseError(
            f"{path} is empty (0 bytes): if it was the warehouse, it was truncated (restore it "
            "from a backup); if not, delete it and a new warehouse is created"
        )


def _bring_to_latest(
    conn: duckdb.DuckDBPyConnection, database: str, version: int, read_only: bool
) -> None:
    """Upgrade a file behind this release (writers); refuse one ahead of it, or behind it
    when only reading."""
    if read_only:
        if version > LATEST_VERSION:
            raise WarehouseError(
                f"{database} has schema version {version}, newer than this release knows "
                f"({LATEST_VERSION}): upgrade research-pipeline to read it"
            )
        raise WarehouseNeedsUpgradeError(
            f"{database} has schema version {version}; this release needs "
            f"{LATEST_VERSION}: run a snapshot (or any writing command) to upgrade"
        )
    try:
        upgrade(conn, database)
    except duckdb.Error as exc:
        raise WarehouseError(
            f"upgrading {database} from schema version {version} failed "
            f"({str(exc).splitlines()[0]}); the upgrade was rolled back, the warehouse "
            "is as it was"
        ) from None


def _latest_or_none(conn: duckdb.DuckDBPyConnection) -> int | None:
    """LATEST_VERSION when the file is at it (one query: every batch of a day's run opens the
    file, and the full checks took 11 ms an open), else None."""
    try:
        rows = conn.execute("SELECT max(version) FROM tiktok.schema_version").fetchall()
    except duckdb.CatalogException:
        return None  # no version table: a new file, one of 2026-11-24, or not ours
    return LATEST_VERSION if rows[0][0] == LATEST_VERSION else None


def _check_ours(conn: duckdb.DuckDBPyConnection, database: str) -> None:
    """Refuse a DuckDB file of something else: its tables would get ours written beside them."""
    if current_version(conn) > 0:
        return
    others = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name <> 'tiktok' AND NOT temporary "
        "AND database_name = current_database()"
    ).fetchall()[0][0]
    if others:
        raise WarehouseError(
            f"{database} is a DuckDB file of something else ({others} tables, none of "
            "research-pipeline's): point RESEARCH_PIPELINE_DUCKDB at the warehouse, or at a new "
            "file"
        )


def _damaged(database: str, exc: Exception) -> str:
    return (
        f"the warehouse {database} is damaged ({str(exc).splitlines()[0]}): restore it from a "
        "backup, or move it aside and start a new one; nothing was sent to the API"
    )
