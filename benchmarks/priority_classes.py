"""Where each day's requests go, by priority class, with the previous landing's planner (commit
BEFORE, its planner.py loaded from git) beside this tree's, on the same simulated month.

    .venv/bin/python -m benchmarks.priority_classes

The issue's panel (2,500 creators every 7 days, 800 politicians every 3 of whom 200 are also
creators, 300 press daily, 350 newcomers weekly), quota 1,000, a colleague spending 100-400 on
7 days, 5% of accounts gone (re-checked), and on day 15 100 creators removed, a cohort of 200
added and politicians moved to every 2 days. Every planned user answers. Classes: overdue (a
whole cadence or more since the last answer, or never), early (its refresh day came before a
whole cadence passed), re-check (a gone account whose re-check is due). Also: due users left
waiting while early asks were made, and untouched members whose refresh days the edit moved.
"""

import importlib.util
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import ROOT

BEFORE = "d5ef443"
DAY0 = date(2026, 3, 1)
COLLEAGUE = {3: 100, 6: 400, 9: 250, 12: 300, 18: 100, 21: 400, 27: 200}


def load_planner(commit: str | None):
    if commit is None:
        from research_pipeline import planner

        return planner
    source = subprocess.run(
        ["git", "show", f"{commit}:research_pipeline/planner.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / f"planner_{commit}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cohorts(planner, edited: bool):
    creators = [f"creator{i}" for i in range(2500)]
    politicians = [f"pol{i}" for i in range(600)] + creators[:200]
    specs = [
        planner.CohortSpec("creators", creators[100:] if edited else creators, 7),
        planner.CohortSpec("politicians", politicians, 2 if edited else 3),
        planner.CohortSpec("press", [f"press{i}" for i in range(300)], 1),
        planner.CohortSpec("newcomers", [f"new{i}" for i in range(350)], 7),
    ]
    if edited:
        specs.append(planner.CohortSpec("late", [f"late{i}" for i in range(200)], 7))
    return specs


def simulate(planner) -> list[dict]:
    gone = {f"creator{i}" for i in range(0, 2500, 20)} | {f"press{i}" for i in range(0, 300, 20)}
    history, days = {}, []
    for offset in range(30):
        day = DAY0 + timedelta(days=offset)
        plan = planner.plan_day(
            cohorts(planner, offset >= 15), history, day, daily_quota=1000,
            spent_today=COLLEAGUE.get(offset, 0),
        )  # fmt: skip
        counts = {"overdue": 0, "early": 0, "re-check": 0}
        for user in plan.users:
            last = history.get(user)
            if last is not None and last.gone:
                counts["re-check"] += 1
            elif last is None or (day - last.snapshot_date).days >= plan.cadence_of[user]:
                counts["overdue"] += 1
            else:
                counts["early"] += 1
        waiting_due = sum(
            1
            for user in plan.left_waiting
            if user not in history
            or history[user].gone
            or (day - history[user].snapshot_date).days >= plan.cadence_of[user]
        )
        counts["due waiting while early asked"] = waiting_due if counts["early"] else 0
        counts["left unused"] = (plan.budget or 0) - len(plan.users) if plan.left_waiting else 0
        days.append(counts)
        for user in plan.users:
            history[user] = planner.LastAnswer(day, "refused" if user in gone else "ok")
    return days


def moved_by_the_edit(planner) -> tuple[int, int]:
    """(moved, untouched): members in both panels at the same cadence whose day changed."""
    old = planner.plan_day(cohorts(planner, False), {}, DAY0, daily_quota=None).cadence_of
    new = planner.plan_day(cohorts(planner, True), {}, DAY0, daily_quota=None).cadence_of
    before, after = planner.phases(old), planner.phases(new)
    untouched = [u for u in old if u in new and old[u] == new[u]]
    return sum(1 for u in untouched if before[u] != after[u]), len(untouched)


def main() -> None:
    results = {}
    for label, commit in (("before", BEFORE), ("after", None)):
        planner = load_planner(commit)
        results[label] = simulate(planner)
        moved = moved_by_the_edit(planner) if hasattr(planner, "phases") else None
        print(f"{label}: refresh days moved by the day-15 edit (moved, untouched): {moved}")
    classes = list(results["after"][0])
    print("\nday  " + "  ".join(f"{c:>30}" for c in classes))
    for offset in range(30):
        cells = [f"{results['before'][offset][c]:>13} -> {results['after'][offset][c]:<13}"
                 for c in classes]  # fmt: skip
        print(f"{offset + 1:>3}  " + "  ".join(f"{cell:>30}" for cell in cells))
    print("\nmonth totals (before -> after):")
    for c in classes:
        print(f"  {c}: {sum(d[c] for d in results['before'])} -> "
              f"{sum(d[c] for d in results['after'])}")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
