"""Python's cyclic garbage collector while a command loads Dagster.

Loading Dagster, its storage and our definitions leaves about 200,000 objects that live until
the command ends. Every full collection scans them all again: a 10-user snapshot ran 4 of them
(0.34 s) and 540 younger ones (0.13 s), a tenth of the whole command, to free next to nothing.
So while a command loads, collection waits; once it has loaded, what it loaded is frozen
(`gc.freeze`: moved where the collector never looks) and collection goes on as usual for
everything the run makes.

Freezing is for the executable only (`run`, which leaves as soon as the command ends): in a
process that goes on afterwards (the tests call `main` in process), a frozen cycle would stay
in memory for good, with whatever it held open. There the collector is only paused while
loading, and catches up at once.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_freeze_after_loading = False


def freeze_after_loading() -> None:
    """The executable's promise that the process ends with the command (`cli.run`)."""
    global _freeze_after_loading
    _freeze_after_loading = True


@contextmanager
def loading() -> Iterator[None]:
    """Around what a command loads once and keeps until it ends (imports, instance, defs)."""
    if not gc.isenabled():  # someone else decided: leave it so
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if _freeze_after_loading:
            gc.freeze()
        gc.enable()
