"""Cohort charts: gaps stay gaps, and the PNG the UI shows is a real image of the right size."""

import io
import math
from datetime import UTC, date, datetime

from PIL import Image

from research_pipeline.charts import (
    DPI,
    HEIGHT_INCHES,
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


def test_the_chart_is_a_png_the_ui_can_show_inline():
    rows = [(day, 1000 * n, 5000 * n, 10, n * 2) for n, day in enumerate(D, start=1)]
    png = render_cohort_chart("news", rows)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (round(WIDTH_INCHES * DPI), round(HEIGHT_INCHES * DPI))
    assert len(set(image.convert("RGB").getdata())) > 10  # something was drawn, not blank
    assert render_cohort_chart("news", rows[:1])[:4] == b"\x89PNG"  # one day draws too
    assert chart_markdown("news", png).startswith("![cohort news](data:image/png;base64,")


def test_a_chart_is_drawn_again_only_when_its_data_changed(tmp_path):
    from research_pipeline import warehouse as wh
    from research_pipeline.charts import write_cohort_chart
    from research_pipeline.tiktok.models import Outcome, UserInfoResult

    def answer(followers):
        fields = {"follower_count": followers, "following_count": 1, "likes_count": 2,
                  "video_count": 3}  # fmt: skip
        return UserInfoResult("a", Outcome.OK, "ok", datetime.now(UTC), fields=fields)

    def drawn():
        path, png = write_cohort_chart(conn, "x", D[1], tmp_path / "charts")
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
