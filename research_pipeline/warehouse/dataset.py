"""The SQL behind a citable dataset: one cohort's tables written as Parquet, the facts its
manifest and methods paragraph report, and finding exported files that hold an account whose
data must now be deleted."""

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from research_pipeline.errors import WarehouseError
from research_pipeline.tiktok.constants import NOT_SPENT_STATUSES
from research_pipeline.warehouse.panel_days import completeness
from research_pipeline.warehouse.registry import DATASET_TABLES


@dataclass
class DatasetFacts:
    cohort: str
    sources: list[str]
    first_day: date | None
    last_day: date | None
    members: int  # on the last day
    accounts_ever: int  # every account the cohort has had
    cadence_days: int | None
    coverage: list[dict] = field(default_factory=list)  # per day
    errors_by_kind: dict[str, int] = field(default_factory=dict)  # final error answers
    unavailable: dict[str, int] = field(default_factory=dict)  # tombstones by kind
    requests_spent: int = 0  # requests that count against the quota (429s excluded)
    requests_refused: int = 0  # 429s
    # of those spent: sent by a run killed before it stored their answers (status 'unrecorded')
    requests_unrecorded: int = 0
    answers_ok: int = 0
    mean_fresh_share: float | None = None
    # Member-days (tiktok.panel_days) in all and by group: observed, design, quota, account,
    # infrastructure (warehouse.panel_days.GROUPS).
    panel: dict[str, int] = field(default_factory=dict)


# The requests behind a cohort's answers: those made for it, and those made for another cohort
# whose answer fills this cohort's row too (a user in several cohorts is asked once a day).
_PROVENANCE = """
SELECT * FROM tiktok.api_requests r
WHERE r.cohort = $cohort OR EXISTS (
    SELECT 1 FROM tiktok.user_info u
    WHERE u.cohort = $cohort AND u.snapshot_date = r.snapshot_date AND u.username = r.username)
ORDER BY ALL
"""


# Built from a constant of this module, never from input.
_COUNT_REQUESTS = (
    "SELECT count(*) FILTER (WHERE status NOT IN (SELECT unnest($refused))), "  # noqa: S608
    "count(*) FILTER (WHERE status IN (SELECT unnest($refused))), "
    "count(*) FILTER (WHERE status = 'unrecorded') FROM (" + _PROVENANCE + ")"
)


def write_table(conn: duckdb.DuckDBPyConnection, table: str, cohort: str, out: Path) -> int:
    """One cohort's rows of `table` as Parquet (sorted, so equal data gives equal files)."""
    if table not in DATASET_TABLES:
        raise WarehouseError(f"unknown dataset table {table!r}")
    query = f"SELECT * FROM tiktok.{table} WHERE cohort = $cohort ORDER BY ALL"  # noqa: S608
    if table == "api_requests":
        query = _PROVENANCE
    conn.sql(query, params={"cohort": cohort}).write_parquet(str(out))
    return conn.execute("SELECT count(*) FROM read_parquet(?)", [str(out)]).fetchall()[0][0]


def facts_of_files(folder: Path, cohort: str) -> "DatasetFacts":
    """The dataset's facts computed from its own Parquet files (views named as the warehouse's
    tables over them), so no figure of the manifest or METHODS.md can disagree with the files
    it describes."""
    with duckdb.connect(":memory:") as conn:
        conn.execute("CREATE SCHEMA tiktok")
        for table in DATASET_TABLES:
            path = str(folder / f"{table}.parquet").replace("'", "''")
            conn.execute(
                f"CREATE VIEW tiktok.{table} AS SELECT * FROM read_parquet('{path}')"  # noqa: S608
            )
        return dataset_facts(conn, cohort)


def _refuse_unknown_cohort(conn: duckdb.DuckDBPyConnection, cohort: str) -> None:
    known = [c for (c,) in conn.execute("SELECT DISTINCT cohort FROM tiktok.cohort_members "
                                        "UNION SELECT DISTINCT cohort FROM tiktok.user_info "
                                        "ORDER BY 1").fetchall()]  # fmt: skip
    raise WarehouseError(
        f"no data for cohort {cohort!r} in the warehouse (cohorts with data: "
        f"{', '.join(known) or 'none'}); take a snapshot first"
    )


