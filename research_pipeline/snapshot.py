"""The day's snapshot: one plain-Python object that carries out an API day's plan.

`DailySnapshot` is what the Dagster asset, the panel simulation in the tests and a notebook run;
the rules live here once, whoever calls it:
- before anyone is asked, what an earlier run left behind is put right: answers in the journal
  of a run that could not store them are stored, requests a killed run sent are booked in the
  ledger;
- one plan for every cohort, made from the warehouse's history and the ledger; the users are
  asked in the plan's order (most overdue first), whatever cohort they are in, and each answer
  fills every cohort row of that user;
- users already answered for a partition are skipped (a re-run spends no quota on them), a user
  answered today for another cohort is copied, and a user in several cohorts is asked once;
- every request and answer goes to the run's journal (research_pipeline.journal) the moment it
  arrives, before anything else: a killed run loses at most the requests in flight. The
  warehouse is filled from it in small batches; a warehouse that cannot take them (a reader
  holding the file, a full disk) does not stop the asking: the next save, or the next run,
  stores them. A journal that cannot be written stops the asking at once;
- each answer is dated by the API's own clock (its Date header): if the API's day turns during
  a run (an answer in the first hour after midnight), no one new is asked, and answers of the
  new day are stored under the new day; any other Date is the API's clock jumping: told once,
  it relabels nothing. A day before the latest the ledger holds is refused (a clock gone back);
- what ends the day's asking is not a failure to retry: an exhausted quota, an outage (server
  errors in a row), the run's deadline, Ctrl-C/SIGTERM. The planned users not reached stay due
  and come first in the next plan (`SnapshotRun.stopped_because`). Refused credentials or scope
  are failures (`SnapshotIncompleteError`);
- a user's tries are counted per API day across runs and retries (the ledger), so a user that
  always fails costs at most `tries_per_user_per_day` requests a day.
"""

import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TextIO

from tqdm import tqdm

from research_pipeline import panels, warehouse
from research_pipeline.coordination import Coordination, SharedDay, UserClaims
from research_pipeline.errors import (
    ApiOutageError,
    FatalApiError,
    JournalError,
    QuotaExhaustedError,
    SnapshotDateError,
    SnapshotIncompleteError,
    TransientApiError,
    WarehouseError,
    WarehouseLockedError,
)
from research_pipeline.interrupts import StopSignals, stop_on_signals
from research_pipeline.journal import RunJournal
from research_pipeline.planner import CohortSpec, Plan
from research_pipeline.tiktok import ClientSettings, ResearchApiClient, UserInfoResult
from research_pipeline.tiktok.breaker import TRIP_AFTER, is_server_failure
from research_pipeline.tiktok.constants import DAILY_QUOTA_LIMIT_EXCEEDED, RATE_LIMIT_STATUSES
from research_pipeline.tiktok.models import RequestRecord
from research_pipeline.tiktok.settings import source_of
from research_pipeline.warehouse import panel, raw

# Answers reach the warehouse at least this often, and as soon as this many wait (they are in
# the journal already: this is how fresh the warehouse is, not what a crash can lose), and the
# file's write lock is held only while saving.
BATCH_SECONDS = 0.25
SAVE_AFTER_ANSWERS = 32

OpenWarehouse = Callable[..., AbstractContextManager]
# A reader holding the warehouse at the start is waited for this long, then the day is planned
# from a read-only view instead (its answers wait in the journal until the file is free).
START_LOCK_WAIT_SECONDS = 5.0
# An answer dated the next day within this long after its midnight is the API's day turning
# during the run; any other date than the run's is the API's clock jumping (a Date a day off).
MIDNIGHT_CROSSING = timedelta(hours=1)


