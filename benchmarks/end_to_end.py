"""End to end: a whole `research-pipeline snapshot` of --users users against the sequential
floor, side by side in one run.

Each pass, on the same emulator (its own process, --latency-ms per answer, limits off):
  - the snapshot: the CLI on a fresh warehouse and an existing Dagster home (the daily case),
    its users in one cohort, timed from the outside (interpreter start to exit);
  - a keep-alive sequential loop asking the same number of users (what researchers run today);
  - Dagster's floor (five chained no-op assets, benchmarks.fixed_cost), for what no run of our
    shape can go below.
The sequential floor is users x latency (no sequential client beats it); the ratio is that floor
over the snapshot's wall time, all costs of the snapshot included (Dagster, DuckDB, derived
tables, checks, chart).

Usage: .venv/bin/python -m benchmarks.end_to_end [--users 800] [--latency-ms 50] [--runs 3]
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.common import snapshot_command, start_emulator
from benchmarks.fetch_throughput import keep_alive_loop
from benchmarks.fixed_cost import FLOOR, _environment, _mmm, _timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=800)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    emulator, url = start_emulator(
        "--latency-ms", str(args.latency_ms), "--rate-limit", "off", "--daily-quota", "off"
    )
    snapshot, loop, floor = [], [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):  # interleaved: the same machine state
                folder = Path(tmp) / f"snapshot_{run}"
                env = _environment(folder, url, sys.executable, args.users, warm=True)
                snapshot.append(_timed(snapshot_command("bench"), env, folder))
                loop.append(keep_alive_loop(url, [f"loop_{run}_{i}" for i in range(args.users)]))
                folder = Path(tmp) / f"floor_{run}"
                env = _environment(folder, url, sys.executable, 1, warm=True)
                floor.append(_timed([sys.executable, "-c", FLOOR], env, folder))
    finally:
        emulator.kill()
    sequential_floor = args.users * args.latency_ms / 1000
    print(f"\n{args.users} users, {args.latency_ms:g} ms per answer, limits off, "
          f"{args.runs} passes interleaved (seconds min / median / max)")  # fmt: skip
    print("| measure | seconds | sequential floor / this |")
    print("|---|---|---|")
    print(f"| sequential floor ({args.users} x {args.latency_ms:g} ms) | {sequential_floor:.2f} "
          "| 1.00x |")  # fmt: skip
    for name, values in (
        ("keep-alive sequential loop (measured)", loop),
        ("`research-pipeline snapshot`, whole run", snapshot),
        ("Dagster's floor (5 no-op assets)", floor),
    ):
        ratio = sequential_floor / statistics.median(values)
        print(f"| {name} | {_mmm(values)} | {ratio:.2f}x |")
    ratios = ", ".join(f"{sequential_floor / value:.2f}x" for value in snapshot)
    print(f"per pass, sequential floor / snapshot: {ratios}")


if __name__ == "__main__":
    main()
