"""Errors that stop a fetch. Per-user outcomes (private, not found) are results, not errors.

None of these messages may carry the client secret or an access token.
"""


class TikTokApiError(Exception):
    """Base class: something stops us from asking the API any further."""


class ConfigurationError(TikTokApiError):
    """The client is set up in a way that would be unsafe or cannot work (e.g. plain http)."""


class InvalidUsernameError(ValueError):
    """A username that TikTok cannot have; raised before any request is spent on it."""


class TransientApiError(TikTokApiError):
    """Worth retrying later (token endpoint down, 5xx): nothing is wrong with our setup."""


class FatalApiError(TikTokApiError):
    """The API refused us as a whole (bad credentials, no research scope): retrying wastes quota."""

    def __init__(self, message: str, code: str = "", log_id: str = ""):
        super().__init__(message)
        self.code = code
        self.log_id = log_id


class QuotaExhaustedError(TikTokApiError):
    """The daily request quota is used up; nothing more can be fetched until it resets."""

    def __init__(self, message: str, resets_at=None):
        super().__init__(message)
        self.resets_at = resets_at