@dataclass(frozen=True)
class DayHistory:
    """What the ledger says of the API day before anyone is asked."""

    tries: dict[str, int]  # requests that tried each user today
    recent: list  # the day's last answers (status, http_status, message), newest first
    last: tuple[str, str, datetime] | None  # the day's last request: status, message, when
    latest_day: date | None  # the latest API day the ledger holds requests of

    @classmethod
    def read(cls, conn, day: date) -> "DayHistory":
        return cls(
            raw.tries_on(conn, day),
            raw.last_answers_on(conn, day, TRIP_AFTER),
            raw.last_request_on(conn, day),
            raw.latest_request_day(conn),
        )


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
    requests_spent: int = 0  # ledger rows credited to this cohort (a shared user: its first)
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class SnapshotRun:
    reports: list[SnapshotReport]
    plan: Plan | None = None
    partitions: list[Partition] = field(default_factory=list)
    requests: int = 0
    planned_users: int = 0  # distinct users this run had to ask
    answered: int = 0
    quota_left: int | None = None
    quota_message: str = ""  # set when the quota ran out before every planned user was asked
    outage_message: str = ""  # set when server errors in a row stopped the asking
    interrupted: str = ""  # the signal (SIGINT, SIGTERM) that stopped the asking
    interrupt_message: str = ""
    new_day: date | None = None  # the API's day changed during the run
    new_day_answers: int = 0
    asked_elsewhere: int = 0  # planned users another live run of the project was asking
    deadline_message: str = ""  # set when the run's deadline stopped it asking
    unfinished: int = 0  # rows of the run's partitions left transient (retries ran out)
    # Planned from a read-only view (a reader held the file): membership and copies from other
    # cohorts are written when the warehouse is free.
    deferred_writes: bool = False
    deferred_copies: list = field(default_factory=list)
    # The plan's decision per member (day, cohort, username, decision, rank, budget) and how
    # the asking of the planned ended (panel.record_plan, record_ending).
    decisions: list = field(default_factory=list)

    @property
    def unreached(self) -> int:
        """Planned users nobody answered: not this run, nor another run asking them now."""
        return max(0, self.planned_users - self.answered - self.asked_elsewhere)

    @property
    def cause(self) -> str:
        """The kind of trouble that ended the asking early (alerts go once per day and cause);
        empty when the plan ran to its end."""
        for cause, message in (
            ("interrupted", self.interrupt_message),
            ("quota", self.quota_message),
            ("outage", self.outage_message),
            ("deadline", self.deadline_message),
        ):
            if message:
                return cause
        return "quota" if self.unreached else ""

    @property
    def stopped_because(self) -> str:
        """Why the day's asking ended early, for good today or until the next tick; empty when
        it ran to the end of the plan."""
        return (
            self.interrupt_message
            or self.quota_message
            or self.outage_message
            or self.deadline_message
        )


def retry_wanted(run: SnapshotRun, retry_number: int, max_retries: int) -> bool:
    """Whether a step retry should ask again for the users left transient. Never after a stop:
    an interrupt means "stop spending now", a spent quota or an outage would only spend more
    for nothing, and the deadline is the run's own; the schedule's next tick is their retry."""
    return bool(run.unfinished) and retry_number < max_retries and not run.stopped_because


class AnswerKeeper:
    """Called by the client's worker threads for every request: the request, and the user's
    answer for every partition that wants it, go to the run's journal before anything else.
    A journal that cannot take them sets `stop`: no one new is asked."""

    def __init__(
        self, journal: RunJournal, day: date, todo: Mapping[str, list[warehouse.Key]], stop
    ):
        self.journal, self.day, self.todo, self.stop = journal, day, todo, stop
        self._lock = threading.Lock()
        self.total = 0
        self.jumped_to: datetime | None = None  # the first Date that was neither day nor next

    def __call__(self, record: RequestRecord) -> None:
        keys = self.todo.get(record.username)
        if not keys:
            return
        result = record.result
        rows = []
        if result is not None:
            rows = [(self.day_of(result), cohort, result) for _, cohort in keys]
        self.journal.append((self.day, keys[0][1], record), rows)
        with self._lock:
            self.total += 1
        if self.journal.failure is not None:
            self.stop.set()

    def result(self, result: UserInfoResult) -> None:
        """A user's row that no request carries (its retry could not be sent)."""
        keys = self.todo.get(result.username)
        if keys:
            self.journal.append(None, [(self.day_of(result), cohort, result) for _, cohort in keys])

    def day_of(self, result: UserInfoResult) -> date:
        """The API day an answer is stored under: the run's, or the next one when the API's
        day turned during the run (an answer dated in the first hour of the next day). Any
        other date is the API's clock jumping: noted (`jumped_to`), and it relabels nothing."""
        served = result.served_at
        if served is None or served.date() == self.day:
            return self.day
        midnight = datetime(served.year, served.month, served.day, tzinfo=UTC)
        if served.date() == self.day + timedelta(days=1) and served - midnight < MIDNIGHT_CROSSING:
            return served.date()
        if self.jumped_to is None:
            self.jumped_to = served
        return self.day


