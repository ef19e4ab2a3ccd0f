"""Per-cohort trajectories, drawn with matplotlib, shown in the Dagster UI in one click.

Each `tiktok/cohort_summary` materialization carries its cohort's chart as a PNG inside
Markdown metadata (the UI's "Show Markdown" opens it: a `file://` link is refused by browsers
from a web page), and the same PNG is written next to the warehouse for use outside the UI.

Honest about what was measured: points sit at their dates, a day without a summary breaks the
line instead of being drawn through, and a third panel shows the share of members whose answer
was fresh within their cadence that day, so a curve built on stale answers (panels refreshed in
rotation, a quota cut short) looks it. The last value of each curve is written on it.
"""

import base64
import hashlib
import io
import math
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

from research_pipeline.member_days import STATUSES
from research_pipeline.wording import plural

WIDTH_INCHES, HEIGHT_INCHES, DPI = 7.5, 5.6, 80
PANEL_INCHES = 2.6  # the panel of member-days under the curves
COLOURS = ("#1f77b4", "#d62728", "#7f7f7f")
# Member-day groups (research_pipeline.member_days) and their colours in the panel.
GROUP_COLOURS = {
    "observed": "#2ca02c",
    "design": "#e6e6e6",
    "quota": "#ff7f0e",
    "account": "#9467bd",
    "infrastructure": "#d62728",
    "not run": "#222222",
}
MARGINS = {"left": 0.17, "right": 0.97, "top": 0.93, "bottom": 0.08, "hspace": 0.12}


def series_with_gaps(days: list[date], values: list[float]) -> tuple[list[date], list[float]]:
    """The points, with a NaN wherever days are missing between two summaries: matplotlib
    breaks a line at NaN, so no value is drawn for a day nobody measured."""
    out_days: list[date] = []
    out_values: list[float] = []
    for n, (day, value) in enumerate(zip(days, values, strict=True)):
        if n and (day - days[n - 1]).days > 1:
            out_days.append(days[n - 1] + timedelta(days=1))
            out_values.append(math.nan)
        out_days.append(day)
        out_values.append(value)
    return out_days, out_values


def render_cohort_chart(cohort: str, rows: list[tuple], panel: Sequence[tuple] = ()) -> bytes:
    """PNG of followers, likes and freshness per summarised day (`cohort_trajectories` rows),
    and, given `panel` ((day, username, status) of tiktok.panel_days), the panel as members x
    days coloured by status under them: a gap in a curve sits above its reason."""
    # Imported here: only the summary step draws, and matplotlib costs half a second to load.
    from matplotlib.figure import Figure

    days = [row[0] for row in rows]
    height = HEIGHT_INCHES + (PANEL_INCHES if panel else 0)
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    # Fixed margins, room for "250,000,000" on the y axis: a layout engine measured every label
    # again and took half the drawing time (0.2 s a chart, once per cohort per run).
    figure.subplots_adjust(**MARGINS)
    ratios = [3, 3, 1.6] + ([3] if panel else [])
    axes = figure.subplots(len(ratios), 1, sharex=True, height_ratios=ratios)
    _plot_totals(axes[:2], days, rows)
    _plot_freshness(axes[2], days, rows)
    if panel:
        _plot_panel(axes[3], panel)
    figure.suptitle(
        f"Cohort {cohort}: {plural(len(rows), 'summarised day')}, {days[0]} to {days[-1]} "
        f"({rows[-1][3]:,} members)",
        fontsize=10,
    )
    return _png(figure)


def _plot_totals(axes, days: list, rows: list[tuple]) -> None:
    """Total followers and likes, a gap where a day has no summary, the last value written."""
    from matplotlib.ticker import FuncFormatter

    thousands = FuncFormatter(lambda value, _: f"{value:,.0f}")
    for ax, index, title, colour in (
        (axes[0], 1, "total followers", COLOURS[0]),
        (axes[1], 2, "total likes", COLOURS[1]),
    ):
        xs, ys = series_with_gaps(days, [float(row[index]) for row in rows])
        ax.plot(xs, ys, color=colour, marker="o", markersize=3.5, linewidth=1.8)
        ax.set_ylabel(title)
        ax.yaxis.set_major_formatter(thousands)
        ax.grid(True, alpha=0.3)
        ax.annotate(
            f"{rows[-1][index]:,.0f}",
            (days[-1], float(rows[-1][index])),
            textcoords="offset points",
            xytext=(-4, 6),
            horizontalalignment="right",
            fontsize=8,
            color=colour,
        )


