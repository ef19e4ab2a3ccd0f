"""An offline TikTok Research API: a real HTTP server on loopback, following the public docs.

`config.py` holds its knobs, `state.py` its clock, limits and counts, `handler.py` the HTTP
routes; this module starts and stops the server.
"""

import threading
from http.server import ThreadingHTTPServer

from research_pipeline.emulator.config import EmulatorConfig
from research_pipeline.emulator.handler import ResearchApiHandler
from research_pipeline.emulator.state import EmulatorClock, EmulatorState


class _Server(ThreadingHTTPServer):
    # Class attributes: the constructor binds and listens, so a backlog set on the instance
    # afterwards never took effect (it was Python's default of 5). A client opening its
    # connections at once (32 in flight) then met resets under load, which TikTok's front
    # doors do not give.
    daemon_threads = True
    request_queue_size = 256


class EmulatorServer:
    """The emulator on 127.0.0.1: `with EmulatorServer(EmulatorConfig(...)) as api: api.url`."""

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ):
        self.state = EmulatorState(config or EmulatorConfig())
        handler = type("Handler", (ResearchApiHandler,), {"state": self.state})
        self._server = _Server((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    @property
    def clock(self) -> EmulatorClock:
        return self.state.clock

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stats(self, with_events: bool = False) -> dict:
        return self.state.stats(with_events)

    def start(self) -> "EmulatorServer":
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="research-api-emulator"
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
