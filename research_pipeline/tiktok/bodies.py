"""Reading an answer's body within bounds: a whole-answer deadline and a size cap.

A user-info answer is under 5 KB and a token answer under 1 KB; a hostile or broken server can
drip a body a byte at a time (each read within its timeout, the whole answer taking minutes),
stream one without end, or send a small gzip that inflates to gigabytes. Bodies are read as
they arrive (`read1`, after decompression) until the deadline or the cap, whichever comes
first; `requests` keeps a read body in `_content`, as its own `.content` does.
"""

import time

import requests
import urllib3

MAX_USER_INFO_BYTES = 1_000_000
MAX_TOKEN_BYTES = 64_000


class DeadlinePassed(Exception):
    """The whole answer did not arrive in time."""


class BodyTooLarge(Exception):
    """The answer (decompressed) is larger than any answer of this endpoint can be."""


def read_body(response: requests.Response, deadline: float, max_bytes: int) -> None:
    """Read the whole body before `deadline` (time.monotonic; a read already waiting may add
    one read timeout) and within `max_bytes`, or give up on it. urllib3's errors become the
    `requests` ones the caller handles."""
    chunks, size = [], 0
    try:
        while True:
            if time.monotonic() > deadline:
                raise DeadlinePassed
            chunk = response.raw.read1(65536, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.Timeout(type(exc).__name__) from None
    except urllib3.exceptions.HTTPError as exc:
        raise requests.ConnectionError(type(exc).__name__) from None
    finally:
        response.close()
    response._content = b"".join(chunks)  # noqa: SLF001 - see the module docstring
