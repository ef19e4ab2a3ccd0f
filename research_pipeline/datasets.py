"""A citable dataset of one cohort: its tables as Parquet, a data dictionary, a manifest (source,
dates, members, coverage per day, errors by kind, requests spent, software, sha256 of each file)
and a methods paragraph for a paper's appendix, generated from the same numbers.

Exports live in the project's exports folder by default, where the forget step finds them:
a dataset that holds an account whose data TikTok's terms now require deleted is withdrawn
(removed, and said so in the run's log). A copy made elsewhere is the researcher's to delete:
the manifest says so.
"""

import csv
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb

from research_pipeline.errors import WarehouseError
from research_pipeline.outputs import sha256_of
from research_pipeline.planner import TERMS_MAX_DAYS
from research_pipeline.processes import process_alive
from research_pipeline.warehouse.dataset import (
    DATASET_TABLES,
    DatasetFacts,
    dataset_facts,
    exports_holding,
    facts_of_files,
    manifest_json,
    write_table,
)
from research_pipeline.warehouse.dictionary import describe
from research_pipeline.warehouse.queries import table_columns
from research_pipeline.wording import plural

MANIFEST = "manifest.json"
DICTIONARY = "data_dictionary.csv"
METHODS = "METHODS.md"


def software_versions() -> dict[str, str]:
    found = {}
    for package in ("research-pipeline", "dagster", "duckdb"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


# An export is written here first and renamed to its folder once complete (manifest last): a
# killed export never exists under its final name, and the withdrawal removes these too.
PARTIAL_PREFIX = ".partial-export-"


def _check_target(out: Path, cohort: str) -> None:
    """`out` is new, empty, or an earlier export of this same cohort (replaced); else refused."""
    if not out.exists() or not any(out.iterdir()):
        return
    manifest = out / MANIFEST
    if not manifest.is_file():
        raise WarehouseError(
            f"{out} is not empty and holds no earlier export (no {MANIFEST}): choose an "
            "empty or new folder"
        )
    try:
        earlier = json.loads(manifest.read_text(encoding="utf-8")).get("cohort")
    except (ValueError, OSError):
        earlier = None
    if earlier != cohort:
        raise WarehouseError(
            f"{out} holds the dataset of cohort {earlier!r}, not {cohort!r}: choose another "
            "folder (nothing was overwritten)"
        )


def _partial_folder(out: Path) -> Path:
    """A new partial folder beside `out`, named with this process; partial folders of `out`
    left by exports whose process has ended (killed: they may hold accounts forgotten since)
    are removed first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f"{PARTIAL_PREFIX}{out.name}-*"):
        pid = stale.name.removeprefix(f"{PARTIAL_PREFIX}{out.name}-").split("-")[0]
        if (
            stale.is_dir()
            and not stale.is_symlink()
            and pid.isdigit()
            and not (int(pid) == os.getpid() or process_alive(int(pid)))
        ):
            shutil.rmtree(stale)
    prefix = f"{PARTIAL_PREFIX}{out.name}-{os.getpid()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))


def export_dataset(conn: duckdb.DuckDBPyConnection, cohort: str, out: Path) -> dict:
    """Write the dataset of `cohort` into folder `out`; returns its manifest."""
    dataset_facts(conn, cohort)  # refuses an unknown cohort before writing anything
    _check_target(out, cohort)
    final, out = out, _partial_folder(out)
    try:
        manifest = _write_dataset(conn, cohort, out)
        if final.exists():
            shutil.rmtree(final)  # the earlier export of this cohort
        os.replace(out, final)
    finally:
        if out.exists():
            shutil.rmtree(out)
    return manifest


def _write_dataset(conn, cohort: str, out: Path) -> dict:
    files = []
    dictionary = []
    for table in DATASET_TABLES:
        path = out / f"{table}.parquet"
        rows = write_table(conn, table, cohort, path)
        files.append({"file": path.name, "table": f"tiktok.{table}", "rows": rows})
        for column, kind in table_columns(conn, table):
            meaning, unit = describe(table, column) or ("", "")
            dictionary.append((path.name, column, kind, meaning, unit))
    facts = facts_of_files(out, cohort)  # every figure from the files just written
    with (out / DICTIONARY).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("file", "column", "type", "meaning", "unit"))
        writer.writerows(dictionary)
    methods = methods_paragraph(facts)
    (out / METHODS).write_text(methods + "\n", encoding="utf-8")
    for entry in files:
        entry["sha256"] = sha256_of(out / entry["file"])
    for name in (DICTIONARY, METHODS):
        files.append({"file": name, "sha256": sha256_of(out / name)})
    manifest = {
        "dataset": f"TikTok Research API user info, cohort {cohort}",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": facts.sources,
        "from_emulator": "emulator" in facts.sources,
        **{k: v for k, v in asdict(facts).items() if k not in ("sources", "cohort")},
        "cohort": cohort,
        "software": software_versions(),
        "terms": (
            f"Refreshed at least every {TERMS_MAX_DAYS} days; data of accounts no longer "
            "available deleted (tombstones.parquet keeps since when and why). Copies of this "
            "folder must follow later deletions too."
        ),
        "methods": methods,
        "files": files,
    }
    (out / MANIFEST).write_text(manifest_json(manifest), encoding="utf-8")
    return manifest


def methods_paragraph(facts: DatasetFacts) -> str:
    """A paragraph for a paper's methods or appendix, every number from the warehouse."""
    days = (facts.last_day - facts.first_day).days + 1 if facts.first_day else 0
    versions = software_versions()
    source = ", ".join(facts.sources) or "an unrecorded source"
    gone = sum(facts.unavailable.values())
    kinds = ", ".join(f"{kind.replace('_', ' ')}: {n}" for kind, n in facts.unavailable.items())
    cadence = f"every {plural(facts.cadence_days, 'day')}" if facts.cadence_days else "on a cadence"
    parts = []
    if "emulator" in facts.sources:
        parts.append(
            "NOTE: these data come from research-pipeline's emulator of the TikTok Research API, "
            "not from TikTok; they must not be cited as TikTok data."
        )
    parts.append(
        f'We followed {facts.accounts_ever:,} TikTok accounts (cohort "{facts.cohort}"; '
        f"{facts.members:,} members at the end) from {facts.first_day} to {facts.last_day} "
        f"({days} days) through the TikTok Research API user-info endpoint (source: {source}), "
        f"requesting each account's public profile and counts {cadence}, within TikTok's "
        f"requirement to refresh data at least every {TERMS_MAX_DAYS} days."
    )
    if facts.mean_fresh_share is not None:
        parts.append(
            f"On the {len(facts.coverage)} days summarised, on average "
            f"{facts.mean_fresh_share:.1%} of members had an answer no older than the cadence."
        )
    if facts.panel.get("member_days"):
        parts.append(_completeness_sentence(facts.panel))
    share = gone / facts.accounts_ever if facts.accounts_ever else 0.0
    parts.append(
        f"{gone:,} account{'' if gone == 1 else 's'} ({share:.1%}) "
        f"{'was' if gone == 1 else 'were'} no longer available at the end of the study"
        + (f" ({kinds})" if kinds else "")
        + "; as TikTok's terms require, the data the API had returned about them was deleted and "
        "only the fact and date of their unavailability were kept."
    )
    lost = facts.requests_unrecorded  # spent, but their answers never reached the warehouse
    requests = (
        f"In all, {facts.requests_spent - lost:,} API requests were answered "
        f"({facts.answers_ok:,} with data)"
    )
    if lost:
        requests += f"; {lost:,} more were sent by a run killed before it stored their answers"
    parts.append(
        f"{requests}. Data were collected with research-pipeline "
        f"{versions['research-pipeline']} (Dagster {versions['dagster']}, DuckDB "
        f"{versions['duckdb']})."
    )
    return " ".join(parts)


def _completeness_sentence(panel: dict[str, int]) -> str:
    """The panel's completeness (panel_days.parquet): observed member-days, and why the rest
    are missing, by design, by quota, by account, by infrastructure."""
    total = panel["member_days"]
    missing = total - panel["observed"]
    why = ", ".join(
        f"{panel[group]:,} {label}"
        for group, label in (
            ("design", "by design (not due under the cadence)"),
            ("quota", "because the daily quota ran short"),
            ("account", "because of the account (private, not found, refused or forgotten)"),
            ("infrastructure", "because of the infrastructure (outage, interrupted run, "
             "credentials, day not run)"),
        )
    )  # fmt: skip
    return (
        f"Of the panel's {total:,} member-days, {panel['observed']:,} "
        f"({panel['observed'] / total:.1%}) were observed; of the {missing:,} without a value, "
        f"{why} (panel_days.parquet gives each member-day's status)."
    )


def withdraw_exports(exports_dir: Path, usernames: list[str]) -> list[Path]:
    """Remove the project's exported datasets that hold any of `usernames` (accounts whose
    data must now be deleted), and every partial export (killed before its manifest: its
    files may hold anyone); returns the folders removed."""
    removed = exports_holding(exports_dir, usernames)
    if exports_dir.is_dir():
        removed += sorted(p for p in exports_dir.rglob(f"{PARTIAL_PREFIX}*") if p.is_dir())
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed
