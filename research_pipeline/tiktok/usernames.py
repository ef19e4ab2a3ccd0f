"""Username normalisation: one spelling per account, so a cohort never asks twice for one user."""

import re

from research_pipeline.tiktok.errors import InvalidUsernameError

USERNAME_PATTERN = re.compile(r"^[a-z0-9_.]{2,24}$")


# A profile URL pasted instead of a username: https://www.tiktok.com/@name (query, fragment or
# a trailing path are ignored).
PROFILE_URL = re.compile(r"^(?:https?://)?(?:www\.|m\.)?tiktok\.com/@([^/?#\s]+)", re.IGNORECASE)


def normalize_username(raw: str) -> str:
    """Strip spaces and one leading '@' (or take the name from a pasted profile URL),
    lower-case, and validate against TikTok's rules.

    TikTok usernames are 2-24 characters of letters, digits, '_' and '.'; anything else would
    cost a request only to come back as `invalid_params`.
    """
    name = raw.strip()
    profile = PROFILE_URL.match(name)
    if profile:
        name = profile.group(1)
    if name.startswith("@"):
        name = name[1:]
    name = name.lower()
    if not USERNAME_PATTERN.match(name):
        if not name:
            reason = "it is empty"
        elif not 2 <= len(name) <= 24:
            reason = f"it has {len(name)} characters (allowed: 2 to 24)"
        else:
            bad = sorted({c for c in name if not re.match(r"[a-z0-9_.]", c)})
            reason = f"it contains {''.join(bad)!r} (allowed: letters, digits, '_' and '.')"
        shown = raw.strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."  # never echo a 50 MB line
        raise InvalidUsernameError(f"invalid TikTok username {shown!r}: {reason}")
    return name
