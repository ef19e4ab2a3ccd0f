"""Answers the warehouse could not take, kept in a side file until it can.

A request is paid for when it is sent, and the API never serves a past day again: when a batch
cannot be saved (the disk is full, the file turned read-only), its answers and the requests that
paid for them are written as JSON lines beside the warehouse (`<warehouse folder>/spill/`, or
RESEARCH_PIPELINE_SPILL_DIR), or, when that fails too (the same full disk), in a folder of this
user's own in the system's temporary folder (created 0700, used only while it is ours and no
one else can write it). The next run stores them before it plans anything, so they are neither
lost nor asked again, and deletes the file.

Files are created 0600 and read strictly: every line must be what `write` writes, the source
must be this run's (the emulator's answers never pass for the real API's), and every day near
the API's. A file that fails is never stored: it is renamed `*.rejected` and named in one line
(a planted or damaged file must neither enter the data nor fail every later run).

Plain Python over the warehouse package: no Dagster, no HTTP.
"""

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

from research_pipeline.errors import WarehouseError
from research_pipeline.tiktok.models import Outcome, RequestRecord, UserInfoResult

Row = tuple[date, str, UserInfoResult]  # (snapshot_date, cohort, answer)
Request = tuple[date, str, RequestRecord]

_TIMES = ("fetched_at", "served_at", "requested_at")


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _record(kind: str, day: date, cohort: str, item) -> str:
    body = {name: _encode(value) for name, value in asdict(item).items()}
    return json.dumps(
        {"kind": kind, "day": day.isoformat(), "cohort": cohort, "item": body},
        ensure_ascii=False,
        default=str,
    )


def _decode(cls, body: dict):
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in body.items() if k in known}
    for name in _TIMES:
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    if cls is UserInfoResult:
        values["outcome"] = Outcome(values["outcome"])
    return cls(**values)


class AnswerSpill:
    """The spill files of one warehouse: written by a run whose saves fail, read by the next."""

    def __init__(self, database: str | Path, folder: str | Path | None = None):
        database = Path(database).resolve()
        self.database = database
        # Files of this warehouse only: several projects may share the temporary folder.
        self.prefix = f"{database.stem}-{hashlib.sha256(str(database).encode()).hexdigest()[:12]}"
        self.folders = [
            Path(folder) if folder else database.parent / "spill",
            Path(tempfile.gettempdir()) / f"research-pipeline-spill-{os.getuid()}",
        ]
        self.written: list[Path] = []
        self.answers_kept = 0

    def write(self, rows: Sequence[Row], requests: Sequence[Request], source: str) -> Path:
        """Keep `rows` and `requests` in a new file; raises WarehouseError when no folder can
        take them (the caller still holds them and says so)."""
        lines = [json.dumps({"kind": "source", "source": source})]
        lines += [_record("answer", day, cohort, result) for day, cohort, result in rows]
        lines += [_record("request", day, cohort, record) for day, cohort, record in requests]
        text = "\n".join(lines) + "\n"
        name = f"{self.prefix}-{os.getpid()}-{datetime.now().strftime('%Y%m%dT%H%M%S%f')}.jsonl"
        causes = []
        for folder in self.folders:
            path = folder / name
            partial = path.with_suffix(".partial")
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                if not _private(folder):
                    causes.append(f"{folder}: not a folder of ours that only we can write")
                    continue
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(partial, path)
            except OSError as exc:
                causes.append(f"{folder}: {exc.strerror or exc}")
                with contextlib.suppress(OSError):  # the folder may not even be one
                    partial.unlink(missing_ok=True)
                continue
            self.written.append(path)
            self.answers_kept += len(rows)
            return path
        raise WarehouseError(
            f"{len(rows)} answers could not be kept anywhere ({'; '.join(causes)})"
        )

    def pending(self) -> list[Path]:
        """Spill files of this warehouse, oldest first, in folders only we can write."""
        found = [
            p
            for folder in self.folders
            if folder.is_dir() and _private_enough(folder)
            for p in folder.glob(f"{self.prefix}-*.jsonl")
            if p.is_file() and not p.is_symlink()
        ]
        return sorted(found, key=lambda p: p.name)

    def restore(self, conn, source: str, around: date, warn=lambda _: None) -> tuple[int, int]:
        """Store every pending file's answers and requests, then delete the file; returns
        (answers, requests) stored. A file is stored in one transaction, and its requests are
        added only where the ledger lacks them, so a crash between storing and deleting a file
        duplicates nothing. A file that is not what a run of `source` near API day `around`
        writes is renamed aside and named through `warn`."""
        from research_pipeline.warehouse import raw

        answers = requests = 0
        for path in self.pending():
            try:
                found, rows, records = _read(path)
                _check(found, source, rows, records, around)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                aside = path.with_suffix(".rejected")
                os.replace(path, aside)
                warn(
                    f"a spill file was not stored and is moved aside: {aside} ({exc}); if it "
                    "is a real one, tell the maintainers, else delete it"
                )
                continue
            try:
                raw.save_fetched(conn, rows, records, source, skip_recorded_requests=True)
            except Exception as exc:
                raise WarehouseError(
                    f"cannot store the {len(rows)} answers kept in {path} ({exc}); they stay "
                    "there: free space or fix the warehouse, then run again"
                ) from None
            path.unlink()
            answers += len(rows)
            requests += len(records)
        return answers, requests


def _private(folder: Path) -> bool:
    """Ours, a real folder (not a link), and nobody else may write in it."""
    info = folder.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _private_enough(folder: Path) -> bool:
    """The configured spill folder may be shared by a lab group; the fallback must be ours."""
    return folder.name != f"research-pipeline-spill-{os.getuid()}" or _private(folder)


MAX_SPILL_LINES = 200_000  # a day is at most a few thousand requests and answers


def _check(source: str, expected: str, rows, records, around: date) -> None:
    if source != expected:
        raise ValueError(f"its answers come from {source!r}, this run's from {expected!r}")
    for day, cohort, item in [*rows, *records]:
        if abs((day - around).days) > 2:
            raise ValueError(f"it holds a {cohort} answer of {day}, far from the API's {around}")
        if not isinstance(item.username, str) or not item.username:
            raise ValueError("it holds an answer without a username")


def _read(path: Path) -> tuple[str, list[Row], list[Request]]:
    source, rows, records = "", [], []
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) > MAX_SPILL_LINES:
        raise ValueError(f"{len(lines)} lines, more than a day's run can write")
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        if not isinstance(entry, dict) or entry.get("kind") not in ("source", "answer", "request"):
            raise ValueError("a line that is not a spill record")
        if entry["kind"] == "source":
            source = entry["source"]
            continue
        day, cohort = date.fromisoformat(entry["day"]), entry["cohort"]
        if entry["kind"] == "answer":
            rows.append((day, cohort, _decode(UserInfoResult, entry["item"])))
        else:
            records.append((day, cohort, _decode(RequestRecord, entry["item"])))
    return source, rows, records
