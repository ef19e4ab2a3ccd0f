"""Shared fixtures: the emulator as a real HTTP server on 127.0.0.1, and clients pointed at it."""

import pytest

from research_pipeline.emulator import EmulatorConfig, EmulatorServer
from research_pipeline.tiktok import ClientSettings, ResearchApiClient

EMULATOR_KEY = "emulator-key"
EMULATOR_SECRET = "test-secret-Zq9vX2"


class FakeClock:
    """Monotonic time that only moves when code sleeps: tests of waiting never wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


@pytest.fixture
def emulator():
    config = EmulatorConfig(
        client_secret=EMULATOR_SECRET, rate_limit_per_minute=None, daily_quota=None
    )
    with EmulatorServer(config) as server:
        yield server


def client_settings(server: EmulatorServer, **overrides) -> ClientSettings:
    values = dict(
        client_key=EMULATOR_KEY,
        client_secret=EMULATOR_SECRET,
        base_url=server.url,
        rate_limit_per_minute=None,
        daily_quota=None,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
        timeout_seconds=5.0,
    )
    values.update(overrides)
    return ClientSettings(**values)


@pytest.fixture
def make_client(emulator):
    """Build clients on the emulator; they are closed after the test."""
    made = []

    def make(server: EmulatorServer | None = None, client_options: dict | None = None, **overrides):
        client = ResearchApiClient(
            client_settings(server or emulator, **overrides), **(client_options or {})
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def find_usernames(server: EmulatorServer, kind: str, count: int = 1) -> list[str]:
    """Usernames the emulator's population treats as `kind` (active, private, banned, unknown)."""
    population = server.state.population()
    found = [f"user_{i}" for i in range(10_000) if population.account(f"user_{i}").kind == kind]
    return found[:count]
