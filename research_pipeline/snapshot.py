"""Taking snapshots: fetch the planned members of some (date, cohort) partitions and store every
answer.

Plain Python over the client and the warehouse, so the rules live in one place whoever calls it
(the Dagster asset, a notebook, the panel simulation in the tests):
- users already answered for a partition are skipped (a re-run spends no quota on them), a user
  answered today for another cohort is copied, and a user in several cohorts is asked once;
- answers are saved in small batches together with the requests that paid for them (a crash
  loses at most a quarter second of answers), and whatever stops the stream, every answer
  received is stored;
- each answer is dated by the API's own clock (its Date header): if the API's day changes
  during a run, no one new is asked, and answers of the new day are stored under the new day;
- an exhausted quota is not a failure: the planned users not reached stay due and come first in
  the next plan. Refused credentials or scope are (`SnapshotIncompleteError`).
"""

import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import TextIO

import pandas as pd
from tqdm import tqdm

from research_pipeline import warehouse
from research_pipeline.errors import (
    FatalApiError,
    QuotaExhaustedError,
    SnapshotDateError,
    SnapshotIncompleteError,
    TransientApiError,
    WarehouseError,
)
from research_pipeline.spill import AnswerSpill
from research_pipeline.tiktok import ResearchApiClient, UserInfoResult
from research_pipeline.tiktok.models import RequestRecord
from research_pipeline.warehouse import panel
from research_pipeline.warehouse.claims import UserClaims

# Answers are saved at least this often: a killed process loses at most a quarter second of
# answers (plus the requests in flight), and the file's write lock is held only while saving.
BATCH_SIZE = 500
BATCH_SECONDS = 0.25

OpenWarehouse = Callable[[], AbstractContextManager]


@dataclass(frozen=True)
class Partition:
    snapshot_date: date
    cohort: str
    members: Sequence[str]  # the whole cohort that day: rows of anyone else are removed
    wanted: Sequence[str] | None = None  # to fetch now (the day's plan); None: every member
    cadence_days: int = 1

    @property
    def key(self) -> warehouse.Key:
        return (self.snapshot_date, self.cohort)

    @property
    def to_fetch(self) -> Sequence[str]:
        return self.members if self.wanted is None else self.wanted


@dataclass
class SnapshotReport:
    snapshot_date: date
    cohort: str
    members: int
    planned: int = 0
    already_stored: int = 0
    copied: int = 0  # answered for another cohort the same day: no request needed
    fetched: int = 0
    requests_spent: int = 0  # ledger rows credited to this cohort (a shared user: its first)
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class SnapshotRun:
    reports: list[SnapshotReport]
    requests: int = 0
    planned_users: int = 0  # distinct users this run had to ask
    answered: int = 0
    quota_left: int | None = None
    quota_message: str = ""  # set when the quota ran out before every planned user was asked
    new_day: date | None = None  # the API's day changed during the run
    new_day_answers: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)  # final error answers
    asked_elsewhere: int = 0  # planned users another live run of the project was asking
    deadline_message: str = ""  # set when the run's deadline stopped it asking

    @property
    def unreached(self) -> int:
        """Planned users nobody answered: not this run, nor another run asking them now."""
        return max(0, self.planned_users - self.answered - self.asked_elsewhere)


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

    def put_back(self, records: list[RequestRecord]) -> None:
        """Records taken for a save that failed: saved with the next batch instead."""
        with self._lock:
            self._records[:0] = records