class DailySnapshot:
    """Carries out the plan of one API day for some cohorts: recover, plan, fetch, store."""

    def __init__(
        self,
        settings: ClientSettings,
        cohorts: Sequence[CohortSpec],
        open_warehouse: OpenWarehouse,
        *,
        coordination: Coordination | None = None,
        read_views: Sequence[OpenWarehouse] = (),
        allow_mixed_sources: bool = False,
        deadline_seconds: float | None = None,
        tries_per_user_per_day: int = 5,
        log: Callable[[str], None] = print,
        warn: Callable[[str], None] | None = None,
        progress: TextIO | None = None,
        client_factory: Callable[..., ResearchApiClient] = ResearchApiClient,
    ):
        self.settings = settings
        self.cohorts = list(cohorts)
        self.open_warehouse = open_warehouse
        self.coordination = coordination  # None: nothing shared (in-memory warehouse, tests)
        # Read-only opens, tried in order, to plan from when a reader holds the file (none: the
        # run waits for the write lock, then fails).
        self.read_views = list(read_views)
        self.allow_mixed_sources = allow_mixed_sources
        self.deadline_seconds = deadline_seconds
        self.tries_per_user_per_day = tries_per_user_per_day
        self.log = log
        self.warn = warn or log
        self.progress = progress
        self.client_factory = client_factory
        self.source = source_of(settings.base_url)

    def run(
        self, day: date, cohorts: Sequence[str] | None = None, *, refetch: bool = False
    ) -> SnapshotRun:
        """Take `day`'s snapshot of `cohorts` (default: all); `refetch` asks every member again.
        The warehouse is opened before any request: a broken one costs no quota. SIGINT and
        SIGTERM stop the asking (research_pipeline.interrupts): what was answered is stored,
        and the run says it was interrupted."""
        with stop_on_signals(threading.Event()) as signals:
            run = self._run(day, cohorts, refetch, signals)
        if signals.interrupted:
            run.interrupted = signals.received
            abandoned = " (answers still in flight were abandoned)" * signals.abandon.is_set()
            run.interrupt_message = (
                f"interrupted ({signals.received}): no one new was asked; {run.answered} of "
                f"{run.planned_users} planned users answered and stored{abandoned}; the others "
                "stay due for the next run"
            )
            self.warn(run.interrupt_message)
        return run

    def _run(self, day, cohorts, refetch, signals: StopSignals) -> SnapshotRun:
        by_name = {spec.name: spec for spec in self.cohorts}
        chosen = [by_name[name] for name in (cohorts or by_name) if name in by_name]
        if self.coordination is None:
            return self._shared_run(day, chosen, refetch, signals, None)
        with self.coordination.day() as shared:
            return self._shared_run(day, chosen, refetch, signals, shared)

    def _plan_from_a_view(self, locked: WarehouseLockedError, day, chosen, refetch):
        """A reader holds the warehouse: plan from the first view that opens (the file read
        only, beside a read-only reader; else the readers' copy, when it holds all the file
        does), and ask as planned; the answers wait in the journal until the file is free."""
        for view in self.read_views:
            try:
                with view(wait_seconds=START_LOCK_WAIT_SECONDS) as conn:
                    planned = self._plan_run(conn, day, chosen, refetch, False)
            except WarehouseError:
                continue
            self.warn(
                f"{str(locked).split('. ')[0]}: the day is planned from a read-only view and "
                "asked as planned; its answers wait in the journal until the file is free"
            )
            return planned
        raise locked

    def _open_before_asking(self):
        if not self.read_views:
            return self.open_warehouse()
        return self.open_warehouse(wait_seconds=START_LOCK_WAIT_SECONDS)

    def _journal_pending(self) -> bool:
        """Answers of an earlier run not yet stored: planning without them could ask again."""
        return self.coordination is not None and bool(self.coordination.journal.pending())

    def _plan_run(self, conn, day, chosen, refetch, writable: bool):
        """The day's plan, what the ledger says of the day, and the users to ask."""
        plan = self.plan(day, conn)
        history = DayHistory.read(conn, day)
        partitions = [
            Partition(
                day,
                spec.name,
                spec.members,
                None if refetch else plan.cohort_members[spec.name],
                spec.cadence_days,
            )
            for spec in chosen
        ]
        run, todo = self._prepare(conn, partitions, plan, refetch, writable)
        return plan, history, run, todo

    def _open_journal(self, day: date) -> RunJournal:
        """The run's journal, on the disk before any request (in memory for a warehouse that
        shares nothing: in-memory, MotherDuck)."""
        if self.coordination is None:
            return RunJournal(None, self.source)
        return self.coordination.journal.open_run(day, self.source)

    def _shared_run(self, day, chosen, refetch, signals, shared: SharedDay | None) -> SnapshotRun:
        claims = None if shared is None else shared.claims
        try:
            with self._open_before_asking() as conn:  # one open before any request
                self._recover(conn, claims, day)
                plan, history, run, todo = self._plan_run(conn, day, chosen, refetch, True)
        except WarehouseLockedError as exc:
            if not self.read_views or self._journal_pending():
                raise
            plan, history, run, todo = self._plan_from_a_view(exc, day, chosen, refetch)
        self.log(plan.summary())
        journal = self._open_journal(day)
        keeper = AnswerKeeper(journal, day, todo, signals.stop)
        client = self.client_factory(
            self.settings,
            on_request=keeper,
            on_result=keeper.result,
            on_send=None if claims is None else partial(claims.note_sent, day),
            quota_used_today=plan.spent_today,
            shared_quota=None if shared is None else shared.quota,
        )
        budget = self.tries_per_user_per_day
        attempts = {
            u: max(1, min(budget - n, self.settings.max_attempts)) for u, n in history.tries.items()
        }
        try:
            with client:
                self._take(client, keeper, run, todo, claims, attempts, signals, history)
        finally:
            journal.close(stored=journal.unsaved == 0)
        run.plan = plan
        return run

    def _prime(self, client, history: DayHistory) -> None:
        """Tell the client what the day's ledger knows: an outage or a spent quota at its end."""
        recent = history.recent
        if len(recent) >= TRIP_AFTER and all(is_server_failure(s, h) for s, h, _ in recent):
            status, http_status, _ = recent[0]
            client.breaker.suspect_outage(f"HTTP {http_status} {status}")
            self.warn(
                f"today's last {len(recent)} requests met server errors: one request first, "
                "to see whether the API is back, before sending more"
            )
        if history.last is not None and history.last[0] in RATE_LIMIT_STATUSES:
            self._expect_spent_quota(client, *history.last)

    def _expect_spent_quota(self, client, status: str, message: str, at: datetime) -> None:
        """Today's last request met a 429: the quota is likely spent (a later schedule tick, a
        re-run). After the API's own quota code, past the hours its reset has been seen to lag,
        nothing is sent at all; otherwise one probe decides. The hours are the API's: `at` (this
        machine's clock, as the ledger keeps it) is moved onto the API's clock first, since a
        machine hours off would otherwise give up a day whose reset is merely late."""
        at = at + (client.api_now() - datetime.now(UTC))
        midnight = datetime(at.year, at.month, at.day, tzinfo=UTC)
        if status == DAILY_QUOTA_LIMIT_EXCEEDED and at - midnight >= client.rate_limits.reset_lag:
            client.quota.exhaust(f"the API answered {status} at {at:%H:%M} UTC today")
        else:
            client.rate_limits.expect_quota()

    def plan(self, day: date, conn=None) -> Plan:
        """The day's plan, from the warehouse's history and the ledger (no request spent)."""
        if conn is None:
            with self.open_warehouse() as conn:
                return self.plan(day, conn)
        return panels.plan_for(
            conn,
            self.cohorts,
            day,
            daily_quota=self.settings.daily_quota,
            tries_per_day=self.tries_per_user_per_day,
        )

    def _recover(self, conn, claims: UserClaims | None, day: date) -> None:
        """Put right what an earlier run left: answers it could not store, requests it sent
        but never recorded (killed between sending and saving)."""
        journal = None if self.coordination is None else self.coordination.journal
        if journal is not None and journal.pending():
            answers, requests = journal.restore(conn, self.source, day, self.warn)
            self.warn(
                f"stored {answers} answers and {requests} requests from the journal of a run "
                "that ended before storing them in the warehouse"
            )
        if claims is not None:
            sent = claims.sent_by_ended_processes()
            lost = raw.record_unrecorded_requests(conn, sent, self.source)
            if lost:
                self.warn(
                    f"{lost} requests sent by a run that ended before recording them are now in "
                    "the ledger (status 'unrecorded') and count against the quota"
                )

    def _prepare(self, conn, partitions, plan, refetch, writable=True) -> tuple[SnapshotRun, dict]:
        """Record the source and the day's membership, and sort out the partitions' planned
        users: what is stored or copied from another cohort needs no request. Returns the run's
        record and the users to ask (username -> partitions), in the plan's order. On a
        read-only view (`writable` False) the writes wait for the end of the run."""
        reports = {
            p.key: SnapshotReport(p.snapshot_date, p.cohort, len(p.members), len(p.to_fetch))
            for p in partitions
        }
        run = SnapshotRun(list(reports.values()), partitions=list(partitions))
        todo: dict[str, list[warehouse.Key]] = {}  # username -> partitions that want it
        raw.check_source(conn, self.source, self.allow_mixed_sources)
        run.decisions = _decisions(plan, partitions, refetch)
        if writable:
            self._record_membership(conn, run)
        stored = {p.key: set() for p in partitions}
        if not refetch:
            stored = raw.final_usernames(conn, list(reports))
        wanted = [
            (p.snapshot_date, p.cohort, u)
            for p in partitions
            for u in p.to_fetch
            if u not in stored[p.key]
        ]
        copied_rows: set[tuple[date, str, str]] = set()
        if wanted and not refetch:
            if writable:
                copied_rows = raw.copy_answers_from_other_cohorts(conn, wanted)
            else:
                copied_rows = raw.answered_in_other_cohorts(conn, wanted)
                run.deferred_copies = sorted(copied_rows)
        run.deferred_writes = not writable
        for snapshot_date, cohort, username in wanted:
            if (snapshot_date, cohort, username) in copied_rows:
                reports[(snapshot_date, cohort)].copied += 1
            else:
                todo.setdefault(username, []).append((snapshot_date, cohort))
        for p in partitions:
            reports[p.key].already_stored = len(stored[p.key] & set(p.to_fetch))
        rank = {user: i for i, user in enumerate(plan.users)}
        todo = dict(sorted(todo.items(), key=lambda item: rank.get(item[0], len(rank))))
        run.planned_users = len(todo)
        return run, todo

    def _record_membership(self, conn, run: SnapshotRun) -> None:
        """The day's membership of the run's cohorts and the plan's decision for each member."""
        raw.record_source(conn, self.source, self.allow_mixed_sources)
        partitions = run.partitions
        panel.record_plan(conn, run.decisions)
        if partitions:
            panel.record_members(
                conn,
                partitions[0].snapshot_date,
                {p.cohort: p.members for p in partitions},
                {p.cohort: p.cadence_days for p in partitions},
            )

    @staticmethod
    def _run_day(run: SnapshotRun) -> tuple[date, list[str]]:
        return run.partitions[0].snapshot_date, [p.cohort for p in run.partitions]

    def _record_ending_if_possible(self, run: SnapshotRun, ending: str) -> None:
        """Say how the asking ended before the failure is raised; a warehouse that cannot be
        written now leaves it unsaid (the planned then show as interrupted)."""
        if run.deferred_writes:
            return  # the plan itself is not written yet
        try:
            with self.open_warehouse() as conn:
                panel.record_ending(conn, *self._run_day(run), ending)
        except WarehouseError as exc:
            self.warn(f"how the asking ended ({ending}) was not recorded: {exc}")

    def _take(self, client, keeper, run, todo, claims, attempts, signals, history) -> None:
        """Ask the users of `todo` in one stream, in the plan's order, then mark the run's
        partitions finished."""
        partitions = run.partitions
        reports = {(r.snapshot_date, r.cohort): r for r in run.reports}
        if todo:
            day = partitions[0].snapshot_date
            spent_before = keeper.total
            try:
                _check_snapshot_date(client, day, history.latest_day)
                self._prime(client, history)
                self.log(
                    f"{len(todo)} users to fetch for {len(partitions)} partition(s) "
                    f"({sum(r.already_stored for r in reports.values())} rows already stored, "
                    f"{sum(r.copied for r in reports.values())} copied from another cohort); "
                    f"quota left today: {_quota_text(client.quota.remaining)}"
                )
                stream = _Stream(self, client, keeper, run, reports, todo, day, signals)
                stream.fetch(claims, attempts)
            except SnapshotIncompleteError as exc:  # credentials refused, or the API down
                self._record_ending_if_possible(run, exc.cause)
                raise
            finally:
                run.requests = keeper.total - spent_before
                run.quota_left = client.quota.remaining
        with self.open_warehouse() as conn:
            if run.deferred_writes:  # planned from a read-only view: what it could not write
                self._record_membership(conn, run)
                if run.deferred_copies:
                    raw.copy_answers_from_other_cohorts(conn, run.deferred_copies)
            ending = "interrupted" if signals.interrupted else run.cause or "done"
            panel.record_ending(conn, *self._run_day(run), ending)
            statuses = raw.finish_snapshots(conn, {p.key: p.members for p in partitions})
            run.unfinished = raw.unfinished_count(conn, list(reports))
        for key, report in reports.items():
            report.statuses = statuses[key]


