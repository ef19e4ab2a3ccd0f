"""The journal: every request and every paid answer, on local disk the moment it arrives.

The API never serves a past day again and every request costs quota, so an answer is written
here before anything else (the warehouse, derivations, charts, the readers' copy, Dagster's
metadata): one JSON line per HTTP exchange, holding the request as the ledger keeps it and, when
the exchange ended that user's asking, its answer for every partition that wanted it. The line
is flushed to the disk (fsync, shared by the threads writing at that moment) before the worker
moves on, so a killed process loses at most the requests in flight. The warehouse is filled
from the journal: by the run while it fetches, and by the next run, before it plans, for a run
that could not (killed, a locked or full warehouse). Storing is idempotent (answers replace the
same partition's row, requests already in the ledger are not added again), so a journal stored
twice changes nothing; a file is deleted once stored, which also keeps no account's profile
past its forgetting.

Files live in `<warehouse>.journal/` (or RESEARCH_PIPELINE_JOURNAL_DIR), a folder only this user
may write, one file per run, created 0600. A file is read back only when its writer has ended,
and strictly: every line must be what `RunJournal.append` writes, the source must be this run's
(the emulator's answers never pass for the real API's), and every day near the API's. A last
line cut short (the process died while writing it) is that one request's loss, nothing more; a
file that fails otherwise is renamed `*.rejected` and named in one warning (a planted or damaged
file must neither enter the data nor fail every later run).

Plain Python over the warehouse package: no Dagster, no HTTP.
"""

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from research_pipeline.errors import JournalError, WarehouseError
from research_pipeline.processes import process_alive
from research_pipeline.tiktok.models import Outcome, RequestRecord, UserInfoResult

Row = tuple[date, str, UserInfoResult]  # (snapshot_date, cohort, answer)
Request = tuple[date, str, RequestRecord]

_TIMES = ("fetched_at", "served_at", "requested_at")
MAX_JOURNAL_LINES = 200_000  # a day is at most a few thousand requests


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _item(day: date, cohort: str, item) -> dict:
    body = {name: _encode(value) for name, value in asdict(item).items() if name != "result"}
    return {"day": day.isoformat(), "cohort": cohort, "item": body}


def _decode(cls, body: dict):
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in body.items() if k in known}
    for name in _TIMES:
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    if cls is UserInfoResult:
        values["outcome"] = Outcome(values["outcome"])
    return cls(**values)


def _signed(entry: dict, key: bytes | None) -> bytes:
    """One line: the entry, and its HMAC under the installation's key (a planted or edited
    line has none that matches)."""
    text = json.dumps(entry, ensure_ascii=False, default=str, sort_keys=True)
    mac = hmac.new(key or b"", text.encode(), hashlib.sha256).hexdigest()
    return (
        json.dumps({"entry": entry, "mac": mac}, ensure_ascii=False, default=str) + "\n"
    ).encode()


def _verified(line: str, key: bytes) -> dict:
    wrapped = json.loads(line)
    if not isinstance(wrapped, dict) or not isinstance(wrapped.get("entry"), dict):
        raise ValueError("a line that is not a journal record")
    text = json.dumps(wrapped["entry"], ensure_ascii=False, default=str, sort_keys=True)
    mac = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, str(wrapped.get("mac", ""))):
        raise ValueError("a line this installation did not write (its signature does not match)")
    return wrapped["entry"]


def _exchange_entry(request: Request | None, rows: Sequence[Row]) -> dict:
    return {
        "kind": "exchange",
        "request": None if request is None else _item(*request),
        "answers": [_item(day, cohort, result) for day, cohort, result in rows],
    }


def installation_key(folder: Path) -> bytes:
    """The journal folder's own key (`.key`, 0600, made once): lines are signed with it, so
    only what this installation wrote is ever stored."""
    path = folder / ".key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
        handle.flush()
        os.fsync(handle.fileno())
    return path.read_bytes()


# Journals this process has open: never read back by another run of the same process (a step
# retry in `execute_in_process`) while they are still being written.
_OPEN: set[Path] = set()
_OPEN_LOCK = threading.Lock()


