"""The garbage collector while a command loads Dagster (`research_pipeline.cli.collection`):
paused while loading, and what was loaded frozen only in the executable, which ends with its
command. Real parts: Python's own collector, in this process and in a child."""

import gc
import subprocess
import sys
import weakref

from research_pipeline.cli import collection


def test_loading_in_a_process_that_goes_on_pauses_the_collector_and_freezes_nothing():
    class Node:
        pass

    frozen_before = gc.get_freeze_count()
    assert gc.isenabled()
    with collection.loading():
        assert not gc.isenabled()
        cycle = Node()
        cycle.itself = cycle
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before  # the tests' process keeps collecting all
    gone = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert gone() is None  # the loading's cycle is collected once it is garbage


def test_loading_in_the_executable_freezes_what_it_loaded_and_collects_what_comes_after():
    script = (
        "import gc\n"
        "from research_pipeline.cli import collection\n"
        "collection.freeze_after_loading()\n"
        "with collection.loading():\n"
        "    loaded = [object() for _ in range(1000)]\n"
        "    paused = not gc.isenabled()\n"
        "print(paused, gc.isenabled(), gc.get_freeze_count() >= 1000)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["True", "True", "True"], done.stdout + done.stderr


def test_loading_leaves_a_collector_someone_else_disabled_as_it_was():
    gc.disable()
    try:
        with collection.loading():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
