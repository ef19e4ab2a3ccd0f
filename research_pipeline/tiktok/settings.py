"""Client settings, read from the environment, checked before any secret leaves the process."""

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
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


def declared(variable: str, default, meaning: str, kind: str, bounds: tuple | None = None):
    """A setting declared once: its variable, default, kind, bounds and meaning live in the
    dataclass field, and every surface (the environment's reading, the range check, the Dagster
    resource's fields, the README table's test) reads them from there. `kind` is how the
    variable is read: 'number', 'whole', 'limit' (a whole number, or 'off'), 'flag', 'list',
    'text' or 'path'; `bounds` is (lowest, highest, lowest excluded)."""
    metadata = {"variable": variable, "meaning": meaning, "kind": kind, "bounds": bounds}
    return field(default=default, metadata=metadata, repr=kind != "secret")


def declarations(settings_class) -> dict:
    """Setting name -> its field, for every declared setting of `settings_class`."""
    return {f.name: f for f in fields(settings_class) if "variable" in f.metadata}


def read_declared(settings_class, env: Mapping[str, str]) -> dict:
    """Every declared setting of `settings_class` read from `env`, by its kind, not yet checked
    against its bounds (`check_declared` does, when the settings object is made). An unset
    variable leaves the setting out (the field's default applies)."""
    values = {}
    for name, setting in declarations(settings_class).items():
        variable, kind = setting.metadata["variable"], setting.metadata["kind"]
        raw = env.get(variable)
        if raw is None or raw.strip() == "":
            continue
        values[name] = _READERS[kind](raw, setting.default, variable)
    return values


def check_declared(settings) -> None:
    """Each declared number of `settings` within its bounds (one line naming the variable)."""
    for name, setting in declarations(type(settings)).items():
        if setting.metadata["bounds"] is not None:
            low, high, strict = setting.metadata["bounds"]
            check_range(setting.metadata["variable"], getattr(settings, name), low, high, strict)


def parse_flag(value: str | None, default: bool, name: str) -> bool:
    """'1', 'true', 'yes' or 'on' (any case) is on; empty or '0'/'false'/'no'/'off' off."""
    text = (value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name}={value!r}: use 1 or 0 (true/false, yes/no, on/off)")


def _parse_whole(value: str, default, name: str) -> int:
    number = parse_number(value, default, name)
    if number != int(number):
        raise ConfigurationError(f"{name}={value!r} is not a whole number")
    return int(number)


_READERS = {
    "number": parse_number,
    "whole": _parse_whole,
    "limit": parse_limit,
    "flag": parse_flag,
    "list": lambda value, default, name: _parse_fields(value, default),
    "text": lambda value, default, name: value.strip(),
    "secret": lambda value, default, name: value,
    "path": lambda value, default, name: Path(value.strip()),
}


@dataclass(frozen=True)
class ClientSettings:
    client_key: str = declared("TIKTOK_CLIENT_KEY", "", "client credentials: the key", "text")
    client_secret: str = declared(
        "TIKTOK_CLIENT_SECRET", "", "client credentials: the secret, never logged", "secret"
    )
    base_url: str = declared(
        "TIKTOK_API_BASE_URL",
        constants.DEFAULT_BASE_URL,
        "the API, or the emulator's http://127.0.0.1:PORT (plain http only on loopback)",
        "text",
    )
    rate_limit_per_minute: int | None = declared(
        "TIKTOK_RATE_LIMIT_PER_MINUTE",
        constants.RATE_LIMIT_PER_MINUTE,
        "requests per sliding minute, client side; off: none",
        "limit",
        (1, 100_000, False),
    )
    daily_quota: int | None = declared(
        "TIKTOK_DAILY_QUOTA",
        constants.DAILY_QUOTA,
        "the project's requests per UTC day; off: none",
        "limit",
        (1, 10_000_000, False),
    )
    concurrency: int = declared(
        "TIKTOK_CONCURRENCY",
        32,
        "the most requests in flight; a run ramps up to it (tiktok/ramp.py)",
        "whole",
        (1, 64, False),
    )
    timeout_seconds: float = declared(
        "TIKTOK_TIMEOUT_SECONDS",
        30.0,
        "per read: connecting, and each wait for more bytes",
        "number",
        (0, 600, True),
    )
    # The whole answer, however it trickles in: a server sending a byte per read timeout would
    # otherwise hold a request (and the run) for hours.
    request_deadline_seconds: float = declared(
        "TIKTOK_REQUEST_DEADLINE_SECONDS",
        60.0,
        "the whole answer of one request, however slowly it trickles in",
        "number",
        (0, 3600, True),
    )
    max_attempts: int = declared(
        "TIKTOK_MAX_ATTEMPTS",
        5,
        "attempts per user on transient errors, in one run",
        "whole",
        (1, 20, False),
    )
    backoff_base_seconds: float = declared(
        "TIKTOK_BACKOFF_BASE_SECONDS",
        1.0,
        "first wait before a retry, then doubled (jittered)",
        "number",
        (0, 3600, False),
    )
    backoff_max_seconds: float = declared(
        "TIKTOK_BACKOFF_MAX_SECONDS",
        60.0,
        "longest wait before a retry",
        "number",
        (0, 3600, False),
    )
    rate_limit_window_seconds: float = declared(
        "TIKTOK_RATE_LIMIT_WINDOW_SECONDS",
        61.0,
        "a 429 that outlasts this window is the daily quota, not the per-minute limit",
        "number",
        (0, 3600, True),
    )
    # Early in the API's day a spent quota may still come back (reset lag): keep probing this
    # long, `reset_backoff_seconds` apart and doubling, before giving up for today.
    reset_wait_seconds: float = declared(
        "TIKTOK_RESET_WAIT_SECONDS",
        1800.0,
        "how long a late quota reset is waited for, early in the API's day",
        "number",
        (0, 86_400, False),
    )
    reset_backoff_seconds: float = declared(
        "TIKTOK_RESET_BACKOFF_SECONDS",
        60.0,
        "first wait between probes of a late reset",
        "number",
        (0, 86_400, False),
    )
    fields: tuple[str, ...] = declared(
        "TIKTOK_FIELDS",
        constants.USER_INFO_FIELDS,
        "comma-separated user-info fields asked for",
        "list",
    )
    allow_any_host: bool = declared(
        "TIKTOK_ALLOW_ANY_HOST",
        False,
        "https to a host other than TikTok's API (a lab's proxy)",
        "flag",
    )

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "base_url", check_base_url(self.base_url, allow_any_host=self.allow_any_host)
        )
        check_declared(self)
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
        """Every setting from `TIKTOK_*` variables (see `declared`); `overrides` win."""
        env = os.environ if env is None else env
        return cls(**{**read_declared(cls, env), **overrides})

    @classmethod
    def env_values(cls, env: Mapping[str, str] | None = None) -> dict:
        """Every setting but the credentials, from `TIKTOK_*` variables (defaults where unset),
        not yet checked (the settings object checks them): what a Dagster resource shows as its
        configuration, read once when the code location loads."""
        env = os.environ if env is None else env
        values = {name: f.default for name, f in declarations(cls).items()}
        values.update(read_declared(cls, env))
        del values["client_key"], values["client_secret"]
        return values


# Setting -> environment variable, from the declarations.
ENVIRONMENT = {name: f.metadata["variable"] for name, f in declarations(ClientSettings).items()}


def _parse_fields(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list; spaces after commas are fine (TikTok's docs write it so)."""
    if value is None or not value.strip():
        return default
    return tuple(name.strip() for name in value.split(",") if name.strip())
