"""The emulator answers as the public docs describe, whoever the client is (plain requests here)."""

import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests

from research_pipeline.emulator import EmulatorConfig, EmulatorServer, Population
from research_pipeline.emulator.population import EPOCH
from research_pipeline_tests.helpers import EMULATOR_KEY, EMULATOR_SECRET, find_usernames

FIELDS = "display_name,follower_count,likes_count"


def token(server: EmulatorServer) -> str:
    answer = requests.post(
        server.url + "/v2/oauth/token/",
        data={
            "client_key": EMULATOR_KEY,
            "client_secret": EMULATOR_SECRET,
            "grant_type": "client_credentials",
        },
        timeout=5,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 7200
    assert body["access_token"].startswith("clt.")
    return body["access_token"]


def user_info(server: EmulatorServer, username: str, fields: str = FIELDS, bearer=None):
    return requests.post(
        server.url + "/v2/research/user/info/",
        params={"fields": fields},
        json={"username": username},
        headers={"Authorization": f"Bearer {bearer or token(server)}"},
        timeout=5,
    )


def test_wrong_credentials_get_a_flat_oauth_error(emulator):
    answer = requests.post(
        emulator.url + "/v2/oauth/token/",
        data={
            "client_key": EMULATOR_KEY,
            "client_secret": "nope",
            "grant_type": "client_credentials",
        },
        timeout=5,
    )
    body = answer.json()
    assert body["error"] == "invalid_client" and body["log_id"] and "error_description" in body
    missing_grant = requests.post(emulator.url + "/v2/oauth/token/", data={"client_key": "k"})
    assert missing_grant.status_code == 400 and missing_grant.json()["error"] == "invalid_request"


def test_user_info_returns_only_the_requested_fields(emulator):
    [username] = find_usernames(emulator, "active")
    answer = user_info(emulator, username)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body["data"]) == {"display_name", "follower_count", "likes_count"}
    assert body["error"]["code"] == "ok" and body["error"]["log_id"]


def test_unknown_fields_and_missing_tokens_are_rejected(emulator):
    bad_field = user_info(emulator, "alice", fields="follower_count,region")
    assert bad_field.status_code == 400
    assert bad_field.json()["error"]["code"] == "invalid_params"
    no_token = user_info(emulator, "alice", bearer="clt.not-a-token")
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "access_token_invalid"


def test_not_found_names_the_user_and_a_refusal_names_no_user_and_no_reason(emulator):
    """As recorded from the real API: the documented not-found text names the user; the one
    refusal on record (private, banned or anything else) is a bare sentence."""
    bearer = token(emulator)
    [unknown] = find_usernames(emulator, "unknown")
    error = user_info(emulator, unknown, bearer=bearer).json()["error"]
    assert error["code"] == "invalid_params"
    assert error["message"] == f"`username: {unknown}` is invalid: cannot find the user"
    for kind in ("private", "banned"):
        [username] = find_usernames(emulator, kind)
        answer = user_info(emulator, username, bearer=bearer)
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "invalid_params"
        assert error["message"] == "API cannot return this user's information"


