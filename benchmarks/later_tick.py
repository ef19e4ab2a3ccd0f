"""A later snapshot of the same day with nothing new (a schedule's later tick, a re-run): what
drawing each chart only when its data changed saves, side by side in one run.

Each pass, on fresh folders and one emulator (its own process, no latency, limits off): a first
`research-pipeline snapshot` of a --users cohort (untimed), then a second one, timed from the
outside, either as it is (the chart's data unchanged: the chart is kept) or with the chart's
hash removed before it (the chart drawn again, as every run did before).

Usage: .venv/bin/python -m benchmarks.later_tick [--runs 3] [--users 10]
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.common import snapshot_command, start_emulator
from benchmarks.fixed_cost import _environment, _mmm, _timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=10)
    args = parser.parse_args()
    emulator, url = start_emulator("--rate-limit", "off", "--daily-quota", "off")
    times: dict[str, list[float]] = {"chart kept": [], "chart drawn again": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                for variant in times:  # interleaved: the same machine state
                    folder = Path(tmp) / f"{variant.replace(' ', '_')}_{run}"
                    env = _environment(folder, url, sys.executable, args.users, warm=True)
                    _timed(snapshot_command("bench"), env, folder)
                    if variant == "chart drawn again":
                        for source in (folder / "data" / "charts").glob("*.png.source"):
                            source.unlink()
                    times[variant].append(_timed(snapshot_command("bench"), env, folder))
    finally:
        emulator.kill()
    kept, drawn = (statistics.median(times[v]) for v in times)
    print(f"\nsecond snapshot of the day, {args.users} users, nothing new, {args.runs} passes")
    print("| variant | seconds min / median / max |")
    print("|---|---|")
    for variant, values in times.items():
        print(f"| {variant} | {_mmm(values)} |")
    print(f"drawn again / kept (median): {drawn / kept:.2f}x, {drawn - kept:.2f} s a run")


if __name__ == "__main__":
    main()