def take_snapshots(
    open_warehouse: OpenWarehouse,
    client: ResearchApiClient,
    ledger: RequestLedger,
    partitions: Sequence[Partition],
    *,
    refetch: bool = False,
    allow_mixed_sources: bool = False,
    claims: UserClaims | None = None,
    spill: AnswerSpill | None = None,
    deadline_seconds: float | None = None,
    log: Callable[[str], None] = print,
    progress: TextIO | None = None,
) -> SnapshotRun:
    """Fetch and store the given (date, cohort) partitions with `client` (its `on_request` is
    `ledger`), as one stream of requests.

    `open_warehouse()` gives a short-lived connection: the DuckDB file is locked only while a
    batch is written, so runs in other processes can write between our batches. With `claims`
    (shared by every process of the project), a user another live run is asking is left to it:
    no answer is paid for twice. When the warehouse stops taking answers, no one new is asked
    and the answers received go to `spill` (stored by the next run), then WarehouseError says
    so. A progress bar goes to `progress` (default: the terminal, when stderr is one; never
    into a log file). After `deadline_seconds` no one new is asked."""
    days = {p.snapshot_date for p in partitions}
    if len(days) > 1:
        raise SnapshotDateError(f"one API day per run, got {sorted(days)}")
    reports = {
        p.key: SnapshotReport(p.snapshot_date, p.cohort, len(p.members), len(p.to_fetch))
        for p in partitions
    }
    run = SnapshotRun(list(reports.values()))
    todo: dict[str, list[warehouse.Key]] = {}  # username -> partitions that want it
    with open_warehouse() as conn:
        warehouse.record_source(conn, client.source, allow_mixed_sources)
        for day in days:
            panel.record_members(
                conn,
                day,
                {p.cohort: p.members for p in partitions},
                {p.cohort: p.cadence_days for p in partitions},
            )
        stored = {p.key: set() for p in partitions}
        if not refetch:
            stored = warehouse.final_usernames(conn, list(reports))
        wanted = [
            (p.snapshot_date, p.cohort, u)
            for p in partitions
            for u in p.to_fetch
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
            todo.setdefault(username, []).append((snapshot_date, cohort))
    for key, report in reports.items():
        report.already_stored = len(stored[key] & set(_partition(partitions, key).to_fetch))
    run.planned_users = len(todo)
    if todo:
        (day,) = days
        spent_before = ledger.total
        try:
            _check_snapshot_date(client, day)
            log(
                f"{len(todo)} users to fetch for {len(partitions)} partition(s) "
                f"({sum(r.already_stored for r in reports.values())} rows already stored, "
                f"{sum(r.copied for r in reports.values())} copied from another cohort); "
                f"quota left today: {_quota_text(client.quota.remaining)}"
            )
            bar = _progress_bar(len(todo), progress)
            try:
                _fetch_into(
                    open_warehouse, client, ledger, run, reports, todo, day, log, claims, spill,
                    bar, deadline_seconds,
                )  # fmt: skip
            finally:
                bar.close()
        finally:
            run.requests = ledger.total - spent_before
            run.quota_left = client.quota.remaining
    with open_warehouse() as conn:
        statuses = warehouse.finish_snapshots(conn, {p.key: p.members for p in partitions})
    for key, report in reports.items():
        report.statuses = statuses[key]
    return run


def _partition(partitions: Sequence[Partition], key: warehouse.Key) -> Partition:
    return next(p for p in partitions if p.key == key)


def _check_snapshot_date(client: ResearchApiClient, snapshot_date: date) -> None:
    try:
        api_today = client.api_now().date()
    except FatalApiError as exc:
        raise SnapshotIncompleteError(f"no snapshot taken: {exc}") from None
    except TransientApiError as exc:
        # An API that cannot be reached now will not be in the next minutes either: say so at
        # once (the schedule's next tick tries again) instead of minutes of retries in silence.
        raise SnapshotIncompleteError(f"no snapshot taken, the API is unreachable: {exc}") from None
    if snapshot_date != api_today:
        raise SnapshotDateError(
            f"cannot fetch the snapshot of {snapshot_date}: the Research API returns current "
            f"values only, and today at the API is {api_today} (UTC). Materialize the partition "
            f"for {api_today} instead; derived assets can still be recomputed for any date."
        )


def _fetch_into(
    open_warehouse, client, ledger, run, reports, todo, day, log, claims, spill, bar,
    deadline_seconds,
):  # fmt: skip
    """Stream the users of `todo` through the client, saving answers as they come."""
    answered: set[str] = set()
    names = list(todo) if claims is None else claims.claimed(day, list(todo))
    try:
        _stream(
            open_warehouse, client, ledger, run, reports, todo, day, log, names, answered, spill,
            bar, deadline_seconds,
        )  # fmt: skip
    finally:
        if claims is not None:
            claims.release(day, claims.held - answered)
            run.asked_elsewhere = len({name for name, _ in claims.skipped})
            if run.asked_elsewhere:
                pids = sorted({pid for _, pid in claims.skipped})
                log(
                    f"{run.asked_elsewhere} planned users were being asked by another run of "
                    f"this project (process {', '.join(map(str, pids))}): left to it, its "
                    "answers go to the same warehouse"
                )


def _stream(
    open_warehouse, client, ledger, run, reports, todo, day, log, names, answered, spill, bar,
    deadline_seconds,
):  # fmt: skip
    rows: list[tuple[date, str, UserInfoResult]] = []
    started = last_log = time.monotonic()
    stop = threading.Event()
    lock = threading.Lock()

    def save() -> None:
        """Store the answers and requests received since the last save (any thread). When the
        warehouse cannot take them, they go to the spill file and no one new is asked."""
        nonlocal rows, storage_failure
        with lock:
            batch, rows = rows, []
            records = ledger.take()
            if not batch and not records:
                return
            requests = [(day, todo[r.username][0][1], r) for r in records if r.username in todo]
            try:
                with open_warehouse() as conn:
                    warehouse.save_fetched(conn, batch, requests, client.source)
            except Exception as exc:
                cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                storage_failure = storage_failure or cause
                stop.set()  # every answer now would only join the spill: ask no one new
                if not _kept_aside(spill, batch, requests, client.source):
                    rows = batch + rows  # kept in memory: the error says how many are lost
                    ledger.put_back(records)
                    return
            for _, cohort, _ in requests:
                reports[(day, cohort)].requests_spent += 1
            for answer_day, cohort, result in batch:
                if answer_day == day:
                    reports[(day, cohort)].fetched += result.is_final

    def receive(result: UserInfoResult) -> None:
        """Count one answer, note what it tells about the run, and queue it for the next save."""
        nonlocal last_log
        run.answered += 1
        answered.add(result.username)
        bar.update()
        if deadline_seconds is not None and not stop.is_set():
            if time.monotonic() - started > deadline_seconds:
                stop.set()  # ask no one new; the requests in flight are answered and kept
                run.deadline_message = (
                    f"the run's deadline ({deadline_seconds:g} s) passed after "
                    f"{run.answered} of {len(todo)} users: no one new is asked; the rest "
                    "stay due (RESEARCH_PIPELINE_RUN_DEADLINE_SECONDS)"
                )
                log(run.deadline_message)
        bar.set_postfix_str(f"quota left {_quota_text(client.quota.remaining)}", refresh=False)
        if result.error_kind and result.is_final:
            run.errors_by_kind[result.error_kind] = run.errors_by_kind.get(result.error_kind, 0) + 1
        answer_day = result.served_at.date() if result.served_at else day
        if answer_day != day:
            run.new_day_answers += 1
            if run.new_day is None:
                run.new_day = answer_day
                stop.set()  # ask no one new: the rest are planned again for the new day
                log(
                    f"the API's day changed to {answer_day} during the run: answers from "
                    f"now on are stored under {answer_day}; no new requests in this run"
                )
        with lock:
            rows.extend((answer_day, cohort, result) for _, cohort in todo[result.username])
            full = len(rows) >= BATCH_SIZE
        if full:
            save()
        now = time.monotonic()
        if now - last_log >= 10:
            last_log = now
            log(_progress(run.answered, len(todo), now - started, ledger, client))

    storage_failure = ""
    saver = PeriodicSaver(save, BATCH_SECONDS)
    try:
        try:
            for result in client.iter_user_info(names, stop=stop):
                saver.raise_failure()
                receive(result)
        except QuotaExhaustedError as exc:
            run.quota_message = (
                f"{exc}: {run.answered} of {len(todo)} planned users answered; their rows are "
                f"stored, and the {len(todo) - run.answered} not reached stay due and come "
                "first in the next day's plan"
            )
            log(run.quota_message)
        except FatalApiError as exc:
            raise SnapshotIncompleteError(
                f"stopped after {run.answered} users answered: {exc}"
            ) from None
    finally:
        saver.stop()
        save()  # whatever stopped us, keep what was paid for
        if storage_failure:
            raise _storage_error(storage_failure, spill, rows) from None


def _kept_aside(spill: AnswerSpill | None, batch, requests, source: str) -> bool:
    """Write what the warehouse refused to the spill file; False when nowhere could take it."""
    if spill is None:
        return False
    try:
        spill.write(batch, requests, source)
    except WarehouseError:
        return False
    return True


def _storage_error(cause: str, spill: AnswerSpill | None, unsaved: list) -> WarehouseError:
    """What the researcher must know when the warehouse stopped taking answers."""
    kept = (
        f"the {spill.answers_kept} answers it could not store are kept in "
        f"{', '.join(sorted({str(p.parent) for p in spill.written}))} and will be stored by the "
        "next run before it asks anyone"
        if spill is not None and spill.written
        else "no answer was kept aside"
    )
    lost = (
        f"; {len(unsaved)} answers could be kept nowhere and are LOST (their users are asked "
        "again on the next run)"
        if unsaved
        else ""
    )
    return WarehouseError(
        f"the warehouse stopped taking answers ({cause}): no one new was asked; "
        f"{kept}{lost}. Free space or fix the file, then run again"
    )


class PeriodicSaver:
    """Calls `save` every `seconds` from its own thread, so answers are stored on time even when
    the next answer is slow to come (a stalled request must not hold received ones hostage)."""

    def __init__(self, save: Callable[[], None], seconds: float):
        self._save, self._seconds = save, seconds
        self._stopped = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="snapshot-saver")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self._seconds):
            try:
                self._save()
            except BaseException as exc:  # handed to the fetching thread, which stops
                self._failure = exc
                return

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _progress_bar(total: int, out: TextIO | None) -> tqdm:
    """Users answered / total, rate and time left (tqdm's), quota left: on the terminal only
    (tqdm draws nothing when the stream is not a terminal, unless one is given)."""
    return tqdm(
        total=total,
        unit="user",
        desc="fetching",
        file=out or sys.stderr,
        disable=None if out is None else False,
        mininterval=0.5,
        dynamic_ncols=True,
    )


def _progress(answered: int, total: int, elapsed: float, ledger, client) -> str:
    """One progress line for the run's log (and the CLI, which prints the log)."""
    rate = answered / elapsed if elapsed > 0 else 0.0
    left = f"{(total - answered) / rate:.0f} s" if rate > 0 else "unknown"
    return (
        f"{answered}/{total} users answered ({answered / total:.0%}), {rate:.1f} users/s, "
        f"{ledger.total} requests, quota left {_quota_text(client.quota.remaining)}, "
        f"about {left} to go"
    )


def _quota_text(remaining: int | None) -> str:
    return "unlimited" if remaining is None else str(remaining)