def _coverage(conn: duckdb.DuckDBPyConnection, cohort: str) -> list[dict]:
    """Per summarised day: members, fetched, fresh, stale and never fetched."""
    names = ("day", "members", "fetched", "fresh", "stale", "never_fetched")
    rows = conn.execute(
        "SELECT snapshot_date::VARCHAR, members, fetched, fresh, stale, never_fetched "
        "FROM tiktok.cohort_summary WHERE cohort = ? ORDER BY 1",
        [cohort],
    ).fetchall()
    return [dict(zip(names, row, strict=True)) for row in rows]


def dataset_facts(conn: duckdb.DuckDBPyConnection, cohort: str) -> DatasetFacts:
    first, last, accounts, ok = conn.execute(
        "SELECT min(snapshot_date), max(snapshot_date), count(DISTINCT username), "
        "count(*) FILTER (WHERE status = 'ok') FROM tiktok.user_info WHERE cohort = ?",
        [cohort],
    ).fetchall()[0]
    members_rows = conn.execute(
        "SELECT count(*), max(cadence_days) FROM tiktok.cohort_members WHERE cohort = ? "
        "AND snapshot_date = (SELECT max(snapshot_date) FROM tiktok.cohort_members "
        "WHERE cohort = ?)",
        [cohort, cohort],
    ).fetchall()[0]
    if first is None and not members_rows[0]:
        _refuse_unknown_cohort(conn, cohort)
    sources = [s for (s,) in conn.execute(
        "SELECT DISTINCT source FROM tiktok.user_info WHERE cohort = ? AND source IS NOT NULL "
        "ORDER BY 1", [cohort]).fetchall()]  # fmt: skip
    coverage = _coverage(conn, cohort)
    errors = dict(conn.execute(
        "SELECT coalesce(error_kind, 'other'), count(*) FROM tiktok.user_info "
        "WHERE cohort = ? AND status <> 'ok' AND is_final GROUP BY 1 ORDER BY 1", [cohort]
    ).fetchall())  # fmt: skip
    unavailable = dict(conn.execute(
        "SELECT kind, count(*) FROM tiktok.tombstones WHERE cohort = ? GROUP BY 1 ORDER BY 1",
        [cohort]).fetchall())  # fmt: skip
    spent, refused, unrecorded = conn.execute(
        _COUNT_REQUESTS, {"cohort": cohort, "refused": list(NOT_SPENT_STATUSES)}
    ).fetchall()[0]
    fresh = [c["fresh"] / c["members"] for c in coverage if c["members"]]
    return DatasetFacts(
        cohort=cohort,
        sources=sources,
        first_day=first,
        last_day=last,
        members=members_rows[0] or 0,
        accounts_ever=accounts or 0,
        cadence_days=members_rows[1],
        coverage=coverage,
        errors_by_kind=errors,
        unavailable=unavailable,
        requests_spent=spent,
        requests_refused=refused,
        requests_unrecorded=unrecorded,
        answers_ok=ok or 0,
        mean_fresh_share=sum(fresh) / len(fresh) if fresh else None,
        panel=completeness(conn, cohort),
    )


def exports_holding(exports_dir: Path, usernames: list[str]) -> list[Path]:
    """Dataset folders under `exports_dir` (each has a manifest.json) whose Parquet files hold
    any of `usernames`."""
    if not usernames or not exports_dir.is_dir():
        return []
    found = []
    with duckdb.connect(":memory:") as conn:
        for manifest in sorted(exports_dir.rglob("manifest.json")):
            folder = manifest.parent
            files = [str(p) for p in folder.glob("*.parquet")]
            if not files:
                continue
            hits = conn.execute(
                "SELECT count(*) FROM read_parquet(?, union_by_name = true) "
                "WHERE username IN (SELECT unnest(?))",
                [files, usernames],
            ).fetchall()[0][0]
            if hits:
                found.append(folder)
    return found


def manifest_json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False) + "\n"
