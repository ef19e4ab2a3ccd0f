"""A plain client for the TikTok Research API user-info endpoint (no Dagster here)."""

from research_pipeline.tiktok.client import ResearchApiClient
from research_pipeline.tiktok.errors import (
    ConfigurationError,
    FatalApiError,
    InvalidUsernameError,
    QuotaExhaustedError,
    TikTokApiError,
    TransientApiError,
)
from research_pipeline.tiktok.models import Outcome, RequestRecord, UserInfoResult
from research_pipeline.tiktok.settings import ClientSettings
from research_pipeline.tiktok.usernames import normalize_username

__all__ = [
    "ClientSettings",
    "ConfigurationError",
    "FatalApiError",
    "InvalidUsernameError",
    "Outcome",
    "QuotaExhaustedError",
    "RequestRecord",
    "ResearchApiClient",
    "TikTokApiError",
    "TransientApiError",
    "UserInfoResult",
    "normalize_username",
]
