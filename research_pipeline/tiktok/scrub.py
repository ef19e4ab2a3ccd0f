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


def scrub_deep(value, secrets: Iterable[str]):
    """`value` (an answer's JSON: objects, lists, strings) with every secret scrubbed at any
    depth, in keys as in values; a key scrubbed into another key's name keeps both."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        return [scrub_deep(item, secrets) for item in value]
    if isinstance(value, dict):
        scrubbed = {}
        for key, item in value.items():
            name = scrub(key, secrets) if isinstance(key, str) else key
            while name in scrubbed:
                name = f"{name}_"
            scrubbed[name] = scrub_deep(item, secrets)
        return scrubbed
    return value
