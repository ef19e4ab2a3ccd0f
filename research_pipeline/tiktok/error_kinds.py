"""What kind of failure an answer is, from its code and message: the API says `invalid_params`
for private, deleted and banned accounts alike and only its free text tells them apart.

Kinds: not_found, private, banned (per-user, final), rate_limited, server_error (transient), and
other. The code and message are always kept verbatim beside the kind, so a pattern that TikTok's
wording outgrows can be re-read later.
"""

import re

from research_pipeline.tiktok import constants

NOT_FOUND = "not_found"
PRIVATE = "private"
BANNED = "banned"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
OTHER = "other"
USER_GONE_KINDS = (NOT_FOUND, PRIVATE, BANNED)

# Wording seen from the real API and public clients (shared/tiktok-api-notes.md), in the order
# tried: a banned account's text may also say the API cannot return its information.
_PATTERNS = (
    (BANNED, re.compile(r"\bbanned\b|\bsuspended\b", re.I)),
    (PRIVATE, re.compile(r"\bis private\b|cannot return this user'?s information", re.I)),
    (NOT_FOUND, re.compile(r"cannot find the user|\bnot found\b|does not exist|deleted", re.I)),
)
_TRANSPORT = (constants.TIMEOUT, constants.CONNECTION_ERROR, constants.MALFORMED_RESPONSE)


def error_kind(status: str, message: str = "") -> str | None:
    """None for an ok answer; otherwise the kind of failure."""
    if status == constants.OK:
        return None
    if status == constants.RATE_LIMIT_EXCEEDED:
        return RATE_LIMITED
    if status == constants.INTERNAL_ERROR or status in _TRANSPORT:
        return SERVER_ERROR
    for kind, pattern in _PATTERNS:
        if pattern.search(message or ""):
            return kind
    return OTHER