def _decisions(plan: Plan, partitions: Sequence[Partition], refetch: bool) -> list[tuple]:
    """The plan's decision per member of each partition (day, cohort, username, decision,
    rank, budget), kept by the warehouse (panel.record_plan); a refetch asks every member."""
    rows = []
    for p in partitions:
        decided = (
            [(u, "planned", None) for u in p.members] if refetch else plan.decisions(p.members)
        )
        rows += [(p.snapshot_date, p.cohort, u, d, rank, plan.budget) for u, d, rank in decided]
    return rows


def _check_snapshot_date(
    client: ResearchApiClient, snapshot_date: date, latest_day: date | None
) -> None:
    try:
        api_today = client.api_now().date()
    except FatalApiError as exc:
        raise SnapshotIncompleteError(f"no snapshot taken: {exc}", exc.cause) from None
    except TransientApiError as exc:
        # An API that cannot be reached now will not be in the next minutes either: say so at
        # once (the schedule's next tick tries again) instead of minutes of retries in silence.
        raise SnapshotIncompleteError(
            f"no snapshot taken, the API is unreachable: {exc}", exc.cause
        ) from None
    if snapshot_date != api_today:
        raise SnapshotDateError(
            f"cannot fetch the snapshot of {snapshot_date}: the Research API returns current "
            f"values only, and today at the API is {api_today} (UTC). Materialize the partition "
            f"for {api_today} instead; derived assets can still be recomputed for any date."
        )
    if latest_day is not None and latest_day > api_today:
        raise SnapshotDateError(
            f"no snapshot taken: today at the API is {api_today} (UTC), but this warehouse "
            f"already holds requests of {latest_day}: the API's clock went back. Nobody is "
            f"asked until its date reaches {latest_day} again, so no day is answered twice"
        )


