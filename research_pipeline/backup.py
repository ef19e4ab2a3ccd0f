"""A consistent copy of what a lab cannot fetch again: the warehouse, the journal and the cohorts.

The API serves today only, so a lost warehouse is a lost study. `research-pipeline backup`
copies, while the pipeline runs:

- the warehouse, checkpointed and copied while the backup holds its write lock (a run's saves
  wait, its answers meanwhile go on reaching the journal: nothing is asked twice for it);
- the journal, copied while that lock is held: every answer the copied warehouse lacks is in
  a journal file (the journal's files are deleted only once the warehouse holds them, and that
  needs the lock). A file a run is still writing is copied as far as its last whole line: the
  journal reads no torn line;
- the cohort files, so the backup says who was followed.

Restoring is copying the files back with the services stopped: the next run stores the journal
(storing is idempotent: answers already in the warehouse are not added twice). `BACKUP.json`
lists every file with its SHA-256.
"""

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from research_pipeline import warehouse
from research_pipeline.errors import WarehouseError
from research_pipeline.journal import Journal
from research_pipeline.outputs import sha256_of

MANIFEST = "BACKUP.json"


def back_up(
    database: str | Path,
    journal_dir: str | Path | None,
    cohorts_dir: Path,
    out: Path,
    wait_seconds: float = warehouse.LOCK_WAIT_SECONDS,
) -> dict:
    """Copy the warehouse, its journal and the cohort files into the new folder `out`
    (written as `<out>.partial`, renamed when complete); returns the manifest."""
    database = Path(database)
    if not database.is_file():
        raise WarehouseError(f"no warehouse at {database}: nothing to back up")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WarehouseError(f"{out} exists and is not empty: name a new folder for the backup")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    journal = Journal(database, journal_dir)
    journal_copy = partial / journal.folder.name
    with warehouse.connect(database, wait_seconds=wait_seconds) as conn:
        conn.execute("CHECKPOINT")  # everything in the file, nothing left in a .wal
        shutil.copyfile(database, partial / database.name)
        version = warehouse.current_version(conn)
        journal_files = _copy_journal(journal.folder, journal_copy)
    if cohorts_dir.is_dir():
        shutil.copytree(cohorts_dir, partial / "cohorts")
    manifest = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "warehouse": str(database.resolve()),
        "schema_version": version,
        "journal_files": journal_files,
        "restore": (
            f"stop the services; copy {database.name} and {journal.folder.name}/ back beside "
            "each other (the folder RESEARCH_PIPELINE_DUCKDB and RESEARCH_PIPELINE_JOURNAL_DIR "
            "name), and cohorts/ to RESEARCH_PIPELINE_COHORTS_DIR; the next run stores the "
            "journal"
        ),
        "files": [
            {"file": str(path.relative_to(partial)), "sha256": sha256_of(path)}
            for path in sorted(partial.rglob("*"))
            if path.is_file()
        ],
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        out.rmdir()  # empty, checked above
    os.replace(partial, out)
    return manifest


def _copy_journal(folder: Path, copy: Path) -> int:
    """The journal's key and files (a file being written: up to its last whole line); the
    copy is private (0700), as the journal is."""
    copy.mkdir(mode=0o700)
    if not folder.is_dir():
        return 0
    copied = 0
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if path.suffix == ".jsonl":
            data = data[: data.rfind(b"\n") + 1]
            copied += 1
        target = copy / path.name
        target.write_bytes(data)
        os.chmod(target, 0o600)
    return copied
