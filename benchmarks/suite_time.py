"""Wall time of the whole test suite: this tree's `make test` command against the release of
2026-11-24 (the suite issue 14 measured at 188 s), side by side on the same machine and the
same installed libraries, interleaved, so a slower day slows both.

The release runs from a temporary git worktree as its own `make test` ran it (`python -m
pytest`, its own pytest settings: one process); this tree with its settings (pyproject.toml:
xdist workers). Each run prints pytest's last line, so a failing suite is seen, not timed as if
it passed; its whole output is kept in --logs.

`--tier fast` times `make check`'s tier instead (`-m 'not e2e'`) in both trees.

Usage: .venv/bin/python -m benchmarks.suite_time [--runs 3] [--release d6d4d53] [--logs DIR]
       [--tier all|fast]
"""

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RELEASE, ROOT, release_checkout


def _processes(marks: tuple[str, ...]) -> set[int]:
    """Processes now running whose command line names one of `marks` (a suite's python or its
    folder: its pytest, dagster dev, CLI and emulator children all do), or that run in its
    folder."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
                command += "\0" + os.readlink(entry / "cwd")
                if any(mark in command for mark in marks):
                    found.add(int(entry.name))
    return found


def _suite(python: str, folder: Path, log: Path, marks_expr: str | None) -> tuple[float, str]:
    """One whole suite; the processes of its own it leaves running are counted and killed
    before the next suite starts (the release's `dagster dev` children ignore SIGTERM when the
    suite runs from a background job, and would slow whatever runs after it)."""
    marks = (str(Path(python).parent), str(folder))
    before = _processes(marks)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             *(["-m", marks_expr] if marks_expr else [])],
            cwd=folder, stdout=out, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    elapsed = time.perf_counter() - started
    left = _processes(marks) - before - {os.getpid()}
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() or ["(none)"]
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return elapsed, "; ".join([lines[-1], *failed, f"{len(left)} processes left running"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--release", default=RELEASE)
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "suite_time")
    parser.add_argument("--tier", choices=("all", "fast"), default="all")
    args = parser.parse_args()
    subprocess.run([str(ROOT / "scripts" / "ensure-test-services")], check=True)
    label = f"release {args.release[:7]}"
    times: dict[str, list[float]] = {label: [], "this tree": []}
    args.logs = args.logs / args.tier
    args.logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, release_checkout(Path(tmp), args.release) as out:
        release, release_python = out
        suites = {
            label: (release_python, release),
            "this tree": (sys.executable, ROOT),
        }
        for run in range(args.runs):
            for name, (python, folder) in suites.items():  # interleaved: same machine state
                log = args.logs / f"{name.split()[0]}-{run + 1}.log"
                expr = "not e2e" if args.tier == "fast" else None
                elapsed, last = _suite(python, folder, log, expr)
                times[name].append(elapsed)
                print(f"run {run + 1}, {name}: {elapsed:.1f} s  ({last}; {log})", flush=True)
    old, new = times[label], times["this tree"]
    print(f"\n{args.tier} tier, {args.runs} runs interleaved (min / median / max s)")
    print("| suite | wall s | this / release (median) |")
    print("|---|---|---|")
    print(f"| {label} | {_mmm(old)} | |")
    print(f"| this tree | {_mmm(new)} | {statistics.median(new) / statistics.median(old):.2f}x |")


def _mmm(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


if __name__ == "__main__":
    main()