class RunJournal:
    """One run's journal file: `append` from any thread (durable when it returns), `take` the
    entries the warehouse has not stored yet, `close` when the run ends. Without a path (a
    warehouse that shares nothing: in memory), entries are only held for the warehouse."""

    def __init__(self, path: Path | None, source: str, key: bytes | None = None):
        self.path = path
        self.source = source
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = 0  # lines written
        self._synced = 0  # lines known to be on disk
        self._rows: list[Row] = []
        self._requests: list[Request] = []
        self.failure: JournalError | None = None
        self.lines = 0
        self._fd = -1
        self._key = key
        if path is None:
            return
        header = _signed({"kind": "source", "source": source, "host": socket.gethostname()}, key)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except OSError as exc:
            raise _journal_error(path, exc) from None
        with _OPEN_LOCK:
            _OPEN.add(path)
        try:
            self._write(header)
            _fsync_folder(path.parent)
        except JournalError:
            self.close()
            raise

    def append(self, request: Request | None, rows: Sequence[Row] = ()) -> None:
        """Keep one exchange: on the disk first, then for the warehouse's next save. When the
        disk refuses it, it is still kept for the warehouse (in memory) and `failure` is set:
        the caller stops sending."""
        line = _signed(_exchange_entry(request, rows), self._key)
        with self._lock:
            if request is not None:
                self._requests.append(request)
            self._rows.extend(rows)
        if self.failure is not None or self.path is None:
            return
        try:
            self._write(line)
        except JournalError as exc:
            self.failure = self.failure or exc

    def _write(self, line: bytes) -> None:
        with self._lock:
            try:
                if os.write(self._fd, line) != len(line):  # a full disk may take only part
                    raise OSError(28, os.strerror(28))
            except OSError as exc:
                raise _journal_error(self.path, exc) from None
            self._written += 1
            mine = self._written
        with self._sync_lock:  # one fsync covers every line written before it
            if self._synced >= mine:
                return
            with self._lock:
                upto = self._written
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise _journal_error(self.path, exc) from None
            self._synced = upto
        self.lines = upto

    def take(self) -> tuple[list[Row], list[Request]]:
        """The entries appended since the last `take`, for the warehouse."""
        with self._lock:
            rows, self._rows = self._rows, []
            requests, self._requests = self._requests, []
        return rows, requests

    def put_back(self, rows: list[Row], requests: list[Request]) -> None:
        """Entries taken for a save that failed: saved with the next one instead."""
        with self._lock:
            self._rows[:0] = rows
            self._requests[:0] = requests

    @property
    def unsaved(self) -> int:
        with self._lock:
            return len(self._rows)

    def close(self, stored: bool = False) -> None:
        """Close the file; delete it when the warehouse holds all it says (`stored`)."""
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if stored and self.failure is None and not self._rows and not self._requests:
            with contextlib.suppress(OSError):
                self.path.unlink()
        with _OPEN_LOCK:
            _OPEN.discard(self.path)


