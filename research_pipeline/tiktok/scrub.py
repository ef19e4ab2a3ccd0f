"""Secrets never kept: our client secret and the tokens we were issued, removed by value from
whatever an answer echoes back, in every form it can come back in (raw, URL-encoded as a form
or a path, JSON-escaped), before anything is logged, raised or stored."""

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every form of every non-empty secret replaced by <redacted>."""
    if not text:
        return text
    for secret in secrets:
        if not secret:
            continue
        for form in sorted(_forms(secret), key=len, reverse=True):
            if form in text:
                text = text.replace(form, REDACTED)
    return text
