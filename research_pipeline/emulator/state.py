"""The emulator's state apart from HTTP: its clock, tokens, the per-minute window and daily quota,
seeded fault decisions, and the request counts tests assert on. One lock guards them."""

import math
import random
import threading
import time
from collections import Counter, defaultdict, deque
from datetime import UTC, date, datetime, timedelta

from research_pipeline.emulator import documented
from research_pipeline.emulator.config import EmulatorConfig
from research_pipeline.emulator.population import Population


class EmulatorClock:
    """Real UTC time shifted by an offset, so a demo can take snapshots 'on' past days."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def today(self) -> date:
        return self.now().date()

    def set_date(self, day: date) -> None:
        """Move to noon UTC of `day`: half a day before the quota resets."""
        self.set_time(datetime(day.year, day.month, day.day, 12, tzinfo=UTC))

    def set_time(self, moment: datetime) -> None:
        self._offset = moment - datetime.now(UTC)


class EmulatorState:
    """Tokens, limits and the request counts the tests assert on; one lock guards them."""

    def __init__(self, config: EmulatorConfig):
        self.config = config
        self.clock = EmulatorClock()
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}
        self.window: deque[float] = deque()
        self.quota_day: date | None = None
        self.quota_used = 0
        self.request_count = 0
        self.user_info_seen = 0
        self.burst_left = 0
        self.random = _SeededRandom(config.seed)
        self.reset_stats()

    def reset_stats(self) -> None:
        self.token_requests = Counter()
        self.token_uses = Counter()
        self.drip_cuts = Counter()  # dripped answers the client hung up on: in the head or body
        self.by_username: dict[str, Counter] = defaultdict(Counter)
        self.by_outcome: Counter = Counter()
        self.events: list[tuple[float, str, str]] = []

    def population(self) -> Population:
        c = self.config
        return Population(c.seed, c.private_share, c.banned_share, c.unknown_share)

    def record(self, username: str, outcome: str) -> None:
        with self.lock:
            self.by_username[username][outcome] += 1
            self.by_outcome[outcome] += 1
            if len(self.events) < 500_000:
                self.events.append((time.monotonic(), username, outcome))

    def stats(self, with_events: bool = False) -> dict:
        with self.lock:
            self._roll_quota_day()
            result = {
                "token_requests": dict(self.token_requests),
                "user_info_requests": sum(self.by_outcome.values()),
                "by_outcome": dict(self.by_outcome),
                "drip_cuts": dict(self.drip_cuts),
                "by_username": {u: dict(c) for u, c in self.by_username.items()},
                "quota_used_today": self.quota_used,
                "emulator_date": self.clock.today().isoformat(),
            }
            if with_events:
                result["events"] = list(self.events)
            return result

    def account_kind(self, username: str, population_kind: str) -> str:
        """The account's kind today: its scripted lifecycle's latest entry, else the population's
        kind."""
        today = self.clock.today().isoformat()
        kind = population_kind
        for day, scripted in sorted(self.config.lifecycle.get(username, [])):
            if day <= today:
                kind = scripted
        return kind

    def _roll_quota_day(self) -> None:
        today = self.clock.today()
        if today != self.quota_day:
            self.quota_day, self.quota_used = today, 0

    def count_user_info_request(self) -> None:
        """Count a user-info request; after `midnight_after_requests` of them the clock passes
        00:00 UTC, as it does during a real run that starts late in the day."""
        with self.lock:
            self.user_info_seen += 1
            if self.user_info_seen == self.config.date_jump_after_requests:
                jumped = self.clock.now() + timedelta(seconds=self.config.date_jump_seconds)
                self.clock.set_time(jumped)
            if self.user_info_seen == self.config.midnight_after_requests:
                tomorrow = self.clock.today() + timedelta(days=1)
                self.clock.set_time(
                    datetime(tomorrow.year, tomorrow.month, tomorrow.day, 0, 0, 1, tzinfo=UTC)
                )

    def in_outage(self) -> bool:
        """Whether this request falls in an outage window (and uses up one of its requests)."""
        config = self.config
        with self.lock:
            if config.outage_requests > 0:
                config.outage_requests -= 1
                return True
        if config.outage_until:
            return self.clock.now() < datetime.fromisoformat(config.outage_until)
        return False

    def check_limits(self) -> tuple[str, str, dict | None] | None:
        """Burst, sliding window and daily quota, in that order; None when the request may pass."""
        state, config = self, self.config
        now = time.monotonic()
        with state.lock:
            state.request_count += 1
            if config.burst_429_every and state.request_count % config.burst_429_every == 0:
                state.burst_left = config.burst_429_length
            if state.burst_left > 0:
                state.burst_left -= 1
                retry_after = None
                if config.retry_after_seconds is not None:
                    retry_after = {"Retry-After": f"{config.retry_after_seconds:g}"}
                return ("rate_limit_burst", documented.RATE_LIMIT_MESSAGE, retry_after)
            if config.rate_limit_per_minute is not None:
                while state.window and state.window[0] <= now - 60:
                    state.window.popleft()
                if len(state.window) >= config.rate_limit_per_minute:
                    return ("rate_limit_minute", documented.RATE_LIMIT_MESSAGE, None)
                state.window.append(now)
            state._roll_quota_day()
            now = self.clock.now()
            since_midnight = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
            if since_midnight.total_seconds() < config.quota_reset_lag_seconds:
                if config.quota_answer == "quota_code":  # yesterday's spent quota, still
                    return ("daily_quota_code", documented.DAILY_QUOTA_MESSAGE, None)
                return ("rate_limit_reset_lag", documented.RATE_LIMIT_MESSAGE, None)
            if config.daily_quota is not None and state.quota_used >= config.daily_quota:
                if config.quota_answer == "quota_code":
                    return ("daily_quota_code", documented.DAILY_QUOTA_MESSAGE, None)
                return ("rate_limit_daily", documented.RATE_LIMIT_MESSAGE, None)
            state.quota_used += 1
        return None


class _SeededRandom:
    """Fault decisions from one seeded generator, so a run with the same seed fails alike."""

    def __init__(self, seed: int):
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def chance(self, share: float) -> bool:
        if share <= 0:
            return False
        with self._lock:
            return self._random.random() < share

    def lognormal(self, median: float, p99: float) -> float:
        """A draw with this median and 99th percentile (z of the 99th percentile: 2.326)."""
        sigma = math.log(max(p99, median) / median) / 2.326
        with self._lock:
            return self._random.lognormvariate(math.log(median), sigma)

    def choice(self, options):
        with self._lock:
            return self._random.choice(options)
