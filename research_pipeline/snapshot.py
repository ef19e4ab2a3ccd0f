"""Taking snapshots: fetch the users of some (date, cohort) partitions and store every answer.

Plain Python over the client and the warehouse, so the rules live in one place whoever calls it
(the Dagster asset, a notebook): users already answered for a snapshot are skipped (resume
spends no quota), a user answered today for another cohort is copied, a user in several cohorts
is asked once, answers are saved in small batches together with the requests that paid for them
(a crash loses at most a quarter second of answers), and an exhausted quota or a fatal API error
still leaves every answered row stored.
"""

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from research_pipeline import warehouse
from research_pipeline.errors import (
    FatalApiError,
    QuotaExhaustedError,
    SnapshotDateError,
    SnapshotIncompleteError,
)
from research_pipeline.tiktok import ResearchApiClient, UserInfoResult
from research_pipeline.tiktok.models import RequestRecord

# Answers are saved at least this often: a killed process loses at most a quarter second of
# answers (plus the requests in flight), and the file's write lock is held only while saving.
BATCH_SIZE = 500
BATCH_SECONDS = 0.25

OpenWarehouse = Callable[[], AbstractContextManager]


@dataclass
class SnapshotReport:
    snapshot_date: date
    cohort: str
    members: int
    already_stored: int = 0
    copied: int = 0  # answered for another cohort the same day: no request needed
    fetched: int = 0
    requests_spent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    quota_left: int | None = None


@dataclass(frozen=True)
class Partition:
    snapshot_date: date
    cohort: str
    members: Sequence[str]

    @property
    def key(self) -> warehouse.Key:
        return (self.snapshot_date, self.cohort)


class RequestLedger:
    """Collects request records from the client's worker threads until the next save."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self.total = 0

    def __call__(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            self.total += 1

    def take(self) -> list[RequestRecord]:
        with self._lock:
            records, self._records = self._records, []
            return records


def quota_used_today(open_warehouse: OpenWarehouse) -> int:
    with open_warehouse() as conn:
        return warehouse.requests_spent_today(conn)


def take_snapshots(
    open_warehouse: OpenWarehouse,
    client: ResearchApiClient,
    ledger: RequestLedger,
    partitions: Sequence[Partition],
    *,
    refetch: bool = False,
    log: Callable[[str], None] = print,
) -> list[SnapshotReport]:
    """Fetch and store the given (date, cohort) partitions with `client` (its `on_request` is
    `ledger`), as one stream of requests: a user in several cohorts is asked once per day.

    `open_warehouse()` gives a short-lived connection: the DuckDB file is locked only while a
    batch is written, so runs in other processes can write between our batches."""
    reports = {p.key: SnapshotReport(p.snapshot_date, p.cohort, len(p.members)) for p in partitions}
    todo: dict[tuple[date, str], list[warehouse.Key]] = {}
    with open_warehouse() as conn:
        stored = {p.key: set() for p in partitions}
        if not refetch:
            stored = warehouse.final_usernames(conn, list(reports))
        wanted = [
            (p.snapshot_date, p.cohort, u)
            for p in partitions
            for u in p.members
            if u not in stored[p.key]
        ]
        copied_rows: set[tuple[date, str, str]] = set()
        if wanted and not refetch:
            copied_rows = warehouse.copy_answers_from_other_cohorts(
                conn, pd.DataFrame(wanted, columns=["snapshot_date", "cohort", "username"])
            )
    for snapshot_date, cohort, username in wanted:
        if (snapshot_date, cohort, username) in copied_rows:
            reports[(snapshot_date, cohort)].copied += 1
        else:
            todo.setdefault((snapshot_date, username), []).append((snapshot_date, cohort))
    for key, report in reports.items():
        report.already_stored = len(stored[key])
    if todo:
        spent_before = ledger.total
        try:
            for snapshot_date in sorted({d for d, _ in todo}):
                _check_snapshot_date(client, snapshot_date)
            log(
                f"{len(todo)} users to fetch for {len(partitions)} partition(s) "
                f"({sum(r.already_stored for r in reports.values())} rows already stored, "
                f"{sum(r.copied for r in reports.values())} copied from another cohort); "
                f"quota left today: {_quota_text(client.quota.remaining)}"
            )
            _fetch_into(open_warehouse, client, ledger, reports, todo, log)
        finally:
            spent = ledger.total - spent_before
            for report in reports.values():
                report.quota_left = client.quota.remaining
            # Requests are shared by the partitions of a stream: credit them to the first.
            next(iter(reports.values())).requests_spent = spent
    with open_warehouse() as conn:
        statuses = warehouse.finish_snapshots(conn, {p.key: p.members for p in partitions})
    for key, report in reports.items():
        report.statuses = statuses[key]
    return list(reports.values())


def _check_snapshot_date(client: ResearchApiClient, snapshot_date: date) -> None:
    try:
        api_today = client.api_now().date()
    except FatalApiError as exc:
        raise SnapshotIncompleteError(f"no snapshot taken: {exc}") from None
    if snapshot_date != api_today:
        raise SnapshotDateError(
            f"cannot fetch the snapshot of {snapshot_date}: the Research API returns current "
            f"values only, and today at the API is {api_today} (UTC). Materialize the partition "
            f"for {api_today} instead; derived assets can still be recomputed for any date."
        )


def _fetch_into(open_warehouse, client, ledger, reports, todo, log) -> None:
    """Stream the users of `todo` through the client, saving answers as they come."""
    rows: list[tuple[date, str, UserInfoResult]] = []
    date_of: dict[str, date] = {}
    for snapshot_date, username in todo:
        date_of[username] = snapshot_date  # one snapshot date per stream (checked above)
    answered = 0
    last_save = last_log = time.monotonic()

    def save() -> None:
        nonlocal rows, last_save
        records = ledger.take()
        if rows or records:
            requests = [
                (date_of[r.username], todo[(date_of[r.username], r.username)][0][1], r)
                for r in records
            ]
            with open_warehouse() as conn:
                warehouse.save_fetched(conn, rows, requests, client.source)
        for snapshot_date, cohort, result in rows:
            reports[(snapshot_date, cohort)].fetched += result.is_final
        rows, last_save = [], time.monotonic()

    try:
        for result in client.iter_user_info(username for _, username in todo):
            answered += 1
            for snapshot_date, cohort in todo[(date_of[result.username], result.username)]:
                rows.append((snapshot_date, cohort, result))
            now = time.monotonic()
            if len(rows) >= BATCH_SIZE or now - last_save >= BATCH_SECONDS:
                save()
            if now - last_log >= 10:
                last_log = now
                log(
                    f"{answered}/{len(todo)} users answered, {ledger.total} requests, quota "
                    f"left {_quota_text(client.quota.remaining)}"
                )
    except QuotaExhaustedError as exc:
        save()
        members = sum(r.members for r in reports.values())
        done = sum(r.already_stored + r.copied + r.fetched for r in reports.values())
        where = ", ".join(f"{r.cohort} {r.snapshot_date}" for r in reports.values())
        raise SnapshotIncompleteError(
            f"{where}: {done} of {members} users done, {members - done} remain; {exc}. Their "
            "rows are stored: run again after the reset and only the remaining users are "
            "requested.",
        ) from None
    except FatalApiError as exc:
        save()
        raise SnapshotIncompleteError(f"stopped after {answered} users answered: {exc}") from None
    except BaseException:
        save()  # whatever stopped us, keep what was paid for
        raise
    save()


def _quota_text(remaining: int | None) -> str:
    return "unlimited" if remaining is None else str(remaining)
