"""Taking one snapshot: fetch a cohort's users for a date and store every answer as it arrives.

Plain Python over the client and the warehouse, so the rules live in one place whoever calls it
(the Dagster asset, a notebook): users already answered for this snapshot are skipped (resume
spends no quota), answers are saved in small batches together with the requests that paid for
them (a crash loses at most one batch), and an exhausted quota or a fatal API error still leaves
every answered row stored.
"""

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date

from research_pipeline import storage
from research_pipeline.tiktok import (
    FatalApiError,
    QuotaExhaustedError,
    ResearchApiClient,
    UserInfoResult,
)
from research_pipeline.tiktok.models import RequestRecord

# Answers are saved at least this often: a killed process loses at most a quarter second of
# answers (plus the requests in flight), and the file's write lock is held only while saving.
BATCH_SIZE = 500
BATCH_SECONDS = 0.25

OpenWarehouse = Callable[[], AbstractContextManager]


class SnapshotDateError(ValueError):
    """The API serves current values only: a snapshot can be fetched on its own day only."""


class SnapshotIncompleteError(Exception):
    """Fetching stopped before every user was answered; the rows fetched so far are stored."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


@dataclass
class SnapshotReport:
    snapshot_date: date
    cohort: str
    members: int
    already_stored: int
    fetched: int = 0
    requests_spent: int = 0
    transient_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    quota_left: int | None = None


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
        return storage.requests_spent_today(conn)


def take_snapshot(
    open_warehouse: OpenWarehouse,
    client: ResearchApiClient,
    ledger: RequestLedger,
    snapshot_date: date,
    cohort: str,
    members: Sequence[str],
    *,
    refetch: bool = False,
    log: Callable[[str], None] = print,
) -> SnapshotReport:
    """Fetch and store (snapshot_date, cohort) with `client`, whose `on_request` is `ledger`.

    `open_warehouse()` gives a short-lived connection: the DuckDB file is locked only while a
    batch is written, so runs in other processes can write between our batches."""
    with open_warehouse() as conn:
        stored = set() if refetch else storage.final_usernames(conn, snapshot_date, cohort)
    todo = [name for name in members if name not in stored]
    report = SnapshotReport(snapshot_date, cohort, len(members), len(members) - len(todo))
    if todo:
        spent_before = ledger.total
        try:
            _check_snapshot_date(client, snapshot_date)
            log(
                f"{cohort} {snapshot_date}: {len(todo)} of {len(members)} users to fetch "
                f"({report.already_stored} already stored); quota left today: "
                f"{_quota_text(client.quota.remaining)}"
            )
            _fetch_into(open_warehouse, client, ledger, report, todo, log)
        finally:
            report.requests_spent = ledger.total - spent_before
            report.quota_left = client.quota.remaining
    with open_warehouse() as conn:
        storage.finish_snapshot(conn, snapshot_date, cohort, members)
        report.statuses = storage.status_counts(conn, snapshot_date, cohort)
    return report


def _check_snapshot_date(client: ResearchApiClient, snapshot_date: date) -> None:
    try:
        api_today = client.api_now().date()
    except FatalApiError as exc:
        raise SnapshotIncompleteError(f"no snapshot taken: {exc}", retryable=False) from None
    if snapshot_date != api_today:
        raise SnapshotDateError(
            f"cannot fetch the snapshot of {snapshot_date}: the Research API returns current "
            f"values only, and today at the API is {api_today} (UTC). Materialize the partition "
            f"for {api_today} instead; derived assets can still be recomputed for any date."
        )


def _fetch_into(open_warehouse, client, ledger, report: SnapshotReport, todo, log) -> None:
    batch: list[UserInfoResult] = []
    last_save = last_log = time.monotonic()

    def save() -> None:
        nonlocal batch, last_save
        requests = ledger.take()
        if batch or requests:
            with open_warehouse() as conn:
                storage.save_fetched(conn, report.snapshot_date, report.cohort, batch, requests)
        report.fetched += len(batch)
        report.transient_errors += sum(not r.is_final for r in batch)
        batch, last_save = [], time.monotonic()

    try:
        for result in client.iter_user_info(todo):
            batch.append(result)
            now = time.monotonic()
            if len(batch) >= BATCH_SIZE or now - last_save >= BATCH_SECONDS:
                save()
            if now - last_log >= 10:
                last_log = now
                log(
                    f"{report.cohort} {report.snapshot_date}: {report.fetched}/{len(todo)} "
                    f"saved, {ledger.total} requests, quota left "
                    f"{_quota_text(client.quota.remaining)}"
                )
    except QuotaExhaustedError as exc:
        save()
        done = report.already_stored + report.fetched - report.transient_errors
        raise SnapshotIncompleteError(
            f"{report.cohort} {report.snapshot_date}: {done} of {report.members} users done, "
            f"{report.members - done} remain; {exc}. Their rows are stored: run the partition "
            "again after the reset and only the remaining users are requested.",
            retryable=False,
        ) from None
    except FatalApiError as exc:
        save()
        raise SnapshotIncompleteError(
            f"{report.cohort} {report.snapshot_date}: stopped after {report.fetched} users: {exc}",
            retryable=False,
        ) from None
    except BaseException:
        save()  # whatever stopped us, keep what was paid for
        raise
    save()


def _quota_text(remaining: int | None) -> str:
    return "unlimited" if remaining is None else str(remaining)
