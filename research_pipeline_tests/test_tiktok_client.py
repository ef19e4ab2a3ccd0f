"""The Research API client against the emulator over real HTTP on 127.0.0.1."""

import logging
import threading

import pytest

from research_pipeline.emulator import EmulatorConfig, EmulatorServer
from research_pipeline.tiktok import (
    ClientSettings,
    ConfigurationError,
    FatalApiError,
    InvalidUsernameError,
    Outcome,
    QuotaExhaustedError,
    normalize_username,
)
from research_pipeline.tiktok.breaker import TRIP_AFTER
from research_pipeline.tiktok.errors import ApiOutageError, TransientApiError
from research_pipeline.tiktok.limits import DailyQuota, SlidingWindowLimiter
from research_pipeline_tests.helpers import EMULATOR_SECRET, FakeClock, find_usernames


def test_token_is_fetched_once_and_shared_by_all_requests(emulator, make_client):
    client = make_client(concurrency=8)
    results = list(client.iter_user_info(find_usernames(emulator, "active", 40)))
    assert [r.status for r in results] == ["ok"] * 40
    assert emulator.stats()["token_requests"] == {"ok": 1}


def test_a_token_request_that_times_out_once_is_asked_again_not_a_failed_run(emulator, make_client):
    emulator.config.update({"token_stalls": 1, "hang_seconds": 1.0})
    clock = FakeClock()
    client = make_client(timeout_seconds=0.3, client_options={"clock": clock, "sleep": clock.sleep})
    assert client.fetch_user_info(find_usernames(emulator, "active")[0]).status == "ok"
    assert client.tokens.requests_made == 2 and clock.sleeps == [0.5]


def test_an_unreachable_token_endpoint_is_reported_after_three_quick_attempts(make_client):
    clock = FakeClock()
    client = make_client(
        base_url="http://127.0.0.1:9", client_options={"clock": clock, "sleep": clock.sleep}
    )
    with pytest.raises(TransientApiError, match="in 3 attempts: ConnectionError"):
        client.api_now()
    assert client.tokens.requests_made == 3 and clock.sleeps == [0.5, 1.0]


def test_token_is_renewed_shortly_before_it_expires(emulator, make_client):
    clock = FakeClock()
    client = make_client(client_options={"clock": clock, "sleep": clock.sleep})
    client.fetch_user_info("alice")
    clock.now += 7200 - 301  # still valid for more than the 5-minute margin
    client.fetch_user_info("alice")
    assert emulator.stats()["token_requests"] == {"ok": 1}
    clock.now += 2  # inside the margin: renew before the API would reject it
    client.fetch_user_info("alice")
    assert emulator.stats()["token_requests"] == {"ok": 2}


def test_expired_token_is_refreshed_once_by_concurrent_callers(emulator, make_client):
    client = make_client(concurrency=8)
    client.fetch_user_info("alice")
    emulator.state.tokens.clear()  # the server forgets the token: every caller gets a 401
    users = find_usernames(emulator, "active", 30)
    results = list(client.iter_user_info(users))
    assert sorted(r.username for r in results if r.status == "ok") == sorted(users)
    assert emulator.stats()["token_requests"] == {"ok": 2}


def test_only_configured_fields_are_requested_and_kept(emulator, make_client):
    client = make_client(fields=("follower_count", "is_verified"))
    result = client.fetch_user_info("alice")
    assert set(result.fields) == {"follower_count", "is_verified"}
    assert isinstance(result.fields["follower_count"], int)


def test_unknown_field_is_refused_before_any_request(emulator):
    with pytest.raises(ConfigurationError, match="unknown user-info fields"):
        ClientSettings(
            client_key="k",
            client_secret="s",
            base_url=emulator.url,
            fields=("follower_count", "region"),
        )


@pytest.mark.parametrize(
    ("kind", "message_part"),
    [
        ("unknown", "cannot find the user"),
        ("private", "API cannot return this user's information"),
        ("banned", "API cannot return this user's information"),
    ],
)
def test_user_errors_are_recorded_once_and_never_retried(emulator, make_client, kind, message_part):
    [username] = find_usernames(emulator, kind)
    result = make_client().fetch_user_info(username)
    assert result.outcome is Outcome.USER_ERROR
    assert result.status == "invalid_params"
    assert message_part in result.error_message
    assert result.log_id and result.http_status == 400 and result.attempts == 1
    assert sum(emulator.stats()["by_username"][username].values()) == 1


def test_server_errors_are_retried_until_success(emulator, make_client):
    emulator.config.error_rate = 0.5
    client = make_client(max_attempts=20)
    users = find_usernames(emulator, "active", 30)
    results = [client.fetch_user_info(u) for u in users]
    assert all(r.status == "ok" for r in results)
    stats = emulator.stats()
    assert stats["by_outcome"]["internal_error"] > 0
    assert all(stats["by_username"][u]["ok"] == 1 for u in users)
    assert sum(r.attempts for r in results) == stats["user_info_requests"]


