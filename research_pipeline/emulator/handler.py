"""The HTTP side of the emulator: routes, documented bodies and status codes, injected faults.

Endpoints, bodies, status codes and limits are those documented for the token and user-info
endpoints (see research_pipeline.tiktok.constants). Everything extra lives under `/emulator/`:
`GET /emulator/stats`, `POST /emulator/stats/reset`, `POST /emulator/clock` ({"date": ...}) and
`POST /emulator/config` (fault knobs), so a demo or a test in another process can steer it.
"""

import email.utils
import json
import re
import secrets
import socket
import struct
import time
from dataclasses import asdict
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from research_pipeline.emulator import documented
from research_pipeline.emulator.state import EmulatorState

# What a TikTok username can look like (2-24 of letters, digits, '_' and '.'); anything else is
# answered as an account that does not exist.
USERNAME_SHAPE = re.compile(r"^[A-Za-z0-9_.]{2,24}$")


def _log_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


class ResearchApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms ACK stall
    state: EmulatorState  # set on the subclass made per server

    def send_response(self, code, message=None) -> None:
        """No `Server` header (no source shows the real API's): the status line and a Date."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def date_time_string(self, timestamp=None) -> str:
        """The Date header follows the emulator's clock, as a real server's follows its own."""
        return email.utils.format_datetime(self.state.clock.now(), usegmt=True)

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: tests and benchmarks send thousands of requests

    # -- plumbing ------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _api_error(self, status: int, code: str, message: str, headers: dict | None = None):
        payload: dict = {"error": {"code": code, "message": message, "log_id": _log_id()}}
        if code == documented.DAILY_QUOTA_LIMIT_EXCEEDED:
            payload = {"data": {}, **payload}  # as the public GUI recorded it; others: no data
        self._send_json(status, payload, headers)

    def _reset_connection(self) -> None:
        """Drop the TCP connection with RST and no answer, as a flaky proxy does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            pass  # the client went away (timeout) or we reset the connection on purpose

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    # -- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/emulator/stats":
            with_events = parse_qs(url.query).get("events") == ["1"]
            self._send_json(200, self.state.stats(with_events))
        else:
            self._send_json(404, {"error": {"code": "not_found", "message": url.path}})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path == documented.TOKEN_PATH:
            self._token(body)
        elif url.path == documented.USER_INFO_PATH:
            self._user_info(parse_qs(url.query), body)
        elif url.path == "/emulator/stats/reset":
            with self.state.lock:
                self.state.reset_stats()
            self._send_json(200, {"ok": True})
        elif url.path == "/emulator/clock":
            day = date.fromisoformat(json.loads(body)["date"])
            self.state.clock.set_date(day)
            self._send_json(200, {"date": day.isoformat()})
        elif url.path == "/emulator/config":
            try:
                self.state.config.update(json.loads(body))
            except ValueError as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, asdict(self.state.config) | {"client_secret": "<hidden>"})
        else:
            self._api_error(404, "not_found", f"unknown endpoint {url.path}")

    def _token(self, body: bytes) -> None:
        state, config = self.state, self.state.config
        with state.lock:
            stall = config.token_stalls > 0
            config.token_stalls -= stall
        if stall:
            time.sleep(config.hang_seconds)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        # Failures are flat OAuth bodies (not the error object of the other endpoints), with the
        # documented texts; `token_error_status` chooses HTTP 4xx or the 200 a client has seen.
        if not form.get("client_secret"):
            self._token_error(documented.INVALID_REQUEST, documented.MISSING_SECRET_MESSAGE)
            return
        if form.get("grant_type") != "client_credentials" or "client_key" not in form:
            self._token_error(
                documented.INVALID_REQUEST, "Only grant_type client_credentials is supported."
            )
            return
        if (form.get("client_key"), form.get("client_secret")) != (
            config.client_key,
            config.client_secret,
        ):
            self._token_error(documented.INVALID_CLIENT, "")  # no source shows its text
            return
        token = "clt." + secrets.token_urlsafe(32)
        with state.lock:
            state.token_requests["ok"] += 1
            state.tokens[token] = time.monotonic() + config.token_lifetime_seconds
        self._send_json(
            200,
            {
                "access_token": token,
                "expires_in": int(config.token_lifetime_seconds),
                "token_type": "Bearer",
            },
        )

    def _token_error(self, code: str, description: str) -> None:
        with self.state.lock:
            self.state.token_requests[code] += 1
        status = self.state.config.token_error_status
        if code == documented.INVALID_REQUEST and status != 200:
            status = 400
        body = {"error": code, "error_description": description, "log_id": _log_id()}
        self._send_json(status, body)

    def _user_info(self, query: dict, body: bytes) -> None:
        """One user-info request, as the real API's stages answer it: the network's faults,
        a refusal before any work (token, scope, limits: not counted), the faults of a counted
        request (outages, 5xx, garbled bodies), then the account's answer."""
        try:
            username = str(json.loads(body or b"{}").get("username") or "")
        except (ValueError, AttributeError):
            username = ""
        label = username or "<missing>"
        self.state.count_user_info_request()
        self._delay()
        for answered in (self._network_fault, self._refusal, self._counted_fault):
            if answered(label, username):
                return
        self._account_answer(label, username, query)

    def _delay(self) -> None:
        config = self.state.config
        if config.latency_seconds:
            time.sleep(config.latency_seconds)
        if config.latency_median_seconds > 0:
            time.sleep(
                self.state.random.lognormal(
                    config.latency_median_seconds, config.latency_p99_seconds
                )
            )

    def _network_fault(self, label: str, username: str) -> bool:
        """A reset without an answer (True), or a hang before answering (False: it goes on)."""
        state, config = self.state, self.state.config
        if state.random.chance(config.reset_rate):
            state.record(label, "connection_reset")
            self._reset_connection()
            return True
        if state.random.chance(config.hang_rate):
            state.record(label, "hang")
            time.sleep(config.hang_seconds)
        return False

    def _refusal(self, label: str, username: str) -> bool:
        """Refused before any work: an invalid token, no research scope, a limit (a 429)."""
        state, config = self.state, self.state.config
        if not self._token_valid():
            state.record(label, documented.ACCESS_TOKEN_INVALID)
            self._api_error(
                401, documented.ACCESS_TOKEN_INVALID, documented.ACCESS_TOKEN_INVALID_MESSAGE
            )
            return True
        if not config.scope_authorized:
            state.record(label, documented.SCOPE_NOT_AUTHORIZED)
            self._api_error(
                401, documented.SCOPE_NOT_AUTHORIZED, documented.SCOPE_NOT_AUTHORIZED_MESSAGE
            )
            return True
        limited = state.check_limits()
        if limited:
            state.record(label, limited[0])
            code = documented.RATE_LIMIT_EXCEEDED
            if limited[0] == "daily_quota_code":
                code = documented.DAILY_QUOTA_LIMIT_EXCEEDED
            self._api_error(429, code, limited[1], limited[2])
            return True
        return False

    def _counted_fault(self, label: str, username: str) -> bool:
        """From here on the request counts against the daily quota, failed or not."""
        state, config = self.state, self.state.config
        if state.in_outage() or username.lower() in config.failing_usernames:
            state.record(label, "outage")
            self._api_error(500, documented.INTERNAL_ERROR, "")
            return True
        if state.random.chance(config.timeout_504_rate):
            state.record(label, "timeout_504")
            time.sleep(config.timeout_504_seconds)
            self._api_error(504, "timeout", "")
            return True
        if state.random.chance(config.error_rate):
            state.record(label, documented.INTERNAL_ERROR)
            self._api_error(500, documented.INTERNAL_ERROR, "")
            return True
        if state.random.chance(config.request_error_rate):
            state.record(label, "invalid_params:request")
            self._api_error(400, documented.INVALID_PARAMS, documented.REQUEST_ERROR_MESSAGE)
            return True
        if state.random.chance(config.malformed_rate):
            self._malformed(label)
            return True
        return False

    def _account_answer(self, label: str, username: str, query: dict) -> None:
        """The fields asked, or the account's per-user error."""
        state, config = self.state, self.state.config
        # The docs write the list with spaces after commas in places: accept both.
        requested = [f.strip() for f in (query.get("fields") or [""])[0].split(",") if f.strip()]
        unknown = [f for f in requested if f not in documented.USER_INFO_FIELDS]
        if not requested or unknown or not username:
            state.record(label, documented.INVALID_PARAMS)
            self._api_error(400, documented.INVALID_PARAMS, "")  # no source shows its text
            return
        population = state.population()
        account = population.account(username.lower())
        kind = state.account_kind(username.lower(), account.kind)
        if not USERNAME_SHAPE.match(username):
            kind = "unknown"  # too long or characters no TikTok username has: not found
        # Not found: the documented wording, naming the user. Private and banned accounts: the
        # one refusal recorded from the real API (a public client's notebook output) names no
        # user and gives no reason; no public source shows an "is private"/"is banned" text.
        message = {
            "unknown": documented.NOT_FOUND_MESSAGE.format(username=username),
            "private": documented.REFUSED_MESSAGE,
            "banned": documented.REFUSED_MESSAGE,
        }.get(kind)
        if message:
            state.record(label, f"{documented.INVALID_PARAMS}:{kind}")
            self._api_error(400, documented.INVALID_PARAMS, message)
            return
        info = population.user_info(account, state.clock.today())
        info.update(config.odd_values.get(username.lower(), {}))
        if state.random.chance(config.short_body_rate):
            state.record(label, "short_body")
            self._short_body(info)
            return
        state.record(label, documented.OK)
        answer = {
            "data": {name: info[name] for name in requested},
            "error": {"code": documented.OK, "message": "", "log_id": _log_id()},
        }
        if config.drip_seconds:
            self._drip(label, json.dumps(answer).encode(), config.drip_seconds)
            return
        self._send_json(200, answer)

    def _short_body(self, info: dict) -> None:
        """Half an answer, then the connection closes (shorter than its Content-Length)."""
        body = json.dumps({"data": info, "error": {"code": "ok", "message": ""}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def _token_valid(self) -> bool:
        """The bearer token was issued, has not expired, and (`token_max_uses`) has not lapsed
        early after that many accepted requests."""
        state, config = self.state, self.state.config
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        with state.lock:
            expires = state.tokens.get(token)
            if expires is not None and config.token_max_uses is not None:
                state.token_uses[token] += 1
                if state.token_uses[token] > config.token_max_uses:
                    return False
        return expires is not None and expires > time.monotonic()

    def _drip(self, label: str, body: bytes, seconds: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        head = 0
        if self.state.config.drip_headers:  # the head goes out byte by byte as well
            self._headers_buffer.append(b"\r\n")
            head = sum(map(len, self._headers_buffer))
            body = b"".join(self._headers_buffer) + body
            self._headers_buffer = []
        else:
            self.end_headers()
        i = 0
        try:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(seconds)
        except OSError:  # the client gave up: as it should; where it was, for the tests
            with self.state.lock:
                self.state.drip_cuts["head" if i < head else "body"] += 1

    def _malformed(self, label: str) -> None:
        kind = self.state.random.choice(["bad_json", "no_error_object", "html_504"])
        self.state.record(label, f"malformed:{kind}")
        if kind == "bad_json":
            self._send(200, b'{"data": {"display_name": "trunc')
        elif kind == "no_error_object":
            self._send_json(200, {"data": {}})
        else:
            self._send(504, b"<html><body><h1>504 Gateway Time-out</h1></body></html>", "text/html")
