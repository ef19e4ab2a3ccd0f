"""What the quota's bad days cost, in requests, before and after: this tree's CLI beside the
previous landing's (commit BEFORE, checked out in a temporary git worktree), each scenario
against the same emulator (this tree's, in its own process: it has the outage and quota-code
knobs), each version on its own DAGSTER_HOME and warehouse.

    .venv/bin/python -m benchmarks.quota_under_trouble [--runs 3]

Scenarios (issue 20): every answer 500 for 200 users; the API's own quota code with quota 30
for 80 users, then a later tick; one user that always fails, three runs the same day; Ctrl-C
once at about 30% of 242 users (80 answers a second). Requests are the emulator's count.
"""

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import requests

from benchmarks.common import cli_env, release_checkout, start_emulator, stats

BEFORE = "5646138"  # the landing before this round (2026-12-03): before the journal and session


def configure(url: str, **values) -> None:
    requests.post(url + "/emulator/config", json=values, timeout=10).raise_for_status()
    requests.post(url + "/emulator/stats/reset", timeout=10).raise_for_status()


def env_for(folder: Path, url: str) -> dict:
    """The CLI's environment; waits between retries are short (they change no request count)."""
    return cli_env(
        folder, url, TIKTOK_BACKOFF_BASE_SECONDS="0.01", RESEARCH_PIPELINE_RETRY_DELAY_SECONDS="0"
    )


def snapshot(python: str, env: dict, timeout: float = 900) -> tuple[int, str]:
    # cwd: the DAGSTER_HOME's folder, never this checkout (`-m` would import this tree's code)
    done = subprocess.run(
        [python, "-m", "research_pipeline.cli", "snapshot"], cwd=env["DAGSTER_HOME"],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def users(n: int, offset: int) -> list[str]:
    return [f"user_{i}" for i in range(offset, offset + n)]


def write_cohort(folder: Path, names: list[str]) -> None:
    (folder / "cohorts" / "panel.txt").write_text("\n".join(names) + "\n")


def outage(python: str, url: str, folder: Path, offset: int) -> dict:
    env = env_for(folder, url)
    write_cohort(folder, users(200, offset))
    configure(url, outage_requests=100_000, latency_seconds=0.0, daily_quota=None)
    started = time.monotonic()
    rc, _ = snapshot(python, env)
    return {"requests": stats(url)["user_info_requests"], "rc": rc,
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


def quota_code(python: str, url: str, folder: Path, offset: int) -> dict:
    env = env_for(folder, url)
    write_cohort(folder, users(80, offset))
    configure(url, outage_requests=0, daily_quota=30, quota_answer="quota_code")
    # A day of its own: the emulator's count of the quota starts again (an earlier day, since
    # partitions exist up to this machine's today only).
    day = date.today() - timedelta(days=1 + (offset // 300) % 28)
    requests.post(url + "/emulator/clock", json={"date": day.isoformat()}, timeout=10)
    rc, _ = snapshot(python, env)
    first = stats(url)
    rc2, _ = snapshot(python, env)  # a later tick, the same day
    second = stats(url)["user_info_requests"] - first["user_info_requests"]
    refused = first["by_outcome"].get("daily_quota_code", 0)
    return {"after_code": refused, "later_tick": second, "rc": (rc, rc2)}


def failing_user(python: str, url: str, folder: Path, offset: int) -> dict:
    names = users(20, offset)
    env = env_for(folder, url)
    write_cohort(folder, names)
    configure(url, daily_quota=None, quota_answer="generic", failing_usernames=[names[0]])
    for _ in range(3):
        snapshot(python, env)
    return {"requests": sum(stats(url)["by_username"].get(names[0], {}).values())}


def ctrl_c(python: str, url: str, folder: Path, offset: int) -> dict:
    names = users(242, offset)
    env = env_for(folder, url)
    write_cohort(folder, names)
    configure(url, failing_usernames=[], latency_seconds=0.1)
    process = subprocess.Popen(
        [python, "-m", "research_pipeline.cli", "snapshot"], env=env, cwd=env["DAGSTER_HOME"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    while stats(url)["by_outcome"].get("ok", 0) < 73:  # about 30%
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    presses = 1
    at_signal = stats(url)["user_info_requests"]
    while True:
        try:
            rc = process.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            presses += 1
            process.send_signal(signal.SIGINT)
            if presses > 6:
                process.kill()
                rc = process.wait()
                break
    after = stats(url)["user_info_requests"] - at_signal
    configure(url, latency_seconds=0.0)
    return {"rc": rc, "ctrl_c_presses": presses, "requests_after_signal": after}


SCENARIOS = {"outage": outage, "quota_code": quota_code, "failing_user": failing_user,
             "ctrl_c": ctrl_c}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    emulator, url = start_emulator("--daily-quota", "off", "--rate-limit", "off")
    results: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp, release_checkout(Path(tmp), BEFORE) as (_, old):
            offset = 0
            for run in range(runs):
                for name, scenario in SCENARIOS.items():
                    for version, python in (("before", old), ("after", sys.executable)):
                        offset += 300  # new usernames: no history shared between scenarios
                        folder = Path(tmp) / f"{name}-{version}-{run}"
                        outcome = scenario(python, url, folder, offset)
                        results.setdefault((name, version), []).append(outcome)
                        print(f"run {run + 1} {name:<13} {version:<6} {outcome}", flush=True)
    finally:
        emulator.terminate()
    print("\nscenario       measure                 before (min/median/max)   after")
    for name in SCENARIOS:
        for measure in results[(name, "after")][0]:
            cells = []
            for version in ("before", "after"):
                values = [r[measure] for r in results[(name, version)]]
                if all(isinstance(v, int | float) for v in values):
                    cells.append(f"{min(values)} / {statistics.median(values)} / {max(values)}")
                else:
                    cells.append(", ".join(map(str, values)))
            print(f"{name:<14} {measure:<23} {cells[0]:<25} {cells[1]}")


if __name__ == "__main__":
    main()
