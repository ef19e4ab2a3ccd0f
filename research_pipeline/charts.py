"""Per-cohort trajectories as a self-contained HTML page (inline SVG, no script, no network).

Written next to the warehouse and linked from each `tiktok/cohort_summary` materialization, so a
researcher can open the follower and likes curves of a cohort from the Dagster UI.
"""

import html
from datetime import date
from pathlib import Path

from research_pipeline.warehouse.queries import cohort_trajectories

WIDTH, HEIGHT, PAD = 640, 220, 40
COLOURS = ("#1f77b4", "#d62728")


def _polyline(values: list[float], colour: str) -> str:
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    points = " ".join(
        f"{PAD + i * step:.1f},{HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD):.1f}"
        for i, v in enumerate(values)
    )
    dots = "".join(
        f'<circle cx="{PAD + i * step:.1f}" '
        f'cy="{HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD):.1f}" r="3" fill="{colour}"/>'
        for i, v in enumerate(values)
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>{dots}'


def _chart(title: str, days: list[date], values: list[float], colour: str) -> str:
    axis = (
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#999"/>'
        f'<text x="{PAD}" y="{HEIGHT - 10}" font-size="11">{days[0]}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 10}" font-size="11" text-anchor="end">'
        f"{days[-1]}</text>"
        f'<text x="{PAD}" y="{PAD - 8}" font-size="11">max {max(values):,.0f}</text>'
        f'<text x="{WIDTH - PAD}" y="{PAD - 8}" font-size="11" text-anchor="end">'
        f"min {min(values):,.0f}</text>"
    )
    return (
        f"<h2>{html.escape(title)}</h2>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}">'
        f"{axis}{_polyline(values, colour)}</svg>"
    )


def write_cohort_chart(conn, cohort: str, until: date, out_dir: Path) -> Path | None:
    """Write `<out_dir>/<cohort>.html`; None when the cohort has no ok rows yet."""
    rows = cohort_trajectories(conn, cohort, until)
    if not rows:
        return None
    days = [row[0] for row in rows]
    page = (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>Cohort {html.escape(cohort)}</title>"
        "<body style='font-family: sans-serif'>"
        f"<h1>Cohort {html.escape(cohort)}: {len(days)} snapshots, up to {until}</h1>"
        f"{_chart('Total followers (ok users)', days, [float(r[1]) for r in rows], COLOURS[0])}"
        f"{_chart('Total likes (ok users)', days, [float(r[2]) for r in rows], COLOURS[1])}"
        "<p>Totals over the users that answered on each day; see tiktok.cohort_summary.</p>"
        "</body>"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{cohort}.html"
    path.write_text(page, encoding="utf-8")
    return path