def _plot_freshness(ax, days: list, rows: list[tuple]) -> None:
    """The share of members fresh within their cadence, and the shared day axis."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DateFormatter, DayLocator
    from matplotlib.ticker import PercentFormatter

    fresh = [row[4] / row[3] if row[3] else 0.0 for row in rows]
    ax.bar(days, fresh, width=0.8, color=COLOURS[2])
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("fresh")
    ax.grid(True, axis="y", alpha=0.3)
    if len(days) == 1:  # one day: a span of days around it, ticks on days, not hours
        ax.set_xlim(days[0] - timedelta(days=1), days[0] + timedelta(days=1))
        ax.xaxis.set_major_locator(DayLocator())
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    else:
        locator = AutoDateLocator(minticks=3, maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _plot_panel(ax, panel: Sequence[tuple]) -> None:
    """Members (rows, by name) x days, each cell coloured by its status's group; a legend of
    the groups that occur."""
    from matplotlib.colors import ListedColormap
    from matplotlib.dates import date2num
    from matplotlib.patches import Patch

    members = sorted({username for _, username, _ in panel})
    first = min(day for day, _, _ in panel)
    last = max(day for day, _, _ in panel)
    width = (last - first).days + 1
    index = {name: i for i, name in enumerate(members)}
    codes = {group: n for n, group in enumerate(GROUP_COLOURS)}
    grid = [[math.nan] * width for _ in members]
    for day, username, status in panel:
        grid[index[username]][(day - first).days] = codes[_colour_group(status)]
    ax.imshow(
        grid,
        aspect="auto",
        interpolation="nearest",
        cmap=ListedColormap(list(GROUP_COLOURS.values())),
        vmin=-0.5,
        vmax=len(GROUP_COLOURS) - 0.5,
        extent=(date2num(first) - 0.5, date2num(last) + 0.5, len(members), 0),
    )
    ax.set_ylabel(f"members ({len(members):,})")
    ax.set_yticks([])
    seen = {_colour_group(status) for _, _, status in panel}
    ax.legend(
        handles=[Patch(color=c, label=g) for g, c in GROUP_COLOURS.items() if g in seen],
        loc="upper left",
        bbox_to_anchor=(0, -0.08),
        ncol=6,
        fontsize=7,
        frameon=False,
    )


def _colour_group(status: str) -> str:
    """The colour a status is drawn in: its group, a day not run apart (a hole in the panel)."""
    return "not run" if status == "not_run" else STATUSES[status][0]


def _png(figure) -> bytes:
    """The drawn figure as a PNG of 64 colours: a third of the bytes in every materialization
    event that carries it (Pillow comes with matplotlib). Taken from the drawn pixels, not
    from a full-colour PNG encoded and decoded again."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    out = io.BytesIO()
    pixels = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    pixels.convert("RGB").quantize(64).save(out, format="PNG", optimize=True)
    return out.getvalue()


def chart_markdown(cohort: str, png: bytes) -> str:
    """The chart as Markdown the Dagster UI renders (an inline image: no file, no server)."""
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f"![cohort {cohort}](data:image/png;base64,{encoded})\n\n"
        "Totals over every member's latest answer on or before each day "
        "(tiktok.cohort_summary); a day without a summary breaks the line; *fresh* is the share "
        "of members answered within their cadence; the bottom panel colours each member-day by "
        "why it has a value or not (tiktok.panel_days)."
    )


def write_cohort_chart(
    cohort: str,
    rows: list[tuple],
    out_dir: Path,
    draw: Callable[..., bytes] = render_cohort_chart,
    panel: Sequence[tuple] = (),
) -> tuple[Path, bytes] | None:
    """Write `<out_dir>/<cohort>.png` of the cohort's `cohort_trajectories` rows with `draw`;
    returns its path and bytes, or None when the cohort has no summary with data yet. A chart
    whose data and drawing code are those it was last drawn from is kept as it is (a later tick
    or a re-run that changed nothing of this cohort costs no matplotlib: 0.7 s to import, 0.25 s
    to draw): `<cohort>.png.source` holds their hash."""
    if not rows:
        return None
    path = out_dir / f"{cohort}.png"
    source = path.with_name(path.name + ".source")
    drawn_from = hashlib.sha256(_DRAWING + repr((cohort, rows, panel)).encode()).hexdigest()
    if path.is_file() and source.is_file() and source.read_text().strip() == drawn_from:
        return path, path.read_bytes()
    png = draw(cohort, rows, panel)
    out_dir.mkdir(parents=True, exist_ok=True)
    source.unlink(missing_ok=True)  # never a hash beside a chart it was not drawn from
    partial = path.with_suffix(".png.partial")
    partial.write_bytes(png)
    partial.replace(path)
    source.write_text(drawn_from + "\n")
    (out_dir / f"{cohort}.html").unlink(missing_ok=True)  # the hand-drawn page of earlier releases
    return path, png


# The drawing code itself: a release that draws differently draws every chart again.
_DRAWING = Path(__file__).read_bytes()


def withdraw_cohort_charts(out_dir: Path, cohorts: list[str]) -> None:
    """Delete the charts of `cohorts` (their totals changed: accounts were forgotten); each is
    drawn again from the new summaries by the cohort's next `cohort_summary` step, in the same
    run when the cohort is part of it. Cheaper than drawing them here only to draw them again.
    No folder there (or a file in its place): nothing to withdraw."""
    if not out_dir.is_dir():
        return
    for cohort in cohorts:
        for name in (f"{cohort}.png", f"{cohort}.png.source", f"{cohort}.html"):
            (out_dir / name).unlink(missing_ok=True)
