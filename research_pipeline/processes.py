"""Whether the process that wrote a side file still runs: its claims, journal or partial export
are its own while it does, and left for the next run to take over once it has ended."""

import os


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
