"""Checking one user's answer before it is stored: a count that is a string, a fraction, a
number beyond 64 bits or a boolean; a flag that is not a boolean; a text that is not text. One
odd answer becomes that user's error row (with the raw value, shortened), never a failed batch
that loses every other paid answer."""

from collections.abc import Iterable
from typing import Any

from research_pipeline.tiktok.constants import COUNT_FIELDS

FLAG_FIELDS = ("is_verified",)
MAX_COUNT = 2**63 - 1  # BIGINT
# TikTok's own limits are far shorter (a bio of 80 characters, a name of 30, a signed avatar URL
# of a few hundred): a longer text is not a profile, and it would go into every log and event.
MAX_TEXT = 10_000
INVALID_ANSWER = "invalid_answer"


def problems_in(data: dict[str, Any], requested: Iterable[str]) -> list[str]:
    """What is wrong with the requested fields of an ok answer (empty: nothing)."""
    found = []
    for name in requested:
        value = data.get(name)
        if name in COUNT_FIELDS:
            if name not in data:
                found.append(f"{name} is missing")
            elif isinstance(value, bool) or not isinstance(value, int):
                found.append(f"{name}={_short(value)} is not a whole number")
            elif not 0 <= value <= MAX_COUNT:
                found.append(f"{name}={_short(value)} is out of range (0 to 2^63-1)")
        elif name in FLAG_FIELDS:
            if value is not None and not isinstance(value, bool):
                found.append(f"{name}={_short(value)} is not true or false")
        elif value is not None and not isinstance(value, str):
            found.append(f"{name}={_short(value)} is not text")
        elif isinstance(value, str) and len(value) > MAX_TEXT:
            found.append(f"{name} is {len(value):,} characters long (at most {MAX_TEXT:,})")
    return found


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
