"""Ctrl-C (SIGINT) and SIGTERM while the day's requests are being sent: "stop spending now".

Dagster turns an interrupt inside a step into an exception its RetryPolicy answers with a retry,
so the first Ctrl-C of a researcher used to restart the fetch and throw away the answers in
flight. While fetching, the day's run takes both signals itself:
- the first asks no one new (`stop`), and the answers already paid for are awaited and stored;
- after `grace_seconds`, or at a second signal, the answers still in flight are abandoned
  (`abandon`): their requests were noted before sending, so the next run books them as spent.
Only the main thread can own signal handlers; elsewhere (a notebook's worker thread) this does
nothing and the caller's own interrupt handling applies.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

GRACE_SECONDS = 10.0


@dataclass
class StopSignals:
    """What the signals asked for, shared with the fetching threads."""

    stop: threading.Event = field(default_factory=threading.Event)
    abandon: threading.Event = field(default_factory=threading.Event)
    received: str = ""  # the first signal's name, e.g. "SIGINT"; empty: none came

    @property
    def interrupted(self) -> bool:
        return bool(self.received)


@contextmanager
def stop_on_signals(
    stop: threading.Event, grace_seconds: float = GRACE_SECONDS
) -> Iterator[StopSignals]:
    """Within the block, SIGINT and SIGTERM set `stop` (then `abandon` after the grace period or
    at the next signal) instead of raising; the previous handlers come back afterwards."""
    signals = StopSignals(stop=stop)
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    timer: threading.Timer | None = None

    def handle(signum: int, _frame) -> None:
        nonlocal timer
        if signals.received:
            signals.abandon.set()
            return
        signals.received = signal.Signals(signum).name
        stop.set()
        timer = threading.Timer(grace_seconds, signals.abandon.set)
        timer.daemon = True
        timer.start()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if timer is not None:
            timer.cancel()
