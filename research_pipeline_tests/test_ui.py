"""The Dagster UI in a real browser: `dagster dev` on 127.0.0.1 over a real snapshot, driven by
headless Chromium (Debian's) through Playwright; and a two-cohort backfill through GraphQL."""

import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
import requests
from dagster import DagsterInstance

from research_pipeline.definitions import load_project_defs
from research_pipeline.orchestration.runs import register_cohorts, run_snapshot
from research_pipeline_tests.helpers import (
    find_usernames,
    pipeline_environment,
)
from research_pipeline_tests.services import (
    CHROMIUM,
    dagster_dev,
    free_port,
    spawn,
    stop,
    wait_for_server,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DOC_IMAGES = REPO / "docs" / "img"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}"""
# The backfill's runs, by the tag Dagster puts on them: their end is known as soon as they end
# (the backfill's own status waits for the daemon's next pass, up to 30 s later).
BACKFILL_RUNS = """
query ($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    __typename
    ... on Runs { results { runId status } }
    ... on PythonError { message }
  }
}"""
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
ASSETS = [
    ["tiktok", n]
    for n in ("user_info", "follower_snapshots", "engagement_snapshots", "cohort_summary")
]


def graphql(url: str, query: str, variables: dict) -> dict:
    answer = requests.post(
        url + "/graphql", json={"query": query, "variables": variables}, timeout=60
    )
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]


def shown_metadata(text: str) -> dict[str, str]:
    """Label -> value of the metadata table as the UI renders it (a label line, then its value
    on the next non-blank line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return {label: value for label, value in zip(lines, lines[1:], strict=False)}


def new_page(browser):
    """A page that has already dismissed the newsletter dialog Dagster shows a new browser on
    127.0.0.1 a second after load (its own flag in localStorage), over whatever we look at."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.add_init_script("window.localStorage.setItem('communityNux', '1')")
    return page


@pytest.fixture
def ui(tmp_path, emulator, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/ensure-test-services)")
    home, cohorts = tmp_path / "dagster_home", tmp_path / "cohorts"
    database = tmp_path / "data" / "research.duckdb"
    home.mkdir()
    cohorts.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    users = find_usernames(emulator, "active", 7)
    members = {"alpha": users[0:2], "beta": users[2:4], "gamma": users[4:7]}  # sizes differ
    for name, names in members.items():
        (cohorts / f"{name}.txt").write_text("\n".join(names) + "\n")
    settings = pipeline_environment(emulator, cohorts, database)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with DagsterInstance.from_config(str(home)) as instance:
        defs = load_project_defs()
        assert run_snapshot(defs, instance, emulator.clock.today(), ["alpha"])[0].success
        register_cohorts(instance, ["beta", "gamma"])
    env = {
        "PATH": str(Path(shutil.which("python3") or "/usr/bin/python3").parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DAGSTER_HOME": str(home),
        **settings,
    }
    with dagster_dev(env, REPO) as url:
        yield url, database, emulator.clock.today(), members


def test_asset_graph_partitions_and_a_graphql_backfill(ui, tmp_path):
    from playwright.sync_api import sync_playwright

    url, database, today, members = ui
    # The README's screenshots: refreshed when missing or asked for, so a test run leaves the
    # working tree as it was.
    refresh = os.environ.get("RESEARCH_PIPELINE_SCREENSHOTS") == "1"
    shots = DOC_IMAGES if refresh or not (DOC_IMAGES / "partitions.png").exists() else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = new_page(browser)
        # Waiting for given texts, not for "network idle": the UI keeps polling.
        page.goto(f"{url}/asset-groups/tiktok", wait_until="domcontentloaded")
        for name in ("user_info", "follower_snapshots", "engagement_snapshots", "cohort_summary"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "asset-graph.png"))
        page.goto(f"{url}/assets/tiktok/user_info?view=partitions", wait_until="domcontentloaded")
        page.get_by_text("alpha", exact=False).first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "partitions.png"))
        browser.close()
    assert (shots / "asset-graph.png").stat().st_size > 10_000

    keys = [f"{cohort}|{today}" for cohort in ("beta", "gamma")]
    runs = backfill(url, keys, "two cohorts from the test")
    assert [run["status"] for run in runs] == ["SUCCESS"], runs  # one run for both cohorts
    with duckdb.connect(str(database), read_only=True) as conn:
        cohorts = conn.execute(
            "SELECT cohort, count(*) FROM tiktok.cohort_summary GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert cohorts == [("alpha", 1), ("beta", 1), ("gamma", 1)]

    # One run materialized beta and gamma: each partition's page shows that cohort's own rows.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = new_page(browser)
        for cohort in ("beta", "gamma"):
            key = quote(f"{cohort}|{today}")
            page.goto(
                f"{url}/assets/tiktok/user_info?view=partitions&partition={key}",
                wait_until="domcontentloaded",
            )
            page.get_by_text("requests_spent").first.wait_for(timeout=60_000)
            shown = shown_metadata(page.inner_text("body"))
            size = str(len(members[cohort]))  # beta has 2 members, gamma 3
            assert (shown["rows"], shown["members"], shown["requests_spent"]) == (size,) * 3
            assert shown["run_requests_spent"] == "5"  # the run's total, named as such
        # The cohort's chart, one click from its summary partition: a real image, drawn.
        key = quote(f"beta|{today}")
        page.goto(
            f"{url}/assets/tiktok/cohort_summary?view=partitions&partition={key}",
            wait_until="domcontentloaded",
        )
        page.get_by_text("chart_file", exact=True).wait_for(timeout=60_000)
        chart_row = page.locator("tr", has=page.get_by_text("chart", exact=True))
        chart_row.get_by_text("[Show Markdown]").first.click(timeout=60_000)
        image = page.locator("img[alt='cohort beta']")
        image.wait_for(timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector(\"img[alt='cohort beta']\")?.naturalWidth > 0",
            timeout=30_000,
        )
        assert image.evaluate("img => img.naturalWidth") == 600  # the PNG's own size
        page.screenshot(path=str(shots / "chart.png"), animations="disabled")
        browser.close()


def test_make_demo_ui_runs_a_two_cohort_backfill_launched_from_the_ui(tmp_path):
    """The README's tour: `make demo-ui` and a backfill of both sample cohorts, with nothing
    exported by hand: the UI's runs reach the demo's own emulator (no `make demo` first, so
    every row comes from the UI's run)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/ensure-test-services)")
    from playwright.sync_api import sync_playwright

    demo = tmp_path / "demo"
    env = {**os.environ, "RESEARCH_PIPELINE_DEMO_DIR": str(demo), "HOME": str(tmp_path)}
    for name in [n for n in env if n.startswith(("TIKTOK_", "DAGSTER_"))]:
        del env[name]  # nothing set by hand
    command = [sys.executable, "-m", "research_pipeline.cli"]
    port = free_port()
    log = open(tmp_path / "demo-ui.log", "w")  # noqa: SIM115
    process = spawn([*command, "demo-ui", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, process, log)
        with sync_playwright() as playwright:  # what the newcomer sees first: the asset graph
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = new_page(browser)
            page.goto(f"{url}/asset-groups/tiktok", wait_until="domcontentloaded")
            page.get_by_text("user_info", exact=True).first.wait_for(timeout=60_000)
            browser.close()
        today = datetime.now(UTC).date()
        cohorts = sorted(p.stem for p in (REPO / "examples" / "cohorts").iterdir())
        wait_for_partitions(demo / "dagster_home", cohorts)  # the cohort sensor registers them
        runs = backfill(url, [f"{cohort}|{today}" for cohort in cohorts], "the demo's tour")
        assert [run["status"] for run in runs] == ["SUCCESS"], (runs, log_tail(demo))
    finally:
        stop(process, grace_seconds=5.0)
        log.close()
    with duckdb.connect(str(demo / "research.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "SELECT cohort, count(*) FROM tiktok.cohort_summary WHERE snapshot_date = ? "
            "GROUP BY ALL ORDER BY 1",
            [today],
        ).fetchall()
    assert [cohort for cohort, _ in rows] == cohorts


def wait_for_partitions(home: Path, cohorts: list[str]) -> None:
    deadline = time.monotonic() + 180
    with DagsterInstance.from_config(str(home)) as instance:
        while sorted(instance.get_dynamic_partitions("cohorts")) != cohorts:
            assert time.monotonic() < deadline, "the cohort sensor never registered the cohorts"
            time.sleep(1)


def backfill(url: str, partition_keys: list[str], title: str) -> list[dict]:
    """Launch a backfill of every asset over `partition_keys` through the UI's own GraphQL (what
    its Materialize dialog sends), and wait for its runs."""
    params = {
        "partitionNames": partition_keys,
        "assetSelection": [{"path": p} for p in ASSETS],
        "fromFailure": False,
        "title": title,
    }
    launched = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return wait_for_backfill(url, launched["backfillId"])


def wait_for_backfill(url: str, backfill_id: str) -> list[dict]:
    deadline, runs = time.monotonic() + 240, []
    while time.monotonic() < deadline:
        runs = graphql(url, BACKFILL_RUNS, {"id": backfill_id})["runsOrError"]["results"]
        if runs and all(run["status"] in FINISHED for run in runs):
            break
        time.sleep(0.5)
    return runs


def log_tail(demo: Path) -> str:
    logs = sorted((demo / "dagster_home").rglob("*.err"))
    return logs[-1].read_text()[-2000:] if logs else ""
