"""Cohort charts: gaps stay gaps, and the PNG the UI shows is a real image of the right size."""

import io
import math
from datetime import UTC, date, datetime

from PIL import Image

from research_pipeline.charts import (
    DPI,
    GROUP_COLOURS,
    HEIGHT_INCHES,
    PANEL_INCHES,
    WIDTH_INCHES,
    chart_markdown,
    render_cohort_chart,
    series_with_gaps,
)

D = [date(2026, 11, day) for day in (1, 2, 5, 6)]


def test_a_day_without_a_summary_breaks_the_line():
    days, values = series_with_gaps(D, [1.0, 2.0, 5.0, 6.0])
    assert days == [D[0], D[1], date(2026, 11, 3), D[2], D[3]]
    assert values[:2] == [1.0, 2.0] and math.isnan(values[2]) and values[3:] == [5.0, 6.0]


def test_consecutive_days_are_drawn_as_they_are():
    assert series_with_gaps(D[:2], [1.0, 2.0]) == (D[:2], [1.0, 2.0])


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_the_chart_is_a_png_the_ui_can_show_inline():
    rows = [(day, 1000 * n, 5000 * n, 10, n * 2) for n, day in enumerate(D, start=1)]
    png = render_cohort_chart("news", rows)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (round(WIDTH_INCHES * DPI), round(HEIGHT_INCHES * DPI))
    assert len(set(image.convert("RGB").getdata())) > 10  # something was drawn, not blank
    assert render_cohort_chart("news", rows[:1])[:4] == b"\x89PNG"  # one day draws too
    # With the panel under the curves: members x days by status, a taller chart.
    panel = [(day, f"u{m}", status) for day in D for m, status in
             enumerate(("observed", "not_due", "deferred", "not_run", "forgotten"))]  # fmt: skip
    tall = Image.open(io.BytesIO(render_cohort_chart("news", rows, panel)))
    assert tall.size == (round(WIDTH_INCHES * DPI), round((HEIGHT_INCHES + PANEL_INCHES) * DPI))
    colours = set(tall.convert("RGB").getdata())
    assert all(_rgb(GROUP_COLOURS[g]) in colours for g in ("observed", "quota", "not run"))
    assert chart_markdown("news", png).startswith("![cohort news](data:image/png;base64,")


def test_a_chart_is_drawn_again_only_when_its_data_changed(tmp_path):
    from research_pipeline import warehouse as wh
    from research_pipeline.charts import write_cohort_chart
    from research_pipeline.tiktok.models import Outcome, UserInfoResult
    from research_pipeline.warehouse import queries

    def answer(followers):
        fields = {"follower_count": followers, "following_count": 1, "likes_count": 2,
                  "video_count": 3}  # fmt: skip
        return UserInfoResult("a", Outcome.OK, "ok", datetime.now(UTC), fields=fields)

    def drawn():
        rows = queries.cohort_trajectories(conn, "x", D[1])
        path, png = write_cohort_chart("x", rows, tmp_path / "charts")
        return path.stat().st_ino, png

    with wh.connect(tmp_path / "w.duckdb") as conn:
        for day, followers in ((D[0], 10), (D[1], 20)):
            wh.save_fetched(conn, [(day, "x", answer(followers))], [])
            wh.finish_snapshots(conn, {(day, "x"): ["a"]})
            wh.derive(conn, "cohort_summary", [(day, "x")])
        first, png = drawn()
        assert drawn() == (first, png)  # same data: the file is kept, not written again
        wh.save_fetched(conn, [(D[1], "x", answer(25))], [])  # a re-run changed the day
        wh.finish_snapshots(conn, {(D[1], "x"): ["a"]})
        wh.derive(conn, "cohort_summary", [(D[1], "x")])
        again, redrawn = drawn()
    assert again != first and redrawn != png  # new data: drawn again


ROWS = [(day, 1000 * n, 5000 * n, 10, n * 2) for n, day in enumerate(D, start=1)]


def test_the_helper_process_draws_the_same_chart_and_ends_with_its_run():
    from research_pipeline.drawing_process import DrawingProcess

    with DrawingProcess() as drawing:
        helper = drawing._process
        assert drawing.draw("news", ROWS) == render_cohort_chart("news", ROWS)
        assert drawing.draw("other", ROWS[:1]) == render_cohort_chart("other", ROWS[:1])
        assert drawing.drawn_by_helper == 2
    assert helper.returncode == 0  # ended when its input closed, not killed


def test_a_chart_is_drawn_in_process_when_the_helper_is_gone():
    from research_pipeline.drawing_process import DrawingProcess

    with DrawingProcess() as drawing:
        drawing._process.kill()
        drawing._process.wait()
        assert drawing.draw("news", ROWS) == render_cohort_chart("news", ROWS)
        assert drawing.drawn_by_helper == 0


def test_the_helper_ends_when_the_process_that_started_it_dies(tmp_path):
    """A run killed with SIGKILL leaves no helper behind: its input closes, it leaves."""
    import os
    import select
    import subprocess
    import sys

    script = (
        "import os\n"
        "from research_pipeline.drawing_process import DrawingProcess\n"
        "print(DrawingProcess().start()._process.pid, flush=True)\n"
        "os._exit(0)\n"  # no close(): as if killed
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    try:
        helper = os.pidfd_open(int(done.stdout))  # readable once the process has ended
    except ProcessLookupError:
        return  # already gone
    try:
        # 60 s: a bound for a loaded machine (the helper first loads matplotlib), no timing claim
        ended, _, _ = select.select([helper], [], [], 60)
    finally:
        os.close(helper)
    assert ended, "the helper outlived the process that started it"