def test_retries_are_bounded_and_end_in_a_transient_error_row(emulator, make_client):
    emulator.config.error_rate = 1.0
    result = make_client(max_attempts=3).fetch_user_info("alice")
    assert result.outcome is Outcome.TRANSIENT_ERROR
    assert result.status == "internal_error" and result.attempts == 3
    assert emulator.stats()["user_info_requests"] == 3


def test_retry_after_of_a_429_pauses_every_sender(emulator, make_client):
    emulator.config.burst_429_every = 10**9
    emulator.state.request_count = 10**9 - 1  # the next request opens a burst of two 429s
    emulator.config.burst_429_length = 2
    emulator.config.retry_after_seconds = 2
    clock = FakeClock()
    client = make_client(
        rate_limit_window_seconds=61, client_options={"clock": clock, "sleep": clock.sleep}
    )
    result = client.fetch_user_info("alice")
    assert result.status == "ok" and result.attempts == 1  # a 429 is not the user's attempt
    assert clock.sleeps == [2.0, 2.0]  # exactly Retry-After, no extra backoff on top
    assert emulator.stats()["by_username"]["alice"] == {"rate_limit_burst": 2, "ok": 1}


def test_a_429_that_outlasts_the_minute_is_the_daily_quota_whatever_its_words(
    emulator, make_client
):
    emulator.clock.set_date(emulator.clock.today())  # noon: no reset lag to wait for
    emulator.config.daily_quota = 3  # spent by a colleague: our ledger knows nothing
    clock = FakeClock()
    client = make_client(
        rate_limit_window_seconds=61, client_options={"clock": clock, "sleep": clock.sleep}
    )
    users = find_usernames(emulator, "active", 5)
    for username in users[:3]:
        assert client.fetch_user_info(username).status == "ok"
    with pytest.raises(QuotaExhaustedError, match="past its per-minute window"):
        client.fetch_user_info(users[3])
    after_quota = emulator.stats()["user_info_requests"] - 3
    assert after_quota <= 8  # one probe at a time, backing off across the 61 s window
    assert sum(clock.sleeps) > 61  # judged by persistence, not by wording
    with pytest.raises(QuotaExhaustedError):  # now known locally: no request spent
        client.fetch_user_info(users[4])
    assert emulator.stats()["user_info_requests"] - 3 == after_quota


def test_client_side_quota_counts_requests_and_yields_finished_rows_before_raising(
    emulator, make_client
):
    client = make_client(daily_quota=12, concurrency=4, client_options={"quota_used_today": 2})
    users = find_usernames(emulator, "active", 30)
    received = []
    with pytest.raises(QuotaExhaustedError):
        for result in client.iter_user_info(users):
            received.append(result)
    assert len(received) == 10  # every request paid for produced a row
    assert emulator.stats()["user_info_requests"] == 10
    assert client.quota.remaining == 0


def test_every_request_is_reported_for_the_audit_trail(emulator, make_client):
    emulator.config.error_rate = 0.3
    records = []
    client = make_client(max_attempts=10, client_options={"on_request": records.append})
    for username in find_usernames(emulator, "active", 10) + find_usernames(emulator, "private"):
        client.fetch_user_info(username)
    stats = emulator.stats()
    assert len(records) == stats["user_info_requests"]
    assert (
        sum(r.status == "internal_error" for r in records) == stats["by_outcome"]["internal_error"]
    )
    assert all(r.log_id for r in records)


@pytest.mark.parametrize(
    ("knob", "status"),
    [("malformed_rate", "malformed_response"), ("reset_rate", "connection_error")],
)
def test_garbled_answers_and_resets_are_transient(emulator, make_client, knob, status):
    setattr(emulator.config, knob, 1.0)
    result = make_client(max_attempts=3).fetch_user_info("alice")
    assert result.outcome is Outcome.TRANSIENT_ERROR and result.status == status
    assert result.attempts == 3


def test_read_timeout_is_transient(emulator, make_client):
    emulator.config.hang_rate = 1.0
    emulator.config.hang_seconds = 1.0
    result = make_client(max_attempts=2, timeout_seconds=0.2).fetch_user_info("alice")
    assert result.outcome is Outcome.TRANSIENT_ERROR and result.status == "timeout"


def test_wrong_secret_fails_fast_without_leaking_it(emulator, make_client):
    client = make_client(client_secret="wrong-secret-Qx81")
    with pytest.raises(FatalApiError) as caught:
        list(client.iter_user_info(find_usernames(emulator, "active", 20)))
    assert "TIKTOK_CLIENT_SECRET" in str(caught.value)
    assert "wrong-secret-Qx81" not in str(caught.value)
    stats = emulator.stats()
    assert stats["token_requests"] == {"invalid_client": 1}
    assert stats["user_info_requests"] == 0


