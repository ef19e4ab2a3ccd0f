"""Charts drawn by a helper process that loaded matplotlib while the run did its other work.

A run's first chart cost 0.9 s in process: 0.6 s to import matplotlib and Pillow, 0.2 s for
the first drawing's fonts and caches, 0.1 s for the drawing itself (a second chart). The
helper is started when the run starts (the in-process executor initialises a run's resources
before its first step) and warms up with a chart of its own while the fetch goes on, on the
machine's other core: the summary step then waits for the drawing only. Charts are the same
bytes either way (one function draws them, `charts.render_cohort_chart`).

Whatever goes wrong with the helper (it could not start, died, answered nonsense, took over
a minute), the chart is drawn in process as before: the helper saves time, it is never needed.
It ends when the run ends, or when its parent dies (its input closes), and ignores Ctrl-C:
stopping is the parent's decision.
"""

import os
import pickle
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import date

from research_pipeline.charts import render_cohort_chart

ANSWER_SECONDS = 60.0  # a chart takes a tenth of a second: a helper this slow is stuck
_WARM_UP_ROWS = [(date(2026, 1, day), 1000 * day, 5000 * day, 10, day) for day in (1, 2, 4)]


class DrawingProcess:
    """`draw(cohort, rows)`: a chart's PNG, drawn by the helper when it can, else here."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self.drawn_by_helper = 0  # how many charts the helper drew (tests, benchmarks)

    def start(self) -> "DrawingProcess":
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "research_pipeline.drawing_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self._process = None  # no helper: every chart is drawn in process
        return self

    def draw(self, cohort: str, rows: list[tuple], panel: Sequence[tuple] = ()) -> bytes:
        png = self._ask_helper(cohort, rows, panel)
        if png is None:
            return render_cohort_chart(cohort, rows, panel)
        self.drawn_by_helper += 1
        return png

    def _ask_helper(self, cohort: str, rows: list[tuple], panel: Sequence[tuple]) -> bytes | None:
        process = self._process
        if process is None or process.poll() is not None:
            return None
        try:
            pickle.dump((cohort, rows, list(panel)), process.stdin)
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], ANSWER_SECONDS)
            if not ready:
                raise TimeoutError
            answer = pickle.load(process.stdout)
        except (OSError, EOFError, pickle.UnpicklingError, TimeoutError):
            self.close()
            return None
        return answer if isinstance(answer, bytes) else None

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()  # the helper's signal to end
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            process.stdout.close()

    def __enter__(self) -> "DrawingProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _serve() -> None:
    """The helper: warm up, then draw each (cohort, rows) read from stdin until it closes. A
    chart that fails to draw answers None (the parent draws it, and sees the error there)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox, outbox = sys.stdin.buffer, sys.stdout.buffer
    waiting, _, _ = select.select([inbox], [], [], 0)
    if not waiting:  # started ahead of its first chart (not by the step that needs it now)
        render_cohort_chart("warm-up", _WARM_UP_ROWS)
    while True:
        try:
            cohort, rows, panel = pickle.load(inbox)
        except EOFError:
            os._exit(0)  # nothing to flush or clean: an interpreter's teardown costs 0.2 s
        try:
            answer = render_cohort_chart(cohort, rows, panel)
        except Exception:
            answer = None
        pickle.dump(answer, outbox)
        outbox.flush()


if __name__ == "__main__":
    _serve()