class _Stream:
    """One stream of requests for the day's users. Answers reach the journal from the client's
    threads (AnswerKeeper); a timer thread moves them from there to the warehouse."""

    def __init__(self, owner: DailySnapshot, client, keeper, run, reports, todo, day, signals):
        self.owner, self.client, self.keeper = owner, client, keeper
        self.journal: RunJournal = keeper.journal
        self.run, self.reports, self.todo, self.day = run, reports, todo, day
        self.answered: set[str] = set()
        self.signals = signals
        self.stop = signals.stop  # set by a signal, the deadline, the API's new day, the journal
        self.lock = threading.Lock()
        self.storage_failure = ""
        self.jump_told = False
        self.started = self.last_log = time.monotonic()

    def fetch(self, claims: UserClaims | None, attempts: Mapping[str, int]) -> None:
        """Ask every user of `todo` not claimed by another live run, then release the claims
        of those this run did not reach."""
        names = list(self.todo) if claims is None else claims.claimed(self.day, list(self.todo))
        bar = _progress_bar(len(self.todo), self.owner.progress)
        try:
            self._stream(names, attempts, bar)
        finally:
            bar.close()
            if claims is not None:
                claims.release(self.day, claims.held - self.answered)
                self.run.asked_elsewhere = len({name for name, _ in claims.skipped})
                if self.run.asked_elsewhere:
                    pids = sorted({pid for _, pid in claims.skipped})
                    self.owner.log(
                        f"{self.run.asked_elsewhere} planned users were being asked by another "
                        f"run of this project (process {', '.join(map(str, pids))}): left to "
                        "it, its answers go to the same warehouse"
                    )

    def _stream(self, names, attempts: Mapping[str, int], bar: tqdm) -> None:
        run, total = self.run, len(self.todo)
        saver = PeriodicSaver(self.save, BATCH_SECONDS)
        try:
            try:
                for result in self.client.iter_user_info(
                    names, stop=self.stop, attempts=attempts, abandon=self.signals.abandon
                ):
                    saver.raise_failure()
                    self.receive(result, bar)
                    if self.journal.unsaved >= SAVE_AFTER_ANSWERS:
                        saver.soon()
            except QuotaExhaustedError as exc:
                run.quota_message = (
                    f"{exc}: {run.answered} of {total} planned users answered; their rows "
                    f"are stored, and the {total - run.answered} not reached stay due and "
                    "come first in the next day's plan"
                )
                self.owner.warn(run.quota_message)
            except ApiOutageError as exc:
                run.outage_message = (
                    f"{exc} ({run.answered} of {total} planned users answered and stored; "
                    f"the {total - run.answered} others stay due)"
                )
                self.owner.warn(run.outage_message)
            except FatalApiError as exc:
                raise SnapshotIncompleteError(
                    f"stopped after {run.answered} users answered: {exc}", exc.cause
                ) from None
        finally:
            saver.stop()
            self.save()  # whatever stopped us, keep what was paid for
            self._raise_if_not_kept()

    def _raise_if_not_kept(self) -> None:
        """The journal failed (asking stopped at once), or the warehouse still cannot take the
        answers (they wait in the journal for the next run): either way the step failed."""
        unsaved = self.journal.unsaved
        if self.journal.failure is not None:
            fate = (
                f"; {unsaved} answers could be kept neither there nor in the warehouse "
                f"({self.storage_failure}) and are LOST"
                if unsaved
                else "; every answer received is stored in the warehouse"
            )
            raise JournalError(f"{self.journal.failure}{fate}") from None
        if unsaved:
            raise WarehouseError(
                f"the warehouse could not take the answers ({self.storage_failure}): all "
                f"{self.run.answered} answers of this run are kept in the journal "
                f"{self.journal.path} and are stored by the next run before it asks anyone; "
                "nobody is asked twice"
            ) from None

    def save(self) -> None:
        """Move what the journal received since the last save into the warehouse (any thread).
        When the warehouse cannot take it now (a reader holds the file, the disk is full), it
        stays for the next save and the asking goes on: the journal holds every answer."""
        with self.lock:
            rows, requests = self.journal.take()
            if not rows and not requests:
                return
            try:
                with self.owner.open_warehouse() as conn:
                    raw.save_fetched(conn, rows, requests, self.client.source)
            except Exception as exc:
                self.journal.put_back(rows, requests)
                if not self.storage_failure:
                    cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    self.storage_failure = cause
                    self.owner.warn(
                        f"the warehouse cannot take answers now ({cause}): they are kept in the "
                        f"journal {self.journal.path or '(in memory)'} and stored later; the "
                        "asking goes on"
                    )
                return
            for _, cohort, _ in requests:
                self.reports[(self.day, cohort)].requests_spent += 1

    def receive(self, result: UserInfoResult, bar: tqdm) -> None:
        """Count one answer (already in the journal) and note what it tells about the run."""
        run, day, log = self.run, self.day, self.owner.log
        run.answered += 1
        self.answered.add(result.username)
        bar.update()
        deadline = self.owner.deadline_seconds
        if deadline is not None and not self.stop.is_set():
            if time.monotonic() - self.started > deadline:
                self.stop.set()  # ask no one new; the requests in flight are answered and kept
                run.deadline_message = (
                    f"the run's deadline ({deadline:g} s) passed after {run.answered} of "
                    f"{len(self.todo)} users: no one new is asked; the rest stay due "
                    "(RESEARCH_PIPELINE_RUN_DEADLINE_SECONDS)"
                )
                log(run.deadline_message)
        quota_left = _quota_text(self.client.quota.remaining)
        bar.set_postfix_str(f"quota left {quota_left}", refresh=False)
        answer_day = self.keeper.day_of(result)
        if self.keeper.jumped_to is not None and not self.jump_told:
            self.jump_told = True
            self.owner.warn(
                f"the API's Date jumped to {self.keeper.jumped_to:%Y-%m-%d %H:%M} UTC during "
                f"the run of {day}: its answers are stored under {day}, the run's API day"
            )
        if answer_day != day:
            run.new_day_answers += 1
            if run.new_day is None:
                run.new_day = answer_day
                self.stop.set()  # ask no one new: the rest are planned again for the new day
                log(
                    f"the API's day changed to {answer_day} during the run: answers from "
                    f"now on are stored under {answer_day}; no new requests in this run"
                )
        now = time.monotonic()
        if now - self.last_log >= 10:
            self.last_log = now
            log(
                _progress(
                    run.answered, len(self.todo), now - self.started, self.keeper, self.client
                )
            )


