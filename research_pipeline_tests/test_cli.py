"""The `research-pipeline` command, in process, on a real DAGSTER_HOME and the emulator."""

import duckdb
import pytest

from research_pipeline.cli import main
from research_pipeline_tests.helpers import EMULATOR_SECRET, cli_environment, find_usernames


@pytest.fixture
def env(tmp_path, emulator, monkeypatch):
    values = cli_environment(tmp_path, emulator)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_cohorts_add_list_and_snapshot(env, emulator, tmp_path, capsys):
    source = tmp_path / "mine.txt"
    source.write_text("\n".join(find_usernames(emulator, "active", 4)) + "\nbad name!\n")
    assert main(["cohorts", "add", "lab_a", str(source)]) == 0
    assert main(["cohorts", "add", "lab_a", str(source)]) == 1  # no silent overwrite
    assert main(["cohorts", "list"]) == 0
    listing = capsys.readouterr().out
    assert "lab_a" in listing and "mine.txt:5" in listing
    assert main(["snapshot"]) == 0
    out = capsys.readouterr().out
    assert "succeeded" in out and "lab_a" in out
    with duckdb.connect(env["RESEARCH_PIPELINE_DUCKDB"], read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM tiktok.user_info").fetchone() == (4,)
    assert EMULATOR_SECRET not in out + listing


def test_validate_reports_bad_lines_and_exits_non_zero(tmp_path, capsys):
    path = tmp_path / "list.txt"
    path.write_text("good_user\n@x\n")
    assert main(["cohorts", "validate", str(path)]) == 1
    assert f"{path}:2:" in capsys.readouterr().out


def test_unsafe_cohort_name_is_refused_with_a_clear_error(env, tmp_path, capsys):
    source = tmp_path / "x.txt"
    source.write_text("alice\n")
    assert main(["cohorts", "add", "x'; DROP TABLE tiktok.user_info; --", str(source)]) == 2
    assert "invalid cohort name" in capsys.readouterr().err


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_export_writes_what_duckdb_holds(env, emulator, tmp_path, file_format):
    users = find_usernames(emulator, "active", 3)
    (tmp_path / "cohorts").mkdir(exist_ok=True)
    for name in ("one", "two"):
        (tmp_path / "cohorts" / f"{name}.txt").write_text("\n".join(users) + "\n")
    assert main(["snapshot"]) == 0
    out = tmp_path / "export" / f"followers.{file_format}"
    args = ["export", "follower_snapshots", "--format", file_format, "--out", str(out)]
    assert main([*args, "--cohort", "two", "--since", "2020-01-01"]) == 0
    reader = "read_parquet" if file_format == "parquet" else "read_csv_auto"
    with duckdb.connect(env["RESEARCH_PIPELINE_DUCKDB"], read_only=True) as conn:
        expected = conn.execute(
            "SELECT username, follower_count FROM tiktok.follower_snapshots "
            "WHERE cohort = 'two' ORDER BY ALL"
        ).fetchall()
        exported = conn.execute(
            f"SELECT username, follower_count FROM {reader}(?) ORDER BY ALL",  # noqa: S608
            [str(out)],
        ).fetchall()
    assert exported == expected and len(expected) == 3
