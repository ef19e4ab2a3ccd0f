"""The result of asking for one user: its fields, or the API's answer about why not."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from research_pipeline.tiktok.error_kinds import error_kind


class Outcome(StrEnum):
    OK = "ok"
    # A 4xx about this username (private, banned, deleted, unknown): final for this snapshot.
    USER_ERROR = "user_error"
    # Retries ran out on 429/5xx/timeouts/garbled answers: worth asking again later.
    TRANSIENT_ERROR = "transient_error"


@dataclass(frozen=True)
class UserInfoResult:
    username: str
    outcome: Outcome
    status: str  # "ok" or the API error code (or timeout / connection_error / malformed_response)
    fetched_at: datetime
    error_message: str = ""
    log_id: str = ""
    http_status: int | None = None
    attempts: int = 1
    fields: dict[str, Any] = field(default_factory=dict)
    served_at: datetime | None = None  # the API's clock when it answered (its Date header)
    extra: dict[str, Any] = field(default_factory=dict)  # answered fields we did not ask for

    @property
    def error_kind(self) -> str | None:
        """not_found, private, banned, rate_limited, server_error or other; None when ok."""
        return error_kind(self.status, self.error_message, self.http_status)

    @property
    def is_final(self) -> bool:
        """A final result need not be fetched again for the same snapshot."""
        return self.outcome is not Outcome.TRANSIENT_ERROR


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request to the user-info endpoint, as the audit trail and quota ledger keep it."""

    requested_at: datetime
    username: str
    http_status: int | None
    status: str
    log_id: str = ""
    message: str = ""
    # The user's result when this request ended its asking (an answer, or retries run out): the
    # caller keeps both at once, so no answer is ever recorded as paid for and then lost.
    result: UserInfoResult | None = field(default=None, compare=False, repr=False)

    @property
    def error_kind(self) -> str | None:
        return error_kind(self.status, self.message, self.http_status)
