"""Username normalisation: one spelling per account, so a cohort never asks twice for one user."""

import re
import unicodedata

from research_pipeline.tiktok.errors import InvalidUsernameError

# A profile URL pasted instead of a username: https://www.tiktok.com/@name (query, fragment or
# a trailing path are ignored).
PROFILE_URL = re.compile(r"^(?:https?://)?(?:www\.|m\.)?tiktok\.com/@([^/?#\s]+)", re.IGNORECASE)


def normalize_username(raw: str) -> str:
    """Strip spaces and one leading '@' (or take the name from a pasted profile URL), check the
    name as written, then lower-case it.

    TikTok usernames are 2-24 characters of letters, digits, '_' and '.'; anything else would
    cost a request only to come back as `invalid_params`. The check comes before the folding:
    `str.lower()` turns lookalikes into letters (the Kelvin sign U+212A into `k`), and a
    lookalike must never become another person's account.
    """
    name = raw.strip()
    profile = PROFILE_URL.match(name)
    if profile:
        name = profile.group(1)
    if name.startswith("@"):
        name = name[1:]
    if not USERNAME_AS_WRITTEN.match(name):
        shown = raw.strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."  # never echo a 50 MB line
        raise InvalidUsernameError(f"invalid TikTok username {shown!r}: {_why_not(name)}")
    return name.lower()


# What a username may hold as written: ASCII letters of either case (TikTok shows them lower
# case), digits, '_' and '.'. No source shows more (shared/tiktok-api-notes.md).
USERNAME_AS_WRITTEN = re.compile(r"^[A-Za-z0-9_.]{2,24}$")


def _why_not(name: str) -> str:
    if not name:
        return "it is empty"
    bad = [c for c in dict.fromkeys(name) if not re.match(r"[A-Za-z0-9_.]", c)]
    if bad and all(c.isascii() and c.isprintable() for c in bad):
        shown = "".join(sorted(bad))
        return f"it contains {shown!r} (allowed: letters, digits, '_' and '.')"
    if bad:
        named = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in bad[:3])
        return (
            f"it contains {named} (allowed: ASCII letters, digits, '_' and '.'; a lookalike "
            "of a letter would be another account): retype the name"
        )
    return f"it has {len(name)} characters (allowed: 2 to 24)"
