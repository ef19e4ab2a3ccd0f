"""A hostile or broken API (a stub on 127.0.0.1): answers that cannot be sent back, never end,
inflate, echo the secret in another encoding, or ask to be retried at once for ever. Each is
bounded: requests, bytes and seconds, and no secret kept."""

import gzip
import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import pytest

from research_pipeline.errors import FatalApiError, QuotaExhaustedError, TransientApiError
from research_pipeline.tiktok import ClientSettings, Outcome, ResearchApiClient

SECRET = "p+a/s=s&w%rd"
TOKEN_OK = {"access_token": "clt.fine-token", "expires_in": 7200, "token_type": "Bearer"}
USER_OK = {"data": {"follower_count": 1}, "error": {"code": "ok", "message": "", "log_id": "1"}}


class Stub:
    """Each path answered by a function of (handler, body); counts requests per path."""

    def __init__(self, token: Callable, user_info: Callable | None = None):
        self.routes = {"/v2/oauth/token/": token, "/v2/research/user/info/": user_info}
        self.counts = {path: 0 for path in self.routes}


def send_json(handler, status: int, payload: dict, headers: dict | None = None) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def endless(handler, _body) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"a" * 65536
    try:
        for _ in range(100_000):  # bounded: 6.5 GB, far past any cap
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the client gave up, as it should


