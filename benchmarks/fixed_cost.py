"""Fixed cost of a small run: `research-pipeline snapshot` of a 10-user cohort, this tree
against the release of 2026-11-24 (commit d6d4d53, checked out in a temporary git worktree), side
by side in one run. The release runs on the same installed libraries: a bare virtualenv whose
.pth puts the worktree first and this venv's site-packages after it (without this venv's
editable install of this tree, which would otherwise win).

Each run gets a fresh warehouse (a first snapshot of the day) and a Dagster home that either
exists already (its storage created beforehand, untimed: the daily case) or is new (the first
run on a machine); the emulator runs in its own process without latency or limits, so what is
left is our fixed cost: imports, instance, run set-up, writes, interpreter exit. Also timed:
`--help` (imports to parse arguments), importing the snapshot command's modules, and this
tree's snapshot without the immediate exit and without freezing what it loaded out of the
garbage collector's way, each beside the same snapshot with it.

Usage: .venv/bin/python -m benchmarks.fixed_cost [--runs 3] [--users 10] [--release d6d4d53]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RELEASE, ROOT, cli_env, release_checkout, start_emulator

IMPORTS = {  # the modules a snapshot loads before it starts its run, per version
    "release": "import research_pipeline.cli, research_pipeline.defs.definitions",
    "this tree": "import research_pipeline.cli.snapshot_cmd, research_pipeline.cli.report, "
    "research_pipeline.definitions, research_pipeline.panels, research_pipeline.snapshot",
}
# This tree as it would run without leaving at once (research_pipeline.cli.run): the
# interpreter's teardown measured apart.
NORMAL_EXIT = (
    "import sys; from research_pipeline.cli import collection, main; "
    "collection.freeze_after_loading(); sys.exit(main(sys.argv[1:]))"
)
# This tree as it ran before what it loads was frozen out of the garbage collector's way
# (research_pipeline.cli.collection): the executable without that one call.
COLLECTOR_AS_BEFORE = (
    "import os, sys; from research_pipeline.cli import main; os._exit(main(sys.argv[1:]))"
)
# Dagster's own floor for a run of our shape: five chained assets that do nothing, materialized
# in process on the (existing) SQLite instance, in a fresh interpreter, leaving at once as our
# CLI does. No run of ours can cost less than this with Dagster's SQLite storage.
FLOOR = """
import os
from dagster import DagsterInstance, asset, materialize
@asset
def a1(): return 1
@asset
def a2(a1): return 1
@asset
def a3(a2): return 1
@asset
def a4(a3): return 1
@asset
def a5(a4): return 1
with DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as instance:
    assert materialize([a1, a2, a3, a4, a5], instance=instance).success
os._exit(0)
"""


def _timed(command: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def _environment(folder: Path, url: str, python: str, users: int, warm: bool) -> dict:
    env = cli_env(folder, url)
    if warm:  # the instance's storage exists, as it does from the second run on
        subprocess.run(
            [python, "-c", "import os; from dagster import DagsterInstance; "
             "DagsterInstance.from_config(os.environ['DAGSTER_HOME']).get_runs()"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    env["RESEARCH_PIPELINE_START_DATE"] = "2026-11-01"
    (folder / "cohorts" / "bench.txt").write_text(
        "\n".join(f"user_{i}" for i in range(users)) + "\n", encoding="utf-8"
    )
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--release", default=RELEASE)
    args = parser.parse_args()
    emulator, url = start_emulator("--rate-limit", "off", "--daily-quota", "off")
    times: dict[str, dict[str, list[float]]] = {}
    floor: list[float] = []
    collector_as_before: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, release_checkout(Path(tmp), args.release) as out:
        release, release_python = out
        try:
            pythons = {"release": release_python, "this tree": sys.executable}
            versions = {"release": release, "this tree": ROOT}
            for name in versions:
                times[name] = {"snapshot, existing home": [], "snapshot, new home": [],
                               "snapshot, existing home, normal exit": [],
                               "--help": [], "imports": []}  # fmt: skip
            for run in range(args.runs):
                for name in versions:  # interleaved: same machine state
                    cli = [pythons[name], "-m", "research_pipeline.cli"]
                    for warm in (True, False):
                        folder = Path(tmp) / f"{name.replace(' ', '_')}_{run}_{warm}"
                        env = _environment(folder, url, pythons[name], args.users, warm)
                        measure = "snapshot, existing home" if warm else "snapshot, new home"
                        times[name][measure].append(
                            _timed([*cli, "snapshot", "--cohort", "bench"], env, folder)
                        )
                    folder = Path(tmp) / f"{name.replace(' ', '_')}_{run}_normal_exit"
                    env = _environment(folder, url, pythons[name], args.users, True)
                    normal = [*cli] if name == "release" else [pythons[name], "-c", NORMAL_EXIT]
                    times[name]["snapshot, existing home, normal exit"].append(
                        _timed([*normal, "snapshot", "--cohort", "bench"], env, folder)
                    )
                    times[name]["--help"].append(_timed([*cli, "--help"], env, folder))
                    times[name]["imports"].append(
                        _timed([pythons[name], "-c", IMPORTS[name]], env, folder)
                    )
                    if name == "this tree":
                        folder = Path(tmp) / f"this_tree_{run}_collector_as_before"
                        env = _environment(folder, url, pythons[name], args.users, True)
                        collector_as_before.append(_timed(
                            [pythons[name], "-c", COLLECTOR_AS_BEFORE, "snapshot", "--cohort",
                             "bench"], env, folder))  # fmt: skip
                folder = Path(tmp) / f"floor_{run}"  # in the same pass: same machine state
                env = _environment(folder, url, sys.executable, args.users, True)
                floor.append(_timed([sys.executable, "-c", FLOOR], env, folder))
        finally:
            emulator.kill()
    print(f"\n{args.users}-user snapshot, fresh warehouse, {args.runs} runs interleaved")
    print(
        "| measure | release 2026-11-24 (min / median / max s) | this tree | this / release "
        "(median) |"
    )
    print("|---|---|---|---|")
    for measure in times["release"]:
        old, new = times["release"][measure], times["this tree"][measure]
        ratio = statistics.median(new) / statistics.median(old)
        print(f"| {measure} | {_mmm(old)} | {_mmm(new)} | {ratio:.2f}x |")
    print(f"\nDagster's floor (5 no-op assets, existing home, in process): {_mmm(floor)} s")
    daily = "snapshot, existing home"
    pairs = list(zip(times["release"][daily], times["this tree"][daily], floor, strict=True))
    ours = ", ".join(f"{new / old:.2f}x" for old, new, _ in pairs)
    floors = ", ".join(f"{bare / old:.2f}x" for old, _, bare in pairs)
    print(f"per run, {daily}: this / release {ours}; floor / release {floors}")
    over = ", ".join(f"+{new - bare:.2f} s" for _, new, bare in pairs)
    print(f"per run, {daily} minus Dagster's floor of the same pass: {over}")
    print(
        f"\nthis tree, {daily}, the collector as before the freeze: {_mmm(collector_as_before)} s"
    )
    frozen = ", ".join(
        f"{new / old:.2f}x"
        for new, old in zip(times["this tree"][daily], collector_as_before, strict=True)
    )
    print(f"per run, frozen / as before: {frozen}")


def _mmm(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


if __name__ == "__main__":
    main()
