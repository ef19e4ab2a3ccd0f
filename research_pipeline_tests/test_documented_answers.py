"""Documented and recorded answers of the real API (fixtures/documented_answers.json), replayed by
a tiny server on 127.0.0.1 to our client: it must read each as the docs mean it, not as our
emulator happens to write it."""

import json
import threading
from collections import defaultdict
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from research_pipeline.errors import FatalApiError
from research_pipeline.tiktok import ClientSettings, Outcome, ResearchApiClient
from research_pipeline.tiktok.settings import ENVIRONMENT

ANSWERS = json.loads((Path(__file__).parent / "fixtures" / "documented_answers.json").read_text())


class Replay:
    """Answers each user-info request for `username` with the next scripted answer (the last one
    repeats), and the token endpoint with one scripted answer."""

    def __init__(
        self,
        token: str = "ok",
        script: dict[str, list[str]] | None = None,
        redirect_token_to: str = "",
        echo: bool = False,
    ):
        self.token = token
        self.redirect_token_to = redirect_token_to
        self.echo = echo  # user-info answers a 400 page quoting the request it got
        self.script = script or {}
        self.requests: dict[str, int] = defaultdict(int)
        self.token_requests = 0
        self.bodies: list[str] = []

    def answer_for(self, path: str, body: bytes, headers=None) -> dict:
        self.bodies.append(body.decode("utf-8", "replace"))
        if path.startswith("/v2/oauth/token/"):
            self.token_requests += 1
            if self.redirect_token_to:
                return {"status": 307, "headers": {"Location": self.redirect_token_to}, "text": ""}
            return ANSWERS["token"][self.token]
        if self.echo:
            quoted = f"bad request {path} {dict(headers or {})} {body.decode()}"
            return {"status": 400, "body": {"error": {"code": "invalid_params", "message": quoted}}}
        username = json.loads(body)["username"]
        names = self.script[username]
        answer = ANSWERS["user_info"][names[min(self.requests[username], len(names) - 1)]]
        self.requests[username] += 1
        return json.loads(json.dumps(answer).replace("{username}", username))


