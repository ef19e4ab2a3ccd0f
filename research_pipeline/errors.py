"""Every error the project raises on purpose, in one hierarchy.

Callers catch `ResearchPipelineError` to tell an expected failure (bad input, an API that refused
us, a quota used up) from a bug; the CLI prints the former as one line and the latter with a
traceback. None of these messages may carry the client secret or an access token.
"""

from datetime import datetime


class ResearchPipelineError(Exception):
    """Base of every expected failure: the message says what, where and what to do. `cause`
    names the kind of trouble for whoever is told (alerts go once per day and cause)."""

    cause = "failed"


class ConfigurationError(ResearchPipelineError):
    """A setting that would be unsafe or cannot work (plain http off loopback, a bad number)."""


class InvalidUsernameError(ResearchPipelineError, ValueError):
    """A username that TikTok cannot have; raised before any request is spent on it."""


class CohortError(ResearchPipelineError, ValueError):
    """A cohort that cannot be used at all (bad name, missing file, no username column)."""


class WarehouseError(ResearchPipelineError):
    """The DuckDB file cannot be opened, upgraded or written."""

    cause = "storage"


class WarehouseLockedError(WarehouseError):
    """Another process holds the warehouse open, so it cannot be written now."""


class JournalError(WarehouseError):
    """An answer cannot be written to the journal on local disk: sending must stop at once."""


class WarehouseNeedsUpgradeError(WarehouseError):
    """A warehouse of an earlier release opened read-only: the next writer upgrades it."""


class DagsterStorageError(ResearchPipelineError):
    """Dagster's own storage (run history, event log) cannot be read or written."""

    cause = "storage"


# -- the Research API -------------------------------------------------------------------------


class TikTokApiError(ResearchPipelineError):
    """Something stops us from asking the API any further."""


class TransientApiError(TikTokApiError):
    """Worth retrying later (token endpoint down, 5xx): nothing is wrong with our setup."""

    cause = "outage"


class FatalApiError(TikTokApiError):
    """The API refused us as a whole (bad credentials, no research scope): retrying wastes quota."""

    cause = "credentials"

    def __init__(self, message: str, code: str = "", log_id: str = ""):
        super().__init__(message)
        self.code = code
        self.log_id = log_id


class QuotaExhaustedError(TikTokApiError):
    """The daily request quota is used up; nothing more can be fetched until it resets."""

    def __init__(self, message: str, resets_at: datetime | None = None):
        super().__init__(message)
        self.resets_at = resets_at


class ApiOutageError(TikTokApiError):
    """The API answered only server errors for a while: stop spending quota on it for now."""

    def __init__(self, message: str, streak: int = 0):
        super().__init__(message)
        self.streak = streak


class FetchCancelledError(TikTokApiError):
    """Another user's fetch hit a fatal error, so this one stopped before sending."""


# -- snapshots ---------------------------------------------------------------------------------


class SnapshotDateError(ResearchPipelineError, ValueError):
    """The API serves current values only: a snapshot can be fetched on its own day only."""

    cause = "date"


class SnapshotIncompleteError(ResearchPipelineError):
    """Fetching stopped before every planned user was answered; the rows fetched are stored.

    Never retried by Dagster: the causes (quota, refused credentials) do not heal in minutes."""

    def __init__(self, message: str, cause: str = "failed"):
        super().__init__(message)
        self.cause = cause
