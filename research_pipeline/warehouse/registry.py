"""Every table of the warehouse, once: what it holds and who reads it.

Forgetting, export, the dataset and derivation iterate this registry instead of keeping lists
of their own (there were five), so a new table cannot be missed by one of them: a test fails
when a table of the schema is not here, or when a table with a `username` column is not marked
as holding per-user data (forgetting must reach it).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    # Rows about one account (a `username` column): under TikTok's terms, forgetting reaches it.
    per_user: bool
    # Rebuilt from `user_info` by derivation (warehouse.derivation, sql/): per-user derived
    # rows of a forgotten account are deleted, not redacted.
    derived: bool = False
    exportable: bool = True  # `research-pipeline export`
    in_dataset: bool = False  # `export-dataset`, a cohort's citable dataset
    when: str = "snapshot_date"  # the column `export --since` filters on: when a row happened


TABLES = (
    Table("user_info", per_user=True, in_dataset=True),
    Table("follower_snapshots", per_user=True, derived=True, in_dataset=True),
    Table("engagement_snapshots", per_user=True, derived=True, in_dataset=True),
    Table("cohort_summary", per_user=False, derived=True, in_dataset=True),
    Table("cohort_members", per_user=True, exportable=False, in_dataset=True),
    # Each plan's decision per member and day, and the panel derived from it: statuses, ranks
    # and budgets, never a value the API returned, so forgetting leaves them (a forgotten
    # member's days keep their status and dates, nothing else is there).
    Table("plan_decisions", per_user=True, in_dataset=True),
    Table("panel_days", per_user=True, in_dataset=True),
    Table("tombstones", per_user=True, in_dataset=True, when="since"),
    Table("api_requests", per_user=True, in_dataset=True, when="requested_at"),
    Table("snapshots", per_user=False),
    Table("sources", per_user=False, exportable=False),
    # Bookkeeping of the schema and of each user's last answers (warehouse.answers): folded
    # again by every writer, never exported.
    Table("last_answers", per_user=True, exportable=False),
    Table("last_answers_as_of", per_user=False, exportable=False),
    Table("schema_version", per_user=False, exportable=False),
)

BY_NAME = {table.name: table for table in TABLES}
DERIVED_TABLES = tuple(t.name for t in TABLES if t.derived)
PER_USER_DERIVED_TABLES = tuple(t.name for t in TABLES if t.derived and t.per_user)
EXPORTABLE_TABLES = tuple(t.name for t in TABLES if t.exportable)
DATASET_TABLES = tuple(t.name for t in TABLES if t.in_dataset)