@contextmanager
def replay_server(replay: Replay):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = replay.answer_for(self.path, body, self.headers)
            payload = answer["text"] if "text" in answer else json.dumps(answer["body"])
            data = payload.encode()
            self.send_response(answer["status"])
            for name, value in answer.get("headers", {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", answer.get("content_type", "application/json"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def client_for(url: str, on_request=None, **overrides) -> ResearchApiClient:
    values = dict(
        client_key="k", client_secret="s3cr3t-value", base_url=url, rate_limit_per_minute=None,
        daily_quota=None, backoff_base_seconds=0.001, backoff_max_seconds=0.002,
        rate_limit_window_seconds=0.2, reset_wait_seconds=0, max_attempts=3,
    )  # fmt: skip
    values.update(overrides)
    return ResearchApiClient(ClientSettings(**values), on_request=on_request)


def test_documented_user_info_answers_are_read_as_the_docs_mean_them():
    script = {
        "okay": ["ok"],
        "extra": ["ok_with_extra_fields"],
        "gone": ["not_found"],
        "hidden": ["private"],
        "aslash": ["msg_not_message"],
    }
    replay = Replay(script=script)
    with replay_server(replay) as url, client_for(url) as client:
        results = {name: client.fetch_user_info(name) for name in script if name != "extra"}
        with client_for(url, fields=("display_name", "follower_count")) as fewer:
            results["extra"] = fewer.fetch_user_info("extra")
    assert results["okay"].outcome is Outcome.OK
    assert results["okay"].fields["likes_count"] == 2_000_000_000_000  # beyond 32 bits
    assert results["okay"].fields["bio_url"] == "https://example.com/me"
    assert results["extra"].extra == {"is_private": False, "open_id": ANSWERS["user_info"][
        "ok_with_extra_fields"]["body"]["data"]["open_id"]}  # fmt: skip
    assert (results["gone"].outcome, results["gone"].error_kind) == (
        Outcome.USER_ERROR,
        "not_found",
    )
    assert (results["hidden"].outcome, results["hidden"].error_kind) == (
        Outcome.USER_ERROR,
        "refused",  # names no reason: not necessarily private
    )
    assert results["aslash"].error_kind == "not_found"  # `msg` read like `message`
    assert all(replay.requests[name] == 1 for name in script)  # per-user answers: never retried


@pytest.mark.parametrize(
    "transient",
    [
        "internal_error_empty",
        "something_went_wrong",
        "error_code_in_200",
        "html_504",
        "no_error_object",
    ],
)
def test_answers_about_the_request_are_retried_then_succeed(transient):
    replay = Replay(script={"someone": [transient, "ok"]})
    with replay_server(replay) as url, client_for(url) as client:
        result = client.fetch_user_info("someone")
    assert result.outcome is Outcome.OK and result.attempts == 2 and replay.requests["someone"] == 2


def test_a_request_level_400_is_bounded_and_never_a_final_user_row():
    replay = Replay(script={"someone": ["something_went_wrong"]})
    with replay_server(replay) as url, client_for(url, max_attempts=3) as client:
        result = client.fetch_user_info("someone")
    assert result.outcome is Outcome.TRANSIENT_ERROR and not result.is_final
    assert result.status == "request_rejected" and replay.requests["someone"] == 3


def test_request_level_rejections_of_everyone_stop_the_run_instead_of_spending_the_quota():
    users = [f"user{i}" for i in range(60)]
    replay = Replay(script={u: ["something_went_wrong"] for u in users})
    with replay_server(replay) as url, client_for(url, concurrency=4, max_attempts=5) as client:
        with pytest.raises(FatalApiError, match="rejected .* requests in a row"):
            list(client.iter_user_info(users))
    assert sum(replay.requests.values()) <= 8 + 4  # the threshold plus the requests in flight


@pytest.mark.parametrize(
    "answer", ["invalid_client_401", "invalid_client_in_200", "missing_secret"]
)
def test_token_refusals_in_a_4xx_or_inside_a_200_are_fatal_and_asked_once(answer):
    replay = Replay(token=answer, script={"someone": ["ok"]})
    with replay_server(replay) as url, client_for(url) as client:
        for _ in range(2):
            with pytest.raises(FatalApiError, match="refused the client credentials"):
                client.fetch_user_info("someone")
    assert replay.token_requests == 1 and replay.requests["someone"] == 0


def test_the_documented_429_text_alone_never_decides_it_is_the_quota():
    replay = Replay(script={"someone": ["rate_limited", "rate_limited", "ok"]})
    with replay_server(replay) as url, client_for(url, rate_limit_window_seconds=30) as client:
        result = client.fetch_user_info("someone")
    assert result.outcome is Outcome.OK and replay.requests["someone"] == 3  # the minute limit


def test_every_client_setting_has_an_environment_variable():
    assert set(ENVIRONMENT) == set(ClientSettings.__dataclass_fields__)


def test_the_secret_never_follows_a_redirect_from_the_token_endpoint():
    elsewhere = Replay(script={"someone": ["ok"]})
    with replay_server(elsewhere) as other:
        replay = Replay(script={"someone": ["ok"]}, redirect_token_to=other + "/v2/oauth/token/")
        with replay_server(replay) as url, client_for(url) as client:
            with pytest.raises(FatalApiError, match="redirect"):
                client.fetch_user_info("someone")
    assert elsewhere.token_requests == 0 and elsewhere.bodies == []  # nothing went there
    assert replay.requests["someone"] == 0


def test_an_error_page_echoing_the_request_keeps_no_token_or_secret():
    from research_pipeline.tiktok.models import RequestRecord

    records: list[RequestRecord] = []
    replay = Replay(script={"someone": ["ok"]}, echo=True)
    with replay_server(replay) as url:
        settings = dict(max_attempts=2)
        with client_for(url, on_request=records.append, **settings) as client:
            result = client.fetch_user_info("someone")
    token = ANSWERS["token"]["ok"]["body"]["access_token"]
    stored = [result.error_message] + [r.message for r in records]
    assert any("<redacted>" in text for text in stored)
    assert not any(token in text or "s3cr3t-value" in text for text in stored)