@contextmanager
def stub_server(stub: Stub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?")[0]
            stub.counts[path] += 1
            stub.routes[path](self, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def client_for(url: str, **overrides) -> ResearchApiClient:
    values = dict(
        client_key="k", client_secret=SECRET, base_url=url, rate_limit_per_minute=None,
        daily_quota=None, backoff_base_seconds=0.001, backoff_max_seconds=0.002,
        rate_limit_window_seconds=0.5, reset_wait_seconds=0, max_attempts=2,
        request_deadline_seconds=5,
    )  # fmt: skip
    values.update(overrides)
    return ResearchApiClient(ClientSettings(**values))


@pytest.mark.parametrize("token", ["clt.abc\r\nX-Evil: 1", "clt.abc\ndef", "clt.äbc"])
def test_a_token_that_cannot_go_in_a_header_fails_once_and_sends_nothing(token):
    stub = Stub(lambda h, _: send_json(h, 200, {**TOKEN_OK, "access_token": token}), None)
    with stub_server(stub) as url, client_for(url) as client:
        with pytest.raises(FatalApiError, match="cannot be sent in an HTTP header"):
            client.fetch_user_info("alice")
    assert stub.counts["/v2/research/user/info/"] == 0


def test_a_token_answer_without_end_is_cut_short_in_seconds():
    stub = Stub(endless)
    with stub_server(stub) as url, client_for(url) as client:
        with pytest.raises(TransientApiError, match="no complete answer"):
            client.api_now()
    assert stub.counts["/v2/oauth/token/"] == 1  # an answer without end is not asked again


def inflating(handler, _body) -> None:
    """1 KB on the wire that inflates to 20 MB: bigger than any user-info answer."""
    payload = gzip.compress(b'{"data": {"bio_description": "' + b"0" * 20_000_000 + b'"}}')
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@pytest.mark.parametrize("answer", [inflating, endless], ids=["gzip_bomb", "endless"])
def test_a_user_info_body_past_a_megabyte_is_a_transient_error_not_read_further(answer):
    stub = Stub(lambda h, _: send_json(h, 200, TOKEN_OK), answer)
    with stub_server(stub) as url, client_for(url) as client:
        result = client.fetch_user_info("alice")
    assert result.outcome is Outcome.TRANSIENT_ERROR and result.status == "malformed_response"
    assert "larger than 1,000,000 bytes" in result.error_message
    assert stub.counts["/v2/research/user/info/"] == 2  # max_attempts, no more


def test_a_secret_echoed_back_in_any_encoding_is_never_kept():
    def echo(handler, body) -> None:
        text = body.decode()  # the form as sent: URL-encoded
        send_json(
            handler,
            400,
            {"error": f"bad {SECRET}", "error_description": f"got {text} / {quote(SECRET)}"},
        )

    stub = Stub(echo)
    with stub_server(stub) as url, client_for(url) as client:
        with pytest.raises(FatalApiError) as refused:
            client.api_now()
    text = str(refused.value)
    assert "<redacted>" in text
    for form in (SECRET, quote(SECRET, safe=""), quote_plus(SECRET)):
        assert form not in text


def test_an_ok_answer_echoing_the_token_keeps_no_copy_of_it():
    def echo_token(handler, _body) -> None:
        bearer = handler.headers["Authorization"].removeprefix("Bearer ")
        data = {"follower_count": 1, "bio_description": f"hi {bearer}"}
        send_json(handler, 200, {"data": data, "error": {"code": "ok", "log_id": bearer}})

    stub = Stub(lambda h, _: send_json(h, 200, TOKEN_OK), echo_token)
    with (
        stub_server(stub) as url,
        client_for(url, fields=("follower_count", "bio_description")) as c,
    ):
        result = c.fetch_user_info("alice")
    assert result.outcome is Outcome.OK
    assert "clt.fine-token" not in json.dumps(result.fields) + result.log_id
    assert result.fields["bio_description"] == "hi <redacted>"


def test_retry_after_zero_for_ever_is_read_as_no_retry_after(emulator, make_client):
    emulator.config.burst_429_every = 1
    emulator.config.burst_429_length = 10_000
    emulator.config.retry_after_seconds = 0
    client = make_client(rate_limit_window_seconds=0.5)
    with pytest.raises(QuotaExhaustedError):
        client.fetch_user_info("user_1")
    # Before: a request every few milliseconds until the window passed (603 in 67 s at the
    # real API's window); now our backoff, then the quota rule.
    assert emulator.stats()["user_info_requests"] <= 6


@pytest.mark.parametrize("value", ["abc", -5, 10**12, 2.5, b"\x00"])
def test_a_quota_count_of_the_wrong_shape_is_not_trusted_and_counting_starts_from_the_ledger(
    tmp_path, value
):
    import sqlite3
    from datetime import date

    from research_pipeline.coordination import Coordination

    day = date(2026, 12, 1)
    coordination = Coordination.beside(tmp_path / "w.duckdb")
    with coordination.day() as shared:
        shared.quota.reserve(day, limit=10, floor=0)  # the file and its tables
    with sqlite3.connect(coordination.path) as conn:
        conn.execute("UPDATE quota SET reserved = ?", [value])
    with coordination.day() as shared:
        assert shared.quota.reserve(day, limit=10, floor=3) == 4  # the ledger's 3, then ours
        assert shared.quota.reserve(day, limit=10, floor=3) == 5
    assert coordination.path.stat().st_mode & 0o777 == 0o600


def test_a_coordination_file_that_is_not_sqlite_is_moved_aside_and_made_anew(tmp_path):
    from datetime import date

    from research_pipeline.coordination import Coordination

    day = date(2026, 12, 1)
    coordination = Coordination.beside(tmp_path / "w.duckdb")
    coordination.path.write_bytes(b"not sqlite at all" * 100)
    with coordination.day() as shared:
        assert shared.claims.claim(day, ["alice"]) == ["alice"]
        assert shared.quota.reserve(day, limit=10, floor=0) == 1
    assert coordination.path.with_name(coordination.path.name + ".rejected").exists()
    fresh = Coordination.beside(tmp_path / "new.duckdb")
    with fresh.day() as shared:
        shared.claims.claim(day, ["bob"])
    assert fresh.path.stat().st_mode & 0o777 == 0o600


def test_a_secret_echoed_by_the_token_endpoint_is_in_no_file_of_a_real_run(pipeline, tmp_path):
    def echo(handler, body) -> None:
        text = body.decode()
        send_json(handler, 400, {"error": SECRET, "error_description": f"got {text}"})

    stub = Stub(echo)
    pipeline.write_cohort("c1", ["someone"])
    with stub_server(stub) as url:
        pipeline.configure(base_url=url, client_secret=SECRET)
        from research_pipeline.orchestration.runs import run_snapshot

        [result] = run_snapshot(
            pipeline.defs, pipeline.instance, pipeline.api.clock.today(), ["c1"], None
        )
    assert not result.success and stub.counts["/v2/oauth/token/"] >= 1
    forms = [f.encode() for f in (SECRET, quote(SECRET, safe=""), quote_plus(SECRET))]
    blobs = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    blobs += [str(e).encode() for e in pipeline.instance.all_logs(result.run_id)]
    leaks = [form for form in forms for blob in blobs if form in blob]
    assert leaks == []


def test_a_redirect_to_another_host_is_never_followed(emulator_free_stub_pair):
    """A 307 to another host: before, followed, and that host's answers stored as ours."""
    theirs, ours = emulator_free_stub_pair
    with client_for(ours, max_attempts=1) as client:
        result = client.fetch_user_info("alice")
    assert result.status == "redirected" and not result.is_final
    assert theirs.counts["/v2/research/user/info/"] == 0  # nothing went there


@pytest.fixture
def emulator_free_stub_pair():
    """Another host that would answer ok, and ours that redirects user info to it."""
    theirs = Stub(token=lambda h, _b: send_json(h, 200, TOKEN_OK),
                  user_info=lambda h, _b: send_json(h, 200, USER_OK))  # fmt: skip
    with stub_server(theirs) as other:

        def redirect(handler, _body):
            handler.send_response(307)
            handler.send_header("Location", other + "/v2/research/user/info/?fields=x")
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        ours = Stub(token=lambda h, _b: send_json(h, 200, TOKEN_OK), user_info=redirect)
        with stub_server(ours) as url:
            yield theirs, url


@pytest.mark.parametrize(
    ("message", "status", "final"),
    [
        # The documented not-found wording about the user asked: final, the account is gone.
        ("`username: alice` is invalid: cannot find the user", "invalid_params", True),
        # The same wording about someone else: an anomaly, never final, never forgets alice.
        ("`username: bob` is invalid: cannot find the user", "not_about_user", False),
        # The one refusal on record names no user: about the user asked.
        ("API cannot return this user's information", "invalid_params", True),
        # About the request, not a user: retried.
        ("Something went wrong. Please try again later.", "request_rejected", False),
    ],
)
def test_a_per_user_answer_must_be_about_the_user_asked(message, status, final):
    error = {"code": "invalid_params", "message": message, "log_id": "L"}
    stub = Stub(
        token=lambda h, _b: send_json(h, 200, TOKEN_OK),
        user_info=lambda h, _b: send_json(h, 400, {"error": error}),
    )
    with stub_server(stub) as url, client_for(url, max_attempts=1) as client:
        result = client.fetch_user_info("alice")
    assert (result.status, result.is_final) == (status, final)
    gone = result.error_kind in ("not_found", "refused", "private", "banned")
    assert gone == final  # only evidence about alice can make alice's data be forgotten


def test_a_token_nested_in_an_extra_field_or_used_as_a_key_is_never_stored():
    """Before: scrubbed only in top-level strings, so a token inside a list, a nested object
    or a key of an extra field was stored in `extra_fields`."""

    def echo_token(handler, _body) -> None:
        bearer = handler.headers["Authorization"].removeprefix("Bearer ")
        extra = {"tags": ["a", bearer], "deep": {"x": {"y": bearer}}, bearer: 1, SECRET: [SECRET]}
        data = {"follower_count": 1, "open_id": extra}
        send_json(handler, 200, {"data": data, "error": {"code": "ok", "log_id": "L"}})

    stub = Stub(lambda h, _: send_json(h, 200, TOKEN_OK), echo_token)
    with stub_server(stub) as url, client_for(url, fields=("follower_count",)) as c:
        result = c.fetch_user_info("alice")
    assert result.outcome is Outcome.OK
    kept = json.dumps(result.extra)
    assert "clt.fine-token" not in kept and SECRET not in kept and quote(SECRET) not in kept
    assert result.extra["open_id"]["deep"] == {"x": {"y": "<redacted>"}}
