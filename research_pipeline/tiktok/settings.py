"""Client settings, read from the environment, checked before any secret leaves the process."""

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from research_pipeline.tiktok import constants
from research_pipeline.tiktok.errors import ConfigurationError


def check_base_url(base_url: str) -> str:
    """Allow https anywhere and plain http only on loopback (the emulator), so a secret never
    crosses a network in clear text."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"TIKTOK_API_BASE_URL={base_url!r} is not an http(s) URL; "
            f"use {constants.DEFAULT_BASE_URL} or the emulator's http://127.0.0.1:PORT"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain-http TIKTOK_API_BASE_URL={base_url!r}: the client secret would travel "
            "unencrypted. Use https, or a loopback address (127.0.0.1) for the emulator."
        )
    return base_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _optional_limit(value: str | None, default: int | None, name: str) -> int | None:
    """'0', 'off' or 'none' switch a limit off (for the emulator); otherwise a positive integer."""
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() in ("0", "off", "none"):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a whole number (or 'off')") from None
    if number < 0:
        raise ConfigurationError(f"{name}={value!r} must not be negative")
    return number


@dataclass(frozen=True)
class ClientSettings:
    client_key: str
    client_secret: str = field(repr=False)
    base_url: str = constants.DEFAULT_BASE_URL
    rate_limit_per_minute: int | None = constants.RATE_LIMIT_PER_MINUTE  # None: no client limit
    daily_quota: int | None = constants.DAILY_QUOTA  # None: no client quota
    concurrency: int = 8
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    fields: tuple[str, ...] = constants.USER_INFO_FIELDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", check_base_url(self.base_url))
        unknown = [f for f in self.fields if f not in constants.USER_INFO_FIELDS]
        if unknown:
            raise ConfigurationError(
                f"unknown user-info fields {unknown}; "
                f"known: {', '.join(constants.USER_INFO_FIELDS)}"
            )
        if not self.client_key or not self.client_secret:
            raise ConfigurationError(
                "TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET must be set (for the emulator, any "
                "values it was started with; see README)"
            )
        if self.concurrency < 1 or self.max_attempts < 1:
            raise ConfigurationError("concurrency and max_attempts must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "ClientSettings":
        env = os.environ if env is None else env
        values = dict(
            client_key=env.get("TIKTOK_CLIENT_KEY", ""),
            client_secret=env.get("TIKTOK_CLIENT_SECRET", ""),
            base_url=env.get("TIKTOK_API_BASE_URL") or constants.DEFAULT_BASE_URL,
            rate_limit_per_minute=_optional_limit(
                env.get("TIKTOK_RATE_LIMIT_PER_MINUTE"),
                constants.RATE_LIMIT_PER_MINUTE,
                "TIKTOK_RATE_LIMIT_PER_MINUTE",
            ),
            daily_quota=_optional_limit(
                env.get("TIKTOK_DAILY_QUOTA"), constants.DAILY_QUOTA, "TIKTOK_DAILY_QUOTA"
            ),
        )
        values.update(overrides)
        return cls(**values)