def test_missing_research_scope_is_fatal_and_stops_quickly(emulator, make_client):
    emulator.config.scope_authorized = False
    client = make_client(concurrency=4)
    with pytest.raises(FatalApiError, match="scope_not_authorized"):
        list(client.iter_user_info(find_usernames(emulator, "active", 200)))
    assert emulator.stats()["user_info_requests"] <= 4


def test_secret_and_token_never_reach_logs_reprs_or_errors(emulator, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    emulator.config.error_rate = 0.5
    client = make_client(max_attempts=2)
    for username in ["alice", "bob", *find_usernames(emulator, "unknown")]:
        client.fetch_user_info(username)
    token = client.tokens.get()
    texts = [caplog.text, repr(client), repr(client.settings), repr(client.tokens)]
    emulator.config.scope_authorized = False
    with pytest.raises(FatalApiError) as caught:
        client.fetch_user_info("carol")
    texts.append(str(caught.value))
    for text in texts:
        assert EMULATOR_SECRET not in text
        assert token not in text


@pytest.mark.parametrize(
    "url", ["http://example.org", "http://10.0.0.5:8787", "ftp://127.0.0.1", "open.tiktokapis.com"]
)
def test_unsafe_base_urls_are_refused(url):
    with pytest.raises(ConfigurationError):
        ClientSettings(client_key="k", client_secret="s", base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://open.tiktokapis.com",
        "http://127.0.0.1:8787",
        "http://localhost:1",
        "http://[::1]:9",
    ],
)
def test_https_and_loopback_base_urls_are_accepted(url):
    assert ClientSettings(client_key="k", client_secret="s", base_url=url).base_url == url


def test_settings_come_from_the_environment():
    settings = ClientSettings.from_env(
        {
            "TIKTOK_CLIENT_KEY": "key",
            "TIKTOK_CLIENT_SECRET": "secret",
            "TIKTOK_API_BASE_URL": "http://127.0.0.1:8787",
            "TIKTOK_RATE_LIMIT_PER_MINUTE": "off",
            "TIKTOK_DAILY_QUOTA": "250",
        }
    )
    assert settings.base_url == "http://127.0.0.1:8787"
    assert settings.rate_limit_per_minute is None and settings.daily_quota == 250
    assert "secret" not in repr(settings)
    defaults = ClientSettings.from_env({"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s"})
    assert defaults.base_url == "https://open.tiktokapis.com"
    assert (defaults.rate_limit_per_minute, defaults.daily_quota) == (600, 1000)
    with pytest.raises(ConfigurationError, match="TIKTOK_CLIENT_KEY"):
        ClientSettings.from_env({})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("@Alice_01", "alice_01"), ("  bob.smith \n", "bob.smith"), ("ZZ", "zz")],
)
def test_usernames_are_normalised(raw, expected):
    assert normalize_username(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "empty"), ("a", "1 characters"), ("x" * 25, "25 characters"), ("bad name!", "' !'")],
)
def test_invalid_usernames_are_refused_with_the_reason(raw, reason):
    with pytest.raises(InvalidUsernameError, match=reason):
        normalize_username(raw)


def test_sliding_window_never_allows_more_than_600_in_any_minute():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(
        600, window_seconds=60, margin_seconds=1, clock=clock, sleep=clock.sleep
    )
    sent = []
    for _ in range(1800):
        limiter.acquire()
        sent.append(clock.now)
        clock.now += 0.01  # a fast client: 100 requests/second when unthrottled
    for i in range(len(sent) - 600):
        assert sent[i + 600] - sent[i] >= 60
    elapsed = sent[-1] - sent[0]
    assert elapsed < 2 * 61 + 7  # but it does not wait longer than the window requires


def test_daily_quota_resets_at_midnight_utc():
    from datetime import UTC, datetime

    now = [datetime(2026, 11, 24, 23, 59, tzinfo=UTC)]
    quota = DailyQuota(2, used=1, now=lambda: now[0])
    quota.reserve()
    with pytest.raises(QuotaExhaustedError, match="2026-11-25 00:00 UTC"):
        quota.reserve()
    now[0] = datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)
    assert quota.remaining == 2
    quota.reserve()
    assert quota.remaining == 1


