"""The client's errors, from the project's one hierarchy (research_pipeline.errors).

Per-user outcomes (private, not found) are results, not errors.
"""

from research_pipeline.errors import (
    ApiOutageError,
    ConfigurationError,
    FatalApiError,
    FetchCancelledError,
    InvalidUsernameError,
    QuotaExhaustedError,
    TikTokApiError,
    TransientApiError,
)

__all__ = [
    "ApiOutageError",
    "ConfigurationError",
    "FatalApiError",
    "FetchCancelledError",
    "InvalidUsernameError",
    "QuotaExhaustedError",
    "TikTokApiError",
    "TransientApiError",
]