class PeriodicSaver:
    """Calls `save` every `seconds` from its own thread, so answers are stored on time even when
    the next answer is slow to come (a stalled request must not hold received ones hostage),
    and sooner when asked (`soon`: many answers wait)."""

    def __init__(self, save: Callable[[], None], seconds: float):
        self._save, self._seconds = save, seconds
        self._stopped = threading.Event()
        self._due = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="snapshot-saver")
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._due.wait(self._seconds)
            self._due.clear()
            if self._stopped.is_set():
                return
            try:
                self._save()
            except BaseException as exc:  # handed to the fetching thread, which stops
                self._failure = exc
                return

    def soon(self) -> None:
        """Save now rather than at the next tick (a save under way is followed by another)."""
        self._due.set()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        self._stopped.set()
        self._due.set()
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


def _progress(answered: int, total: int, elapsed: float, keeper, client) -> str:
    """One progress line for the run's log (and the CLI, which prints the log)."""
    rate = answered / elapsed if elapsed > 0 else 0.0
    left = f"{(total - answered) / rate:.0f} s" if rate > 0 else "unknown"
    return (
        f"{answered}/{total} users answered ({answered / total:.0%}), {rate:.1f} users/s, "
        f"{keeper.total} requests, quota left {_quota_text(client.quota.remaining)}, "
        f"about {left} to go"
    )


def _quota_text(remaining: int | None) -> str:
    return "unlimited" if remaining is None else str(remaining)