def test_a_quota_still_spent_after_midnight_is_waited_for_with_backoff_not_failed(
    emulator, make_client
):
    from datetime import UTC, datetime, timedelta

    tomorrow = emulator.clock.today() + timedelta(days=1)
    emulator.clock.set_time(
        datetime(tomorrow.year, tomorrow.month, tomorrow.day, 0, 0, 1, tzinfo=UTC)
    )
    emulator.config.quota_reset_lag_seconds = 2.5  # the API's reset comes 2.5 s late
    client = make_client(
        rate_limit_window_seconds=0.3, reset_wait_seconds=30, reset_backoff_seconds=0.25
    )
    user = find_usernames(emulator, "active")[0]
    result = client.fetch_user_info(user)
    assert result.status == "ok" and client.rate_limits.waited_for_reset
    refused = emulator.stats()["by_outcome"]["rate_limit_reset_lag"]
    assert 1 <= refused <= 6  # a probe at a time, backing off: no storm
    assert client.quota.remaining is None  # not mistaken for the quota: nothing was given up


def test_an_odd_token_lifetime_falls_back_to_the_documented_two_hours():
    from research_pipeline.tiktok.token import _lifetime

    assert [_lifetime(v) for v in (3, "7200", -5, 0, "soon", None, 10**12)] == [
        3.0, 7200.0, 7200.0, 7200.0, 7200.0, 7200.0, 7200.0,
    ]  # fmt: skip


def test_tokens_that_lapse_early_are_renewed_and_the_day_goes_on(emulator, make_client):
    """A token accepted 20 times, then refused, with 32 requests in flight: a 401 on a token
    that worked (or that another thread already renewed) is a lapse, never "no access"."""
    emulator.config.token_max_uses = 20
    client = make_client(concurrency=32)
    users = find_usernames(emulator, "active", 300)
    results = list(client.iter_user_info(users))
    assert sorted(r.username for r in results if r.status == "ok") == sorted(users)
    assert emulator.stats()["token_requests"]["ok"] >= 300 // 20


def test_a_token_that_never_worked_is_renewed_once_then_no_access_is_said(emulator, make_client):
    emulator.config.token_lifetime_seconds = 0  # every token is dead on arrival
    client = make_client()
    with pytest.raises(FatalApiError, match="refused 2 access tokens in a row"):
        client.fetch_user_info("alice")
    assert emulator.stats()["token_requests"] == {"ok": 2}


def test_headers_dripped_a_byte_at_a_time_end_at_the_whole_answer_deadline(emulator, make_client):
    """A per-read timeout restarts with every byte: only a total deadline ends a drip of the
    status line and headers. The emulator sees the client hang up while still in the head."""
    emulator.config.update({"drip_seconds": 0.05, "drip_headers": True})
    client = make_client(request_deadline_seconds=0.5, timeout_seconds=10, max_attempts=1)
    [user] = find_usernames(emulator, "active")
    result = client.fetch_user_info(user)
    assert result.status == "timeout" and "0.5 s" in result.error_message
    for _ in range(200):  # the server learns of the hang-up at its next write
        cuts = emulator.stats()["drip_cuts"]
        if cuts:
            break
        threading.Event().wait(0.05)
    assert cuts == {"head": 1}  # before: the whole head was read, the body cut


def test_a_connection_never_opened_costs_no_quota_and_is_booked_apart(make_client):
    """Refused connections never reach the API: the quota is not counted down, the ledger
    says not_connected, and the breaker still ends the asking."""
    config = EmulatorConfig(client_secret=EMULATOR_SECRET, rate_limit_per_minute=None)
    records = []
    with EmulatorServer(config) as server:
        client = make_client(server, daily_quota=10, client_options={"on_request": records.append})
        client.api_now()  # the token is held: what follows goes to user info only
    client.http.close()  # its kept-alive connection too: each request now connects anew
    with pytest.raises(ApiOutageError):  # the server is gone: refused connections
        client.fetch_user_info("alice")
    assert {r.status for r in records} == {"not_connected"} and len(records) == TRIP_AFTER
    assert client.quota.remaining == 10  # before: 5, each refused connection counted


def test_every_thread_that_finds_the_quota_gone_says_why_whichever_says_it_first():
    """A Retry-After of a day ends the day; with 32 in flight, another thread reaching the
    quota first used to say only 'used up (13 requests counted today)', the reason lost."""
    from research_pipeline.tiktok.answer import Answer
    from research_pipeline.tiktok.errors import QuotaExhaustedError
    from research_pipeline.tiktok.guards import RateLimits
    from research_pipeline.tiktok.limits import RateLimitTracker
    from research_pipeline.tiktok.session import Exchange

    quota = DailyQuota(1000, used=13)
    guard = RateLimits(RateLimitTracker(), SlidingWindowLimiter(None), quota, 0.0)
    exchange = Exchange("http://127.0.0.1/", {})
    guard.before(exchange)
    answer = Answer("rate_limit_exceeded", http_status=429, retry_after=86400.0)
    with pytest.raises(QuotaExhaustedError, match="Retry-After"):
        guard.after(exchange, answer)
    with pytest.raises(QuotaExhaustedError, match="Retry-After"):
        quota.reserve()  # the next thread's send