class Journal:
    """The journal folder of one warehouse: a file per run, read back by the next run."""

    def __init__(self, database: str | Path, folder: str | Path | None = None):
        database = Path(database).resolve()
        self.database = database
        self.folder = Path(folder) if folder else database.with_name(database.name + ".journal")
        # Files of this warehouse only: several warehouses may share a configured folder.
        self.prefix = f"{database.stem}-{hashlib.sha256(str(database).encode()).hexdigest()[:12]}"

    def open_run(self, day: date, source: str) -> RunJournal:
        """A new journal file for a run of API day `day`, on the disk before any request (a
        folder that cannot take it costs no quota). Raises JournalError naming why."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise _journal_error(self.folder, exc) from None
        if not _private(self.folder):
            raise JournalError(
                f"the journal folder {self.folder} is not a folder of this user's that only it "
                f"can write: answers kept there could be changed by others. Run `chmod 700 "
                f"{self.folder}` (or point RESEARCH_PIPELINE_JOURNAL_DIR elsewhere); nothing "
                "was sent to the API"
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{self.prefix}-{day.isoformat()}-{socket.gethostname()}-{os.getpid()}-{stamp}"
        try:
            key = installation_key(self.folder)
        except OSError as exc:
            raise _journal_error(self.folder, exc) from None
        return RunJournal(self.folder / f"{name}.jsonl", source, key)

    def pending(self) -> list[Path]:
        """Journal files of this warehouse whose writer has ended, oldest first."""
        if not self.folder.is_dir() or not _private(self.folder):
            return []
        with _OPEN_LOCK:
            open_now = set(_OPEN)
        found = [
            p
            for p in self.folder.glob(f"{self.prefix}-*.jsonl")
            if p.is_file() and not p.is_symlink() and p not in open_now and _ended(p)
        ]
        return sorted(found, key=lambda p: p.name.rsplit("-", 1)[-1])

    def restore(
        self, conn, source: str, around: date, warn: Callable[[str], None] = lambda _: None
    ) -> tuple[int, int]:
        """Store what every ended run's journal holds, then delete the file; returns (answers,
        requests) read. A file is stored in one transaction and storing is idempotent, so a
        crash between storing and deleting duplicates nothing. A file that is not what a run
        of `source` near API day `around` writes is renamed aside and named through `warn`."""
        from research_pipeline.warehouse import raw

        answers = requests = 0
        for path in self.pending():
            try:
                found, rows, records = _read(path, installation_key(self.folder))
                _check(found, source, rows, records, around)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                self._reject(path, exc, warn)
                continue
            try:
                raw.save_fetched(conn, rows, records, source, skip_recorded_requests=True)
            except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
                # A value no column takes: the file is damaged, never a crash loop.
                self._reject(path, exc, warn)
                continue
            except Exception as exc:
                raise WarehouseError(
                    f"cannot store the {len(rows)} answers kept in the journal {path} ({exc}); "
                    "they stay there: free space or close the warehouse, then run again"
                ) from None
            path.unlink()
            answers += len(rows)
            requests += len(records)
        return answers, requests

    @staticmethod
    def _reject(path: Path, exc: Exception, warn: Callable[[str], None]) -> None:
        aside = path.with_suffix(".rejected")
        os.replace(path, aside)
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warn(
            f"a journal file was not stored and is moved aside: {aside} ({cause}); if it is "
            "a real one, tell the maintainers, else delete it"
        )


def free_space(path: Path) -> str:
    """Free space on `path`'s disk, for an error message."""
    for folder in (path, *path.parents):
        with contextlib.suppress(OSError):
            return f"{shutil.disk_usage(folder).free / 1e6:,.1f} MB free"
    return "free space unknown"


def _journal_error(path: Path, exc: OSError) -> JournalError:
    return JournalError(
        f"cannot write the journal {path} ({exc.strerror or exc}; {free_space(path)} on its "
        "disk): no one new is asked. Free space or fix the folder's permissions, then run again: "
        "what was journaled is stored first and nobody is asked twice"
    )


def _fsync_folder(folder: Path) -> None:
    """The new file's name on the disk too, not only its lines."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private(folder: Path) -> bool:
    """Ours, a real folder (not a link), and nobody else may write in it."""
    info = folder.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _ended(path: Path) -> bool:
    """Whether the process that wrote `path` has ended (one of another host counts as live)."""
    try:
        host, pid = path.stem.rsplit("-", 3)[-3], int(path.stem.rsplit("-", 2)[-2])
    except (IndexError, ValueError):
        return True  # not a name we write: read, and rejected there
    if host != socket.gethostname():
        return False
    return pid == os.getpid() or not process_alive(pid)


def _check(source: str, expected: str, rows, records, around: date) -> None:
    if source != expected:
        raise ValueError(f"its answers come from {source!r}, this run's from {expected!r}")
    for day, cohort, item in [*rows, *records]:
        if abs((day - around).days) > 2:
            raise ValueError(f"it holds a {cohort} answer of {day}, far from the API's {around}")
        if not isinstance(item.username, str) or not item.username:
            raise ValueError("it holds an answer without a username")


def _read(path: Path, key: bytes) -> tuple[str, list[Row], list[Request]]:
    source, rows, records = "", [], []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if len(lines) > MAX_JOURNAL_LINES:
        raise ValueError(f"{len(lines)} lines, more than a day's run can write")
    lines.pop()  # after the last newline: empty, or a line its writer died writing (its loss)
    for line in lines:
        if not line.strip():
            continue
        entry = _verified(line, key)
        if not isinstance(entry, dict) or entry.get("kind") not in ("source", "exchange"):
            raise ValueError("a line that is not a journal record")
        if entry["kind"] == "source":
            source = entry["source"]
            continue
        if entry["request"] is not None:
            request = entry["request"]
            records.append(
                (date.fromisoformat(request["day"]), request["cohort"],
                 _decode(RequestRecord, request["item"]))
            )  # fmt: skip
        for answer in entry["answers"]:
            rows.append(
                (date.fromisoformat(answer["day"]), answer["cohort"],
                 _decode(UserInfoResult, answer["item"]))
            )  # fmt: skip
    return source, rows, records
