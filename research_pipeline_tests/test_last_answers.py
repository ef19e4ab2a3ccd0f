"""The kept last answers (warehouse.answers) change the cost of derivation, never its result.

A random rotated history (members refreshed every few days, errors, accounts gone and back, new
and removed members, two cohorts sharing users) is derived day by day with the kept answers,
and again from the whole history in a fresh warehouse: every derived table must be identical,
also after an old day is written again and after accounts are forgotten."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from research_pipeline import warehouse as wh
from research_pipeline.tiktok.models import Outcome, UserInfoResult
from research_pipeline.warehouse import answers, panel
from research_pipeline.warehouse.forget import forget_gone_accounts

START = date(2026, 1, 1)
DAYS = 24
USERS = [f"user{i}" for i in range(40)]
COHORTS = {"big": USERS[:30], "small": USERS[20:]}  # 10 shared


def _answer(rng: random.Random, username: str, day: int) -> UserInfoResult:
    roll = rng.random()
    now = datetime.now(UTC)
    if roll < 0.08:
        message = f"The user {username} is private"
        return UserInfoResult(username, Outcome.USER_ERROR, "invalid_params", now, message)
    if roll < 0.12:
        message = f"Cannot find the user {username}"
        return UserInfoResult(username, Outcome.USER_ERROR, "invalid_params", now, message)
    if roll < 0.16:  # retries ran out: not final, asked again on a re-run
        return UserInfoResult(username, Outcome.TRANSIENT_ERROR, "internal_error", now)
    base = 1000 + USERS.index(username) * 37
    fields = {
        "follower_count": base + day * rng.randint(0, 9),
        "following_count": 5 + day,
        "likes_count": base * 3 + day,
        "video_count": rng.choice([0, 1, day + 1]),
    }
    return UserInfoResult(username, Outcome.OK, "ok", now, fields=fields)


def _members_on(offset: int, users: list[str]) -> list[str]:
    """The last 5 users join on day 8; the first 3 leave after day 12."""
    return [
        u for u in users
        if not ((u in USERS[-5:] and offset < 8) or (u in USERS[:3] and offset > 12))
    ]  # fmt: skip


def _history(seed: int) -> list[tuple[date, dict[str, list[UserInfoResult]]]]:
    """Per day, the answers per cohort: each member fetched about every 3 days, some members
    joining late (the last 5) and some leaving (the first 3, after day 12)."""
    rng = random.Random(seed)
    days = []
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        asked = {}
        for username in _members_on(offset, USERS):
            if rng.random() < 1 / 3:
                asked[username] = _answer(rng, username, offset)
        per_cohort = {c: [asked[u] for u in users if u in asked] for c, users in COHORTS.items()}
        days.append((day, per_cohort))
    return days


def _write_day(conn, day, per_cohort):
    offset = (day - START).days
    members = {c: _members_on(offset, users) for c, users in COHORTS.items()}
    panel.record_members(conn, day, members, {"big": 3, "small": 2})
    rows = [(day, cohort, answer) for cohort, found in per_cohort.items() for answer in found]
    wh.save_fetched(conn, rows, [])
    asked = {(day, c): [a.username for a in got] for c, got in per_cohort.items()}
    wh.finish_snapshots(conn, asked)


def _derive(conn, keys):
    for table in wh.DERIVED_TABLES:
        wh.derive(conn, table, keys)


def _derive_each_day(conn):
    for offset in range(DAYS):
        _derive(conn, [(START + timedelta(days=offset), c) for c in COHORTS])


def _kept(conn):
    return conn.execute("SELECT * FROM tiktok.last_answers ORDER BY ALL").fetchall()


def _tables(conn):
    """Every derived table, and the kept answers."""
    got = {"last_answers": _kept(conn)}
    for table in wh.DERIVED_TABLES:
        got[table] = conn.execute(f"SELECT * FROM tiktok.{table} ORDER BY ALL").fetchall()  # noqa: S608
    return got


def _from_whole_history(tmp_path, conn, name):
    """The same derived tables computed in a fresh warehouse holding the same answers, every
    partition in one call per table: nothing kept (the kept answers there are those before the
    first day: none), every earlier answer read from the whole history."""
    fresh = tmp_path / f"{name}.duckdb"
    with wh.connect(fresh):
        pass  # the schema
    conn.execute("ATTACH ? AS fresh", [str(fresh)])
    for table in ("user_info", "cohort_members"):
        conn.execute(f"INSERT INTO fresh.tiktok.{table} SELECT * FROM tiktok.{table}")  # noqa: S608
    conn.execute("DETACH fresh")
    with wh.connect(fresh) as other:
        keys = other.execute(
            "SELECT DISTINCT snapshot_date, cohort FROM tiktok.cohort_members ORDER BY ALL"
        ).fetchall()
        _derive(other, keys)
        assert answers.kept_as_of(other) == START
        tables = _tables(other)
        with wh.transactions.transaction(other):  # kept answers folded at once, from scratch
            answers.advance(other, answers.kept_as_of(conn))
        tables["last_answers"] = _kept(other)
        return tables


@pytest.mark.e2e
@pytest.mark.parametrize("seed", [1, 2])
def test_kept_answers_derive_exactly_what_the_whole_history_derives(tmp_path, seed):
    with wh.connect(tmp_path / "w.duckdb") as conn:
        for day, per_cohort in _history(seed):
            _write_day(conn, day, per_cohort)
            _derive(conn, [(day, c) for c in COHORTS])
        assert answers.kept_as_of(conn) == START + timedelta(days=DAYS - 1)
        assert _tables(conn) == _from_whole_history(tmp_path, conn, "daily")

        # The day before the kept date written again (a re-run): those users' kept answers are
        # folded again.
        old = START + timedelta(days=DAYS - 2)
        rng = random.Random(seed + 100)
        again = {
            c: [_answer(rng, u, DAYS - 2) for u in _members_on(DAYS - 2, members)[:8]]
            for c, members in COHORTS.items()
        }
        _write_day(conn, old, again)
        _derive_each_day(conn)  # the last day from kept answers, earlier days from the history
        assert _tables(conn) == _from_whole_history(tmp_path, conn, "rerun")

        # Accounts forgotten (their counts removed): kept answers lose them too.
        assert forget_gone_accounts(conn).rows_redacted > 0
        _derive_each_day(conn)
        assert _tables(conn) == _from_whole_history(tmp_path, conn, "forgotten")


@pytest.mark.e2e
def test_the_planner_and_the_refresh_view_read_the_same_as_the_whole_history(tmp_path):
    with wh.connect(tmp_path / "w.duckdb") as conn:
        for day, per_cohort in _history(7):
            _write_day(conn, day, per_cohort)
            _derive(conn, [(day, c) for c in COHORTS])
        last = START + timedelta(days=DAYS - 1)
        kept = panel.last_final_answers(conn, last)
        view = conn.execute(
            "SELECT username, last_refreshed, last_answer FROM tiktok.last_refreshed ORDER BY 1"
        ).fetchall()
        conn.execute("DELETE FROM tiktok.last_answers_as_of")
        conn.execute("DELETE FROM tiktok.last_answers")
        assert panel.last_final_answers(conn, last) == kept
        assert (
            conn.execute(
                "SELECT username, last_refreshed, last_answer FROM tiktok.last_refreshed ORDER BY 1"
            ).fetchall()
            == view
        )
        assert len(kept) == len(USERS)