def test_population_is_deterministic_heavy_tailed_and_moves_with_the_date():
    population = Population(seed=7)
    accounts = [population.account(f"user_{i}") for i in range(3000)]
    active = [a for a in accounts if a.kind == "active"]
    assert 0.85 < len(active) / len(accounts) < 0.97
    day = EPOCH.replace(year=2026)
    followers = sorted(population.user_info(a, day)["follower_count"] for a in active)
    assert followers[-1] > 100 * followers[len(followers) // 2]  # heavy tail
    assert any(a.is_verified for a in active)
    assert any(not a.display_name.isascii() for a in active)
    again = Population(seed=7)
    assert again.user_info(again.account("user_1"), day) == population.user_info(accounts[1], day)
    next_day = day.replace(day=2)
    changed = [
        a for a in active[:200] if population.user_info(a, day) != population.user_info(a, next_day)
    ]
    assert len(changed) > 150
    other_seed = Population(seed=8).account("user_1")
    assert other_seed != accounts[1]


def test_minute_window_answers_429_rate_limit_exceeded():
    with EmulatorServer(
        EmulatorConfig(client_secret=EMULATOR_SECRET, rate_limit_per_minute=3, daily_quota=None)
    ) as server:
        bearer = token(server)
        codes = [user_info(server, "alice", bearer=bearer).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        answer = user_info(server, "alice", bearer=bearer)
        assert answer.json()["error"]["code"] == "rate_limit_exceeded"
        assert answer.json()["error"]["message"] == GENERIC_429


def test_daily_quota_counts_failures_and_resets_at_midnight_utc():
    config = EmulatorConfig(
        client_secret=EMULATOR_SECRET, rate_limit_per_minute=None, daily_quota=3, error_rate=1.0
    )
    with EmulatorServer(config) as server:
        bearer = token(server)
        assert [user_info(server, "alice", bearer=bearer).status_code for _ in range(3)] == [
            500
        ] * 3
        refused = user_info(server, "alice", bearer=bearer)
        assert refused.status_code == 429
        assert refused.json()["error"]["message"] == GENERIC_429  # the same text as the minute
        server.clock.set_date(server.clock.today().replace(year=server.clock.today().year + 1))
        assert user_info(server, "alice", bearer=bearer).status_code == 500
        assert server.stats()["quota_used_today"] == 1


def test_stats_clock_and_config_are_reachable_over_http(emulator):
    user_info(emulator, "alice")
    stats = requests.get(emulator.url + "/emulator/stats", timeout=5).json()
    assert stats["by_username"]["alice"]["ok"] == 1 and stats["token_requests"]["ok"] == 1
    moved = requests.post(emulator.url + "/emulator/clock", json={"date": "2026-01-02"}, timeout=5)
    assert (
        moved.json() == {"date": "2026-01-02"}
        and emulator.clock.today().isoformat() == "2026-01-02"
    )
    changed = requests.post(emulator.url + "/emulator/config", json={"error_rate": 1.0}, timeout=5)
    assert changed.status_code == 200 and changed.json()["client_secret"] == "<hidden>"
    assert user_info(emulator, "alice").status_code == 500
    refused = requests.post(emulator.url + "/emulator/config", json={"latency_ms": 5}, timeout=5)
    assert refused.status_code == 400  # the field is latency_seconds: the answer says so
    assert "latency_ms" in refused.json()["error"] and "latency_seconds" in refused.json()["error"]
    naive = requests.post(
        emulator.url + "/emulator/config", json={"outage_until": "2026-01-02T12:00"}, timeout=5
    )
    assert naive.json()["outage_until"] == "2026-01-02T12:00:00+00:00"  # UTC, as its clock


def test_the_emulator_command_serves_on_the_port_it_is_given():
    import subprocess
    import sys
    import time

    from research_pipeline_tests.services import free_port, spawn, stop

    port = free_port()
    process = spawn(
        [
            sys.executable,
            "-m",
            "research_pipeline.cli",
            "emulator",
            "--port",
            str(port),
            "--date",
            "2026-01-02",
            "--daily-quota",
            "off",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert f"127.0.0.1:{port}" in process.stdout.readline()  # printed once it listens
        deadline = time.monotonic() + 30
        while True:
            try:
                stats = requests.get(f"http://127.0.0.1:{port}/emulator/stats", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
        assert stats["emulator_date"] == "2026-01-02" and stats["user_info_requests"] == 0
    finally:
        stop(process)


GENERIC_429 = "The API rate limit was exceeded. Please try again later."


def test_token_errors_are_flat_oauth_bodies_with_the_documented_texts(emulator):
    url = emulator.url + "/v2/oauth/token/"
    missing = requests.post(
        url, data={"client_key": EMULATOR_KEY, "grant_type": "client_credentials"}
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    assert missing.json()["error_description"] == "Client secret is missed in request."
    emulator.config.token_error_status = 200  # as one public client saw it
    wrong = requests.post(
        url,
        data={"client_key": EMULATOR_KEY, "client_secret": "x", "grant_type": "client_credentials"},
    )
    assert wrong.status_code == 200 and wrong.json()["error"] == "invalid_client"
    assert "access_token" not in wrong.json()


def test_every_documented_field_bio_url_included_and_spaces_after_commas(emulator):
    spaced = ", ".join(FIELDS.split(",") + ["bio_url"])
    answer = user_info(emulator, find_usernames(emulator, "active")[0], fields=spaced)
    assert answer.status_code == 200
    assert set(answer.json()["data"]) == set(FIELDS.split(",")) | {"bio_url"}


def test_impossible_usernames_are_answered_as_accounts_that_do_not_exist(emulator):
    for name in ("a" * 40, "bad name!", "émile"):
        answer = user_info(emulator, name)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalid_params"
        assert "cannot find the user" in answer.json()["error"]["message"]


def test_scripted_lifecycle_turns_an_account_private_deleted_and_back(emulator):
    user = find_usernames(emulator, "active")[0]
    day = emulator.clock.today()
    emulator.config.lifecycle = {
        user: [
            [(day + timedelta(days=1)).isoformat(), "private"],
            [(day + timedelta(days=2)).isoformat(), "unknown"],
            [(day + timedelta(days=3)).isoformat(), "active"],
        ]
    }
    seen = []
    for offset in range(4):
        emulator.clock.set_date(day + timedelta(days=offset))
        answer = user_info(emulator, user).json()["error"]["message"]
        seen.append(answer)
    assert seen[0] == "" and seen[1] == "API cannot return this user's information"
    assert "cannot find the user" in seen[2] and seen[3] == ""


def test_the_quota_can_stay_spent_for_a_while_after_midnight(emulator):
    emulator.config.quota_reset_lag_seconds = 3600
    tomorrow = emulator.clock.today() + timedelta(days=1)
    emulator.clock.set_time(
        datetime(tomorrow.year, tomorrow.month, tomorrow.day, 0, 30, tzinfo=UTC)
    )
    assert user_info(emulator, "alice").status_code == 429
    emulator.clock.set_time(datetime(tomorrow.year, tomorrow.month, tomorrow.day, 1, 1, tzinfo=UTC))
    assert user_info(emulator, "alice").status_code == 200


def test_the_real_apis_pace_lognormal_latency_and_a_late_json_504_that_counts():
    from research_pipeline.emulator.state import EmulatorState

    seeded = EmulatorState(EmulatorConfig(seed=3)).random
    draws = sorted(seeded.lognormal(0.3, 5.0) for _ in range(20_000))
    assert 0.27 < draws[len(draws) // 2] < 0.33  # the median asked for
    assert 4.0 < draws[int(len(draws) * 0.99)] < 6.0  # and its 99th percentile
    config = EmulatorConfig(
        client_secret=EMULATOR_SECRET,
        rate_limit_per_minute=None,
        daily_quota=2,
        timeout_504_rate=1.0,
        timeout_504_seconds=0.0,
    )
    with EmulatorServer(config) as server:
        bearer = token(server)
        answer = user_info(server, "alice", bearer=bearer)
        assert answer.status_code == 504
        assert answer.json()["error"]["code"] == "timeout"
        user_info(server, "alice", bearer=bearer)
        assert user_info(server, "alice", bearer=bearer).status_code == 429  # both counted


def test_many_connections_opened_at_once_all_get_through_before_any_is_accepted():
    # A client ramping to 32 in flight opens its connections together; the server's listen
    # backlog (Python's default is 5) must hold them until its loop accepts them. The kernel
    # completes a connection with room in the backlog at once; one beyond it waits for a
    # retransmitted SYN a second later, past this timeout.
    server = EmulatorServer()  # bound and listening, its loop not started: nothing accepted
    sockets = []
    try:
        host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
        for _ in range(64):
            sockets.append(socket.create_connection((host, port), timeout=0.5))
    finally:
        for s in sockets:
            s.close()
        server._server.server_close()  # never served: shutdown() would wait for its loop
    assert len(sockets) == 64


def test_the_emulator_invents_no_header_no_body_and_borrows_no_wording(emulator):
    """No Server header, no `data` beside an error the sources show without one, no
    Retry-After unless a test asks for it, and its codes and texts from its own table: a
    wording shared with the client could never show that the client depends on it."""
    import ast
    from pathlib import Path

    import research_pipeline.emulator as package

    token = requests.post(
        emulator.url + "/v2/oauth/token/",
        data={"client_key": EMULATOR_KEY, "client_secret": EMULATOR_SECRET,
              "grant_type": "client_credentials"},
        timeout=10,
    )  # fmt: skip
    assert "Server" not in token.headers
    emulator.config.update({"burst_429_every": 1, "burst_429_length": 1})
    answer = requests.post(
        emulator.url + "/v2/research/user/info/?fields=follower_count",
        json={"username": "alice"},
        headers={"Authorization": "Bearer " + token.json()["access_token"]},
        timeout=10,
    )
    assert answer.status_code == 429 and "Retry-After" not in answer.headers
    assert "data" not in answer.json() and "Server" not in answer.headers
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("research_pipeline.tiktok"), path


def test_a_daily_quota_of_zero_is_refused_not_read_as_no_quota():
    from click.testing import CliRunner

    from research_pipeline.cli.emulator_cmd import emulator as command

    result = CliRunner().invoke(command, ["--daily-quota", "0"])
    assert result.exit_code == 2 and "say 'off' for no limit" in result.output
