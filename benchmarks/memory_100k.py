"""Memory and speed of one large snapshot: a 100,000-user cohort through the whole pipeline.

The emulator runs in its own process with no latency and no limits; `research-pipeline snapshot`
runs in a child process whose peak RSS is read when it exits.
Usage: .venv/bin/python -m benchmarks.memory_100k [--users 100000]
"""

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import cli_env, snapshot_command, start_emulator, stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    emulator, url = start_emulator("--rate-limit", "off", "--daily-quota", "off")
    try:
        with tempfile.TemporaryDirectory() as folder:
            env = cli_env(Path(folder), url)
            cohort = Path(folder) / "cohorts" / "big.txt"
            cohort.write_text("".join(f"bench_user_{i}\n" for i in range(args.users)))
            started = time.perf_counter()
            done = subprocess.run(snapshot_command("big"), env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            served = stats(url)["user_info_requests"]
    finally:
        emulator.terminate()
    print(f"{args.users} users, one snapshot run (raw + derived + checks), emulator no latency")
    print(
        f"wall time {elapsed:.1f}s, {args.users / elapsed:.0f} users/s, "
        f"{served / args.users:.2f} requests per user"
    )
    print(f"peak RSS of the pipeline process: {peak_mb:.0f} MB (target < 400 MB)")


if __name__ == "__main__":
    main()
