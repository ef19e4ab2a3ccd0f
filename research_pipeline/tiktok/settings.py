"""Client settings, read from the environment, checked before any secret leaves the process."""

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from research_pipeline.tiktok import constants
from research_pipeline.tiktok.errors import ConfigurationError


def check_base_url(base_url: str, allow_any_host: bool = False) -> str:
    """Plain http only on loopback (the emulator), so a secret never crosses a network in clear
    text; https only to TikTok's API hosts unless `allow_any_host` (a proxy of the lab's): the
    client secret is posted there. No credentials in the URL: requests would send them as Basic
    auth instead of our bearer token."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"TIKTOK_API_BASE_URL={base_url!r} is not an http(s) URL; "
            f"use {constants.DEFAULT_BASE_URL} or the emulator's http://127.0.0.1:PORT"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "TIKTOK_API_BASE_URL holds a user name or password: remove them (the client "
            "credentials go in TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET)"
        )
    host = parts.hostname.lower()
    tiktok = host == _API_HOST or host.endswith("." + _API_HOST)
    if parts.scheme == "https" and not tiktok and not allow_any_host:
        raise ConfigurationError(
            f"TIKTOK_API_BASE_URL points at {host}, not TikTok's API ({_API_HOST}): the client "
            "secret would be sent there. Set TIKTOK_ALLOW_ANY_HOST=1 if that host is yours"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain-http TIKTOK_API_BASE_URL={base_url!r}: the client secret would travel "
            "unencrypted. Use https, or a loopback address (127.0.0.1) for the emulator."
        )
    return base_url.rstrip("/")


_API_HOST = "tiktokapis.com"


def source_of(base_url: str) -> str:
    """'emulator' for a loopback API, else its host name (e.g. open.tiktokapis.com)."""
    host = urlsplit(base_url).hostname or ""
    return "emulator" if _is_loopback(host) else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_limit(value: str | None, default: int | None, name: str) -> int | None:
    """The one reading of a limit: '0', 'off' or 'none' switch it off (None); otherwise a whole
    number >= 0. Empty or unset gives `default`."""
    if value is not None and value.strip().lower() in ("0", "off", "none"):
        return None
    number = parse_number(value, default, name)
    if number is None or number == int(number):
        return None if number is None else int(number)
    raise ConfigurationError(f"{name}={value!r} is not a whole number (or 'off')")


def parse_number(value: str | None, default: float | None, name: str) -> float | None:
    """A finite number >= 0; empty or unset gives `default`."""
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise ConfigurationError(f"{name}={value!r} is not a finite number")
    if number < 0:
        raise ConfigurationError(f"{name}={value!r} must not be negative")
    return number


def check_range(name: str, value: float | None, low: float, high: float, strict_low=False):
    """`value` within [low, high] (or (low, high]); None passes (a limit switched off)."""
    if value is None:
        return
    too_low = value <= low if strict_low else value < low
    if too_low or value > high:
        bound = f"more than {low:g}" if strict_low else f"at least {low:g}"
        raise ConfigurationError(f"{name}={value:g} is out of range: use {bound}, at most {high:g}")


@dataclass(frozen=True)
class ClientSettings:
    client_key: str
    client_secret: str = field(repr=False)
    base_url: str = constants.DEFAULT_BASE_URL
    rate_limit_per_minute: int | None = constants.RATE_LIMIT_PER_MINUTE  # None: no client limit
    daily_quota: int | None = constants.DAILY_QUOTA  # None: no client quota
    concurrency: int = 32  # the most in flight; a run ramps up to it (tiktok/ramp.py)
    timeout_seconds: float = 30.0  # per read: connecting, and each wait for more bytes
    # The whole answer, however it trickles in: a server sending a byte per read timeout would
    # otherwise hold a request (and the run) for hours.
    request_deadline_seconds: float = 60.0
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    # A 429 that outlasts this window is the daily quota, not the per-minute limit.
    rate_limit_window_seconds: float = 61.0
    # Early in the API's day a spent quota may still come back (reset lag): keep probing this
    # long, `reset_backoff_seconds` apart and doubling, before giving up for today.
    reset_wait_seconds: float = 1800.0
    reset_backoff_seconds: float = 60.0
    fields: tuple[str, ...] = constants.USER_INFO_FIELDS
    allow_any_host: bool = False  # https to a host other than TikTok's API (a lab's proxy)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "base_url", check_base_url(self.base_url, allow_any_host=self.allow_any_host)
        )
        for name, (low, high, strict) in _RANGES.items():
            check_range(ENVIRONMENT[name], getattr(self, name), low, high, strict)
        unknown = [f for f in self.fields if f not in constants.USER_INFO_FIELDS]
        if unknown:
            raise ConfigurationError(
                f"unknown user-info fields {unknown}; "
                f"known: {', '.join(constants.USER_INFO_FIELDS)}"
            )
        if not self.client_key or not self.client_secret:
            raise ConfigurationError(
                "TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET are not set: put them in the .env "
                "file next to workspace.yaml (README, 'Running it every day'), or for the "
                "emulator the values it was started with"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "ClientSettings":
        """Every setting from `TIKTOK_*` variables (see ENVIRONMENT); `overrides` win."""
        env = os.environ if env is None else env
        values: dict = {
            "client_key": env.get("TIKTOK_CLIENT_KEY", ""),
            "client_secret": env.get("TIKTOK_CLIENT_SECRET", ""),
            **cls.env_values(env),
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def env_values(cls, env: Mapping[str, str] | None = None) -> dict:
        """Every setting but the credentials, parsed from `TIKTOK_*` variables and not yet
        checked (the settings object checks them): what a Dagster resource shows as its
        configuration, read once when the code location loads."""
        env = os.environ if env is None else env
        values: dict = {"base_url": env.get("TIKTOK_API_BASE_URL") or constants.DEFAULT_BASE_URL}
        for name, variable in ENVIRONMENT.items():
            if name in ("client_key", "client_secret", "base_url"):
                continue
            default = cls.__dataclass_fields__[name].default
            raw = env.get(variable)
            if name in ("rate_limit_per_minute", "daily_quota"):
                values[name] = parse_limit(raw, default, variable)
            elif name == "fields":
                values[name] = _parse_fields(raw, default)
            elif name == "allow_any_host":
                values[name] = (raw or "").strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                values[name] = int(parse_number(raw, default, variable))
            else:
                values[name] = parse_number(raw, default, variable)
        return values


# Setting -> environment variable. The README's configuration table lists the same.
ENVIRONMENT = {
    "client_key": "TIKTOK_CLIENT_KEY",
    "client_secret": "TIKTOK_CLIENT_SECRET",
    "base_url": "TIKTOK_API_BASE_URL",
    "rate_limit_per_minute": "TIKTOK_RATE_LIMIT_PER_MINUTE",
    "daily_quota": "TIKTOK_DAILY_QUOTA",
    "concurrency": "TIKTOK_CONCURRENCY",
    "timeout_seconds": "TIKTOK_TIMEOUT_SECONDS",
    "request_deadline_seconds": "TIKTOK_REQUEST_DEADLINE_SECONDS",
    "max_attempts": "TIKTOK_MAX_ATTEMPTS",
    "backoff_base_seconds": "TIKTOK_BACKOFF_BASE_SECONDS",
    "backoff_max_seconds": "TIKTOK_BACKOFF_MAX_SECONDS",
    "rate_limit_window_seconds": "TIKTOK_RATE_LIMIT_WINDOW_SECONDS",
    "reset_wait_seconds": "TIKTOK_RESET_WAIT_SECONDS",
    "reset_backoff_seconds": "TIKTOK_RESET_BACKOFF_SECONDS",
    "fields": "TIKTOK_FIELDS",
    "allow_any_host": "TIKTOK_ALLOW_ANY_HOST",
}

# What each number may be: (lowest, highest, lowest excluded). Beyond these a setting is a typo
# or a misunderstanding, and each has cost quota or hung a run when it was let through.
_RANGES = {
    "rate_limit_per_minute": (1, 100_000, False),
    "daily_quota": (1, 10_000_000, False),
    "concurrency": (1, 64, False),
    "timeout_seconds": (0, 600, True),
    "request_deadline_seconds": (0, 3600, True),
    "max_attempts": (1, 20, False),
    "backoff_base_seconds": (0, 3600, False),
    "backoff_max_seconds": (0, 3600, False),
    "rate_limit_window_seconds": (0, 3600, True),
    "reset_wait_seconds": (0, 86_400, False),
    "reset_backoff_seconds": (0, 86_400, False),
}


def _parse_fields(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list; spaces after commas are fine (TikTok's docs write it so)."""
    if value is None or not value.strip():
        return default
    return tuple(name.strip() for name in value.split(",") if name.strip())
