"""What kind of failure an answer is, from its code and message: the API says `invalid_params`
for refused, deleted and banned accounts alike and only its free text tells them apart.

Kinds: not_found (the documented "cannot find the user"), refused (the one refusal on record
from the real API, "API cannot return this user's information": no user named, no reason given,
so not necessarily private), private and banned (only where the text says so: no public source
shows such a text, they are kept for wording the API may use), rate_limited, server_error
(transient), and other. The code and message are always kept verbatim beside the kind, so a
pattern that TikTok's wording outgrows can be re-read later. This module is the one home of
the per-user wording: the client asks it whether an answer is about its user.
"""

import re

from research_pipeline.tiktok import constants

NOT_FOUND = "not_found"
REFUSED = "refused"
PRIVATE = "private"
BANNED = "banned"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
OTHER = "other"
# Per-user, final, and the account's data is no longer to be kept (TikTok's terms).
USER_GONE_KINDS = (NOT_FOUND, REFUSED, PRIVATE, BANNED)

# Wording seen from the real API and public clients (shared/tiktok-api-notes.md), in the order
# tried: a text that says why (banned, private) wins over the bare refusal.
_PATTERNS = (
    (BANNED, re.compile(r"\bbanned\b|\bsuspended\b", re.I)),
    (PRIVATE, re.compile(r"\bis private\b", re.I)),
    (REFUSED, re.compile(r"cannot return this user'?s information", re.I)),
    (NOT_FOUND, re.compile(r"cannot find the user|\bnot found\b|does not exist|deleted", re.I)),
)
_TRANSPORT = (
    constants.TIMEOUT,
    constants.CONNECTION_ERROR,
    constants.NOT_CONNECTED,
    constants.MALFORMED_RESPONSE,
)
_NOT_ABOUT_ANY_USER = (
    constants.REQUEST_REJECTED,
    constants.REDIRECTED,
    constants.NOT_ABOUT_USER,
)
# The documented not-found wording names the user: "`username: X` is invalid: ...".
_NAMED = re.compile(r"username\W{0,3}\s*[:=]\s*[`'\"]?([^\s`'\",;]+)", re.I)


def named_username(message: str) -> str | None:
    """The username an error message names (lower case), or None when it names none."""
    found = _NAMED.search(message or "")
    return found.group(1).lower() if found else None


def is_server_failure(status: str, http_status: int | None) -> bool:
    """An answer that says the API is in trouble, whoever was asked."""
    return (
        status in _TRANSPORT
        or status == constants.INTERNAL_ERROR
        or (http_status is not None and http_status >= 500)
    )


def user_kind(message: str) -> str | None:
    """The per-user kind a message names (not found, refused, private, banned), else None."""
    for kind, pattern in _PATTERNS:
        if pattern.search(message or ""):
            return kind
    return None


def error_kind(status: str, message: str = "", http_status: int | None = None) -> str | None:
    """The stored kind of an answer, the one rule for the client, the ledger and the
    warehouse: None when ok; rate_limited; server_error (5xx, internal_error, no answer);
    not_found, refused, private or banned where the text says so; else other."""
    if status == constants.OK:
        return None
    if status in constants.RATE_LIMIT_STATUSES:
        return RATE_LIMITED
    if is_server_failure(status, http_status):
        return SERVER_ERROR
    if status in _NOT_ABOUT_ANY_USER:
        return OTHER
    return user_kind(message) or OTHER
