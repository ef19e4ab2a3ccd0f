"""Versioned schema upgrades: a warehouse written by an earlier release opens with every row kept
and the new columns in place; a newer one is refused; a failed upgrade changes nothing."""

from pathlib import Path

import duckdb
import pytest

from research_pipeline import warehouse
from research_pipeline.errors import WarehouseError
from research_pipeline.warehouse import schema

OLD_DDL = Path(__file__).parent / "fixtures" / "schema_2026_11_24.sql"


def build_release_2026_11_24(path: Path) -> None:
    """A warehouse as the release of 2026-11-24 wrote it: its DDL, and rows in every table."""
    with duckdb.connect(str(path)) as conn:
        conn.execute(OLD_DDL.read_text())
        conn.execute("""
            INSERT INTO tiktok.user_info VALUES
              ('2026-11-20', 'news', 'alice', '2026-11-20 01:00', 'ok', NULL, 'L1', 'Alice',
               'bio', 'https://a/x.jpg', true, 120, 5, 900, 12, true),
              ('2026-11-20', 'news', 'bob', '2026-11-20 01:00', 'invalid_params',
               '`username: bob` is private: API cannot return this user''s information', 'L2',
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true),
              ('2026-11-20', 'news', 'carol', '2026-11-20 01:00', 'invalid_params',
               '`username: carol` is invalid: cannot find the user', 'L3',
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true),
              ('2026-11-20', 'news', 'dan', '2026-11-20 01:00', 'internal_error', '', 'L4',
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false);
            INSERT INTO tiktok.snapshots VALUES ('2026-11-20', 'news', 4, '2026-11-20 01:01');
            INSERT INTO tiktok.api_requests VALUES
              ('2026-11-20 01:00', '2026-11-20', 'news', 'alice', 200, 'ok', 'L1'),
              ('2026-11-20 01:00', '2026-11-20', 'news', 'dan', 500, 'internal_error', 'L4');
            INSERT INTO tiktok.follower_snapshots VALUES
              ('2026-11-20', 'news', 'alice', 120, 5, NULL, NULL, NULL, NULL, NULL);
            INSERT INTO tiktok.engagement_snapshots VALUES
              ('2026-11-20', 'news', 'alice', 900, 12, 75.0, 7.5, NULL, NULL, NULL, NULL);
            INSERT INTO tiktok.cohort_summary VALUES
              ('2026-11-20', 'news', 4, 1, 3, '{}', 120, 120, 900, 75.0, NULL);
        """)


def table_rows(conn, table: str, columns: str = "*") -> list[tuple]:
    return conn.execute(f"SELECT {columns} FROM tiktok.{table} ORDER BY ALL").fetchall()  # noqa: S608


OLD_TABLES = (
    "user_info", "snapshots", "api_requests", "follower_snapshots", "engagement_snapshots",
    "cohort_summary",
)  # fmt: skip


def test_a_warehouse_of_the_previous_release_keeps_every_row_and_gains_new_columns(tmp_path):
    path = tmp_path / "old.duckdb"
    build_release_2026_11_24(path)
    with duckdb.connect(str(path), read_only=True) as conn:
        before = {t: table_rows(conn, t) for t in OLD_TABLES}
        old_columns = {
            t: [c[0] for c in conn.execute(f"DESCRIBE tiktok.{t}").fetchall()]  # noqa: S608
            for t in OLD_TABLES
        }
    with warehouse.connect(path) as conn:
        assert schema.current_version(conn) == schema.LATEST_VERSION
        for table in OLD_TABLES:
            # Old columns hold exactly what they held; the new ones come after them.
            assert table_rows(conn, table, ", ".join(old_columns[table])) == before[table]
        columns = [c[0] for c in conn.execute("DESCRIBE tiktok.user_info").fetchall()]
        assert {"error_kind", "source"} <= set(columns)
        kinds = dict(conn.execute("SELECT username, error_kind FROM tiktok.user_info").fetchall())
        assert kinds == {
            "alice": None,
            "bob": "private",
            "carol": "not_found",
            "dan": "server_error",
        }
        assert conn.execute(
            "SELECT count(*) FROM tiktok.user_info WHERE source IS NOT NULL"
        ).fetchall() == [(0,)]
        versions = conn.execute("SELECT version FROM tiktok.schema_version ORDER BY 1").fetchall()
        assert [v for (v,) in versions] == list(range(1, schema.LATEST_VERSION + 1))
    with warehouse.connect(path) as conn:  # a second open changes nothing
        assert len(conn.execute("SELECT * FROM tiktok.schema_version").fetchall()) == len(versions)


def test_a_new_warehouse_is_created_at_the_latest_version(tmp_path):
    with warehouse.connect(tmp_path / "new.duckdb") as conn:
        assert schema.current_version(conn) == schema.LATEST_VERSION
        assert table_rows(conn, "user_info") == []


def test_a_failing_upgrade_leaves_the_old_warehouse_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    build_release_2026_11_24(path)
    broken = schema.Upgrade(schema.LATEST_VERSION + 1, "broken", "SELECT * FROM no_such_table")
    monkeypatch.setattr(schema, "UPGRADES", (*schema.UPGRADES, broken))
    monkeypatch.setattr(schema, "LATEST_VERSION", broken.version)
    with pytest.raises(WarehouseError, match="rolled back"), warehouse.connect(path):
        pass
    with duckdb.connect(str(path), read_only=True) as conn:
        assert schema.current_version(conn) == 1  # version 2 was rolled back with the rest
        columns = [c[0] for c in conn.execute("DESCRIBE tiktok.user_info").fetchall()]
        assert "error_kind" not in columns and len(table_rows(conn, "user_info")) == 4


def test_a_warehouse_from_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "future.duckdb"
    with warehouse.connect(path) as conn:
        conn.execute("INSERT INTO tiktok.schema_version VALUES (99, 'future', now()::TIMESTAMP)")
    with pytest.raises(WarehouseError, match="newer than this release"), warehouse.connect(path):
        pass


def test_readers_of_an_old_or_missing_warehouse_get_a_clear_error(tmp_path):
    with pytest.raises(WarehouseError, match="no warehouse at"):
        with warehouse.connect(tmp_path / "missing.duckdb", read_only=True):
            pass
    path = tmp_path / "old.duckdb"
    build_release_2026_11_24(path)
    with pytest.raises(WarehouseError, match="run a snapshot"):
        with warehouse.connect(path, read_only=True):
            pass
