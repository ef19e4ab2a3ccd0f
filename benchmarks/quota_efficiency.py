"""Quota efficiency: requests spent per user, with and without faults, and after a kill.

Each variant runs `research-pipeline snapshot` on a fresh DuckDB file and Dagster instance
against an emulator in its own process (no limits), and counts what the emulator served. The
faulty variant runs once per emulator seed (--seeds): with each request failing independently
with probability p and up to A attempts per user, the expected requests per user are
(1 - p^A) / (1 - p), printed beside the measured ones.
Usage: .venv/bin/python -m benchmarks.quota_efficiency [--users 1000] [--seeds 1 2 3 4 5]
"""

import argparse
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.common import cli_env, snapshot_command, start_emulator, stats
from research_pipeline.tiktok import ClientSettings


def run_cohort(url: str, folder: Path, users: list[str]) -> None:
    env = cli_env(folder, url)
    (folder / "cohorts" / "bench.txt").write_text("\n".join(users) + "\n")
    done = subprocess.run(snapshot_command("bench"), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:])


def ok_users(url: str) -> int:
    return sum(1 for c in stats(url)["by_username"].values() if c.get("ok"))


def killed_and_resumed(url: str, folder: Path, users: list[str]) -> tuple[int, int, int]:
    """Kill a run after a third of the answers, resume it; requests spent on stored users."""
    env = cli_env(folder, url)
    (folder / "cohorts" / "bench.txt").write_text("\n".join(users) + "\n")
    process = subprocess.Popen(snapshot_command("bench"), env=env, stdout=subprocess.DEVNULL)
    while stats(url)["by_outcome"].get("ok", 0) < len(users) // 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    database = folder / "data" / "research.duckdb"
    with duckdb.connect(str(database), read_only=True) as conn:
        stored = {u for (u,) in conn.execute("SELECT username FROM tiktok.user_info").fetchall()}
    before = stats(url)["by_username"]
    subprocess.run(snapshot_command("bench"), env=env, check=True, capture_output=True)
    after = stats(url)["by_username"]
    on_stored = sum(sum(after[u].values()) - sum(before[u].values()) for u in stored)
    asked_again = sum(1 for u in users if after[u].get("ok", 0) > 1)
    return len(stored), on_stored, asked_again


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--error-rate", type=float, default=0.1)
    args = parser.parse_args()
    rows = []
    variants = [("no faults", [])] + [
        (f"{args.error_rate:.0%} HTTP 500, seed {seed}",
         ["--error-rate", str(args.error_rate), "--seed", str(seed)])
        for seed in args.seeds
    ]  # fmt: skip
    for label, options in variants:
        emulator, url = start_emulator("--rate-limit", "off", "--daily-quota", "off", *options)
        try:
            users = [f"quota_user_{i}" for i in range(args.users)]
            with tempfile.TemporaryDirectory() as folder:
                run_cohort(url, Path(folder), users)
            served = stats(url)["user_info_requests"]
            rows.append((label, served, ok_users(url), served / args.users))
        finally:
            emulator.kill()
    emulator, url = start_emulator(
        "--rate-limit", "off", "--daily-quota", "off", "--latency-ms", "20"
    )
    try:
        users = [f"kill_user_{i}" for i in range(args.users)]
        with tempfile.TemporaryDirectory() as folder:
            stored, on_stored, asked_again = killed_and_resumed(url, Path(folder), users)
        served = stats(url)["user_info_requests"]
    finally:
        emulator.kill()
    print(f"{args.users} users per variant")
    print(f"{'variant':<28} {'requests':>9} {'users ok':>9} {'requests/user':>14}")
    for label, served_n, ok_n, ratio in rows:
        print(f"{label:<28} {served_n:>9} {ok_n:>9} {ratio:>14.3f}")
    faulty = [ratio for label, _, _, ratio in rows[1:]]
    p, attempts = args.error_rate, ClientSettings(client_key="k", client_secret="s").max_attempts
    expected = (1 - p**attempts) / (1 - p)
    print(
        f"{args.error_rate:.0%} HTTP 500 over {len(faulty)} seeds: requests/user min "
        f"{min(faulty):.3f} / median {statistics.median(faulty):.3f} / max {max(faulty):.3f}; "
        f"mean {statistics.mean(faulty):.3f}; expected (1 - p^{attempts}) / (1 - p) = "
        f"{expected:.3f}"
    )
    print(f"{'killed at 1/3, then resumed':<28} {served:>9} {'':>9} {served / args.users:>14.3f}")
    print(
        f"  rows stored at the kill: {stored}; requests the resumed run spent on them: "
        f"{on_stored}; users answered twice (answered, not yet saved): {asked_again}"
    )


if __name__ == "__main__":
    main()
