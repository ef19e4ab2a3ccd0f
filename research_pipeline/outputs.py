"""What an export may write over: only what an export of ours wrote, never the warehouse.

`research-pipeline export --out data/research.duckdb` used to overwrite the warehouse (exit 0).
An existing file is replaced only when a marker beside it (`.<name>.export`, holding the
SHA-256 of what we wrote) says we wrote it as it is now; the warehouse, its published copy,
its journal and coordination file are refused whatever the marker says. A file is written
under a partial name and renamed in one step, so a killed export leaves a partial file, which
the next export to the same place removes before anything else.

Plain Python: no Dagster, no SQL.
"""

import contextlib
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from research_pipeline.errors import WarehouseError

PARTIAL_SUFFIX = ".partial-export"


def side_files(database: str | Path) -> list[Path]:
    """The warehouse and every file the pipeline keeps beside it: never an export's target."""
    from research_pipeline.warehouse.connection import published_path

    database = Path(database).resolve()
    return [
        database,
        database.with_name(database.name + ".wal"),
        published_path(database).resolve(),
        database.with_name(".published"),  # every run's copy (warehouse.published)
        database.with_name(database.name + ".journal"),
        database.with_name(database.name + ".coordination"),
    ]


def refuse_side_file(out: Path, database: str | Path) -> None:
    """One line when `out` is the warehouse or one of its side files (links followed)."""
    target = out.resolve()
    for protected in side_files(database):
        if target == protected or protected in target.parents:
            raise WarehouseError(
                f"--out {out} is the pipeline's own {protected.name}: refusing to write over "
                "it (nothing was written); choose a file elsewhere, e.g. data/exports/"
            )


def _marker(out: Path) -> Path:
    return out.with_name(f".{out.name}.export")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def export_file(out: Path, database: str | Path) -> Iterator[Path]:
    """The partial path to write an export of `out` to; renamed to `out` when the body ends,
    and marked as ours. Refuses a side file of the warehouse, and an existing file that an
    export of ours did not write as it is now."""
    refuse_side_file(out, database)
    if out.is_dir():
        raise WarehouseError(f"--out {out} is a folder: name a file (nothing was written)")
    if out.exists() and not _ours(out):
        raise WarehouseError(
            f"--out {out} exists and is not an earlier export of research-pipeline (no "
            f"matching {_marker(out).name} beside it): refusing to overwrite it; choose "
            "another name, or delete it first"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}{PARTIAL_SUFFIX}")
    partial.unlink(missing_ok=True)  # a killed export's, cleaned before anything else
    try:
        yield partial
        os.replace(partial, out)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    _marker(out).write_text(sha256_of(out) + "\n", encoding="utf-8")


def _ours(out: Path) -> bool:
    marker = _marker(out)
    try:
        return out.is_file() and marker.read_text(encoding="utf-8").strip() == sha256_of(out)
    except OSError:
        return False
