"""Per-cohort trajectories as a self-contained HTML page (inline SVG, no script, no network).

Written next to the warehouse and linked from each `tiktok/cohort_summary` materialization, so a
researcher can open the follower and likes curves of a cohort from the Dagster UI. Points sit at
their dates (panels refreshed in rotation are summarised on irregular days), a day without a
summary breaks the line instead of being drawn through, and each point tells its values on hover.
"""

import html
from datetime import date
from pathlib import Path

from research_pipeline.warehouse.queries import cohort_trajectories

WIDTH, HEIGHT, PAD_LEFT, PAD = 680, 240, 80, 36
COLOURS = ("#1f77b4", "#d62728")


def _x(day: date, first: date, last: date) -> float:
    span = max((last - first).days, 1)
    return PAD_LEFT + (day - first).days / span * (WIDTH - PAD_LEFT - PAD)


def _y(value: float, low: float, high: float) -> float:
    return HEIGHT - PAD - (value - low) / ((high - low) or 1.0) * (HEIGHT - 2 * PAD)


def _chart(title: str, rows: list[tuple], index: int, colour: str) -> str:
    days = [row[0] for row in rows]
    values = [float(row[index]) for row in rows]
    first, last, low, high = days[0], days[-1], min(values), max(values)
    runs: list[list[str]] = [[]]
    for n, (day, value) in enumerate(zip(days, values, strict=True)):
        if n and (day - days[n - 1]).days > 1:
            runs.append([])  # a day without a snapshot: no line across it
        runs[-1].append(f"{_x(day, first, last):.1f},{_y(value, low, high):.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>'
        for run in runs
        if len(run) > 1
    )
    dots = "".join(
        f'<circle cx="{_x(day, first, last):.1f}" cy="{_y(value, low, high):.1f}" r="3.5" '
        f'fill="{colour}"><title>{day}: {value:,.0f} ({row[3]:,} members, {row[4]:,} fresh)'
        "</title></circle>"
        for day, value, row in zip(days, values, rows, strict=True)
    )
    ticks = sorted({days[0], days[len(days) // 2], days[-1]})
    axes = (
        f'<line x1="{PAD_LEFT}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#999"/>'
        f'<line x1="{PAD_LEFT}" y1="{PAD}" x2="{PAD_LEFT}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        + "".join(
            f'<text x="{_x(d, first, last):.1f}" y="{HEIGHT - 12}" font-size="11" '
            f'text-anchor="middle">{d}</text>'
            for d in ticks
        )
        + f'<text x="{PAD_LEFT - 6}" y="{PAD + 4}" font-size="11" text-anchor="end">'
        f"{high:,.0f}</text>"
        f'<text x="{PAD_LEFT - 6}" y="{HEIGHT - PAD}" font-size="11" text-anchor="end">'
        f"{low:,.0f}</text>"
    )
    return (
        f"<h2>{html.escape(title)}</h2>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}">'
        f"{axes}{lines}{dots}</svg>"
    )


def write_cohort_chart(conn, cohort: str, until: date, out_dir: Path) -> Path | None:
    """Write `<out_dir>/<cohort>.html`; None when the cohort has no summary with data yet."""
    rows = cohort_trajectories(conn, cohort, until)
    if not rows:
        return None
    page = (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>Cohort {html.escape(cohort)}</title>"
        "<body style='font-family: sans-serif'>"
        f"<h1>Cohort {html.escape(cohort)}: {len(rows)} summarised days, up to {until}</h1>"
        f"{_chart('Total followers (all members, latest answer)', rows, 1, COLOURS[0])}"
        f"{_chart('Total likes (all members, latest answer)', rows, 2, COLOURS[1])}"
        "<p>Totals over every member's latest answer on or before each day "
        "(tiktok.cohort_summary); points sit at their dates and a day without a snapshot breaks "
        "the line. Hover a point for its values.</p>"
        "</body>"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{cohort}.html"
    path.write_text(page, encoding="utf-8")
    return path
