"""The `research-pipeline` command, in process, on a real DAGSTER_HOME and the emulator."""

from pathlib import Path

import duckdb
import pytest

from research_pipeline.cli import main
from research_pipeline.warehouse.published import published_path
from research_pipeline_tests.helpers import EMULATOR_SECRET, cli_environment, find_usernames

# End to end: the pipeline through Dagster or the CLI (`make check` leaves these out).
pytestmark = pytest.mark.e2e


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


def test_cadences_plan_and_snapshot_follow_the_apis_day_and_the_quota(
    env, emulator, tmp_path, capsys, monkeypatch
):
    from datetime import date

    from research_pipeline.cli.plan_cmd import current_plan
    from research_pipeline.settings import PipelineSettings

    emulator.clock.set_date(date(2026, 11, 3))  # the API's day, not this machine's
    monkeypatch.setenv("TIKTOK_DAILY_QUOTA", "4")
    weekly, daily = tmp_path / "weekly.txt", tmp_path / "daily.txt"
    weekly.write_text("\n".join(find_usernames(emulator, "active", 12)) + "\n")
    daily.write_text("\n".join(find_usernames(emulator, "active", 14)[12:]) + "\n")
    assert main(["cohorts", "add", "weekly", str(weekly), "--cadence", "7"]) == 0
    assert "warning" not in capsys.readouterr().err  # 12/7 a day: within 4
    assert main(["cohorts", "add", "daily", str(daily), "--cadence", "1"]) == 0
    assert "warning" not in capsys.readouterr().err  # 12/7 + 2 = 3.7 a day
    assert main(["cohorts", "cadence", "weekly", "2"]) == 0
    warned = capsys.readouterr().err
    assert "now need 8 requests a day and the budget is 4" in warned and "every 4 days" in warned
    assert main(["cohorts", "cadence", "weekly", "7"]) == 0
    assert "cohorts.toml" in capsys.readouterr().out
    assert main(["cohorts", "list"]) == 0
    assert "7d" in capsys.readouterr().out

    assert main(["plan"]) == 0
    printed = capsys.readouterr().out
    assert "plan for 2026-11-03 (the API's date)" in printed
    assert "4 of 14 users planned (14 due" in printed and "feasible" in printed
    schedule_plan = _schedule_plan(env, date(2026, 11, 3))
    cli_plan = current_plan(date(2026, 11, 3), PipelineSettings.from_env(), 4)
    assert schedule_plan.users == cli_plan.users and len(cli_plan.users) == 4

    assert main(["snapshot"]) == 0  # the day's plan is done, though 10 members stay due
    out = capsys.readouterr().out
    assert "API requests spent: 4" in out
    with duckdb.connect(env["RESEARCH_PIPELINE_DUCKDB"], read_only=True) as conn:
        rows = conn.execute(
            "SELECT snapshot_date, count(*) FROM tiktok.user_info GROUP BY 1"
        ).fetchall()
        planned = {u for (u,) in conn.execute("SELECT username FROM tiktok.user_info").fetchall()}
    assert rows == [(date(2026, 11, 3), 4)] and planned == set(cli_plan.users)


def _schedule_plan(env, day):
    from dagster import instance_for_test

    from research_pipeline.definitions import load_project_defs
    from research_pipeline.defs.tiktok.schedules import todays_plan

    with instance_for_test():
        resources = load_project_defs().resources
        return todays_plan(
            resources["research_api"], resources["cohort_folder"], resources["warehouse"], day
        )


def _cli(env: dict, *args: str, timeout: float = 60):
    import os
    import subprocess
    import sys
    import time

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "research_pipeline.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - started


def test_expected_failures_are_one_line_on_stderr_with_no_traceback(env, tmp_path):
    (tmp_path / "cohorts" / "c1.txt").write_text("someone\n")
    unreachable, _ = _cli({**env, "TIKTOK_API_BASE_URL": "http://127.0.0.1:9"}, "snapshot")
    assert unreachable.returncode == 2
    assert "Traceback" not in unreachable.stderr
    assert "http://127.0.0.1:9/v2/oauth/token/" in unreachable.stderr
    no_secret, _ = _cli({**env, "TIKTOK_CLIENT_SECRET": ""}, "snapshot")
    assert no_secret.returncode == 2 and "Traceback" not in no_secret.stderr
    assert "TIKTOK_CLIENT_SECRET are not set" in no_secret.stderr
    missing, _ = _cli({**env, "RESEARCH_PIPELINE_DUCKDB": str(tmp_path / "none.duckdb")},
                      "export", "user_info", "--out", str(tmp_path / "x.csv"))  # fmt: skip
    assert missing.returncode == 2 and "no warehouse at" in missing.stderr
    assert "Traceback" not in missing.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        taken, _ = _cli(env, "emulator", "--port", port)
    assert taken.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    assert "Traceback" not in taken.stderr
    verbose, _ = _cli({**env, "TIKTOK_CLIENT_SECRET": ""}, "-v", "snapshot")
    assert "Traceback" in verbose.stderr  # asked for


def test_exports_take_the_format_from_the_extension_and_refuse_unknown_cohorts(
    env, emulator, tmp_path, capsys
):
    (tmp_path / "cohorts" / "c1.txt").write_text(
        "\n".join(find_usernames(emulator, "active", 2))
        + "\nhttps://www.tiktok.com/@someone_new?lang=en\n"
    )
    assert main(["snapshot"]) == 0
    out = tmp_path / "x.csv"
    assert main(["export", "user_info", "--out", str(out)]) == 0
    assert out.read_text().startswith("snapshot_date,")  # CSV, not Parquet in a .csv file
    assert main(["export", "snapshots", "--out", str(tmp_path / "s.parquet")]) == 0
    assert main(["export", "user_info", "--out", str(out), "--cohort", "nope"]) == 2
    assert "no data for cohort 'nope'" in capsys.readouterr().err
    with duckdb.connect(env["RESEARCH_PIPELINE_DUCKDB"], read_only=True) as conn:
        names = {u for (u,) in conn.execute("SELECT username FROM tiktok.user_info").fetchall()}
    assert "someone_new" in names  # a pasted profile URL is a username


def test_no_command_loads_pandas_or_dagster_to_parse_its_arguments():
    """`--help` (and a mistyped option) must answer at once: the heavy libraries load when a
    command runs, not when its arguments are read."""
    import subprocess
    import sys

    commands = [
        "snapshot", "plan", "export", "export-dataset", "cohorts", "demo", "emulator", "watchdog",
        "backup",
    ]  # fmt: skip
    script = (
        "import sys, contextlib, io\n"
        "from research_pipeline.cli import main\n"
        f"for command in {commands!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main([command, '--help']) == 0, command\n"
        "print(sorted(m for m in ('pandas', 'dagster', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_snapshot_loads_no_data_frame_library(env, emulator, tmp_path):
    """The warehouse's writes and the run's previews and summary need no data frames: a
    snapshot that imported pandas (and with it pyarrow) paid 0.4 s of a 10-user run for
    them (docs/benchmarks.md, "Fixed cost"). Seen from Python's own import log."""
    import subprocess
    import sys

    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(find_usernames(emulator, "active", 3)))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "research_pipeline.cli", "snapshot"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"dagster", "duckdb", "requests"} <= imported  # the log is the snapshot's
    assert imported & {"pandas", "pyarrow", "tabulate"} == set()
    with duckdb.connect(env["RESEARCH_PIPELINE_DUCKDB"], read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM tiktok.user_info").fetchall() == [(3,)]


def test_a_snapshot_freezes_what_it_loaded_once_before_its_first_request(
    env, emulator, tmp_path, monkeypatch
):
    """The executable freezes Dagster, its storage and our definitions out of the collector's
    way once they are loaded (4 full collections, 0.34 s of a 10-user snapshot, before), and
    before the run asks the API anything. Here in process, so the freeze itself is recorded,
    not done (this process goes on)."""
    import gc

    from research_pipeline.cli import collection

    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(find_usernames(emulator, "active", 3)))
    freezes = []
    monkeypatch.setattr(collection, "_freeze_after_loading", True)
    monkeypatch.setattr(
        gc, "freeze", lambda: freezes.append(emulator.stats()["user_info_requests"])
    )
    before = emulator.stats()["user_info_requests"]
    assert main(["snapshot"]) == 0
    assert freezes == [before]  # once, after loading, before the first user-info request
    assert emulator.stats()["user_info_requests"] == before + 3
    assert gc.isenabled()


def test_an_api_a_day_ahead_of_this_machine_is_snapshotted_and_further_is_refused(
    env, emulator, tmp_path, capsys
):
    from datetime import UTC, datetime, timedelta

    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(find_usernames(emulator, "active", 2)))
    today = datetime.now(UTC).date()
    emulator.clock.set_date(today + timedelta(days=1))  # near midnight, this machine behind
    assert main(["snapshot"]) == 0
    with duckdb.connect(env["RESEARCH_PIPELINE_DUCKDB"], read_only=True) as conn:
        days = conn.execute("SELECT DISTINCT snapshot_date FROM tiktok.user_info").fetchall()
    assert days == [(today + timedelta(days=1),)]
    capsys.readouterr()
    emulator.clock.set_date(today + timedelta(days=5))  # a rehearsal of days ahead
    assert main(["snapshot"]) == 2
    err = capsys.readouterr().err
    assert "clocks disagree by 5 days" in err and len(err.strip().splitlines()) == 1


def test_cohorts_remove_unregisters_the_cohort_and_keeps_its_data(env, emulator, tmp_path, capsys):
    source = tmp_path / "mine.txt"
    source.write_text("\n".join(find_usernames(emulator, "active", 3)) + "\n")
    assert main(["cohorts", "add", "lab_a", str(source), "--cadence", "3"]) == 0
    assert main(["snapshot"]) == 0
    capsys.readouterr()
    assert main(["cohorts", "remove", "lab_a"]) == 0
    assert "data already taken stays" in capsys.readouterr().out
    assert main(["cohorts", "list"]) == 0
    assert "lab_a" not in capsys.readouterr().out  # no "(file missing)" row left behind
    assert not (tmp_path / "cohorts" / "lab_a.txt").exists()
    assert "lab_a" not in (tmp_path / "cohorts" / "cohorts.toml").read_text()
    with duckdb.connect(env["RESEARCH_PIPELINE_DUCKDB"], read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM tiktok.user_info").fetchone() == (3,)
    assert main(["cohorts", "remove", "lab_a"]) == 2  # nothing left to remove: one line


def test_a_cadence_beyond_the_terms_is_refused_and_shown_the_same_everywhere(
    env, emulator, tmp_path, capsys
):
    source = tmp_path / "mine.txt"
    source.write_text("someone\n")
    assert main(["cohorts", "add", "lab_b", str(source), "--cadence", "30"]) == 2
    assert main(["cohorts", "add", "lab_b", str(source), "--cadence", "15"]) == 0
    assert main(["cohorts", "cadence", "lab_b", "30"]) == 2
    assert "15" in (tmp_path / "cohorts" / "cohorts.toml").read_text()
    (tmp_path / "cohorts" / "cohorts.toml").write_text("[lab_b]\ncadence_days = 30\n")  # by hand
    capsys.readouterr()
    assert main(["cohorts", "list"]) == 0
    assert "15d" in capsys.readouterr().out


def test_tombstones_export_like_the_other_tables(env, emulator, tmp_path):
    import pandas as pd

    gone = find_usernames(emulator, "unknown", 1)
    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(gone) + "\n")
    assert main(["snapshot"]) == 0
    out = tmp_path / "tombstones.parquet"
    assert main(["export", "tombstones", "--out", str(out), "--since", "2020-01-01"]) == 0
    frame = pd.read_parquet(out)
    assert list(frame.username) == gone and list(frame.kind) == ["not_found"]


@pytest.mark.parametrize("kind", ["empty", "folder", "garbage", "foreign", "newer", "cut short"])
def test_a_broken_warehouse_is_refused_in_one_line_by_every_command(
    env, emulator, tmp_path, capsys, kind
):
    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(find_usernames(emulator, "active", 2)))
    database = Path(env["RESEARCH_PIPELINE_DUCKDB"])
    if kind in ("newer", "cut short"):
        assert main(["snapshot"]) == 0
        for path in (database, published_path(database)):  # what export reads, too
            if kind == "newer":
                with duckdb.connect(str(path)) as conn:
                    conn.execute("INSERT INTO tiktok.schema_version VALUES (99, 'x', now())")
            else:
                data = path.read_bytes()
                path.write_bytes(data[: len(data) // 2])
    else:
        database.parent.mkdir(parents=True, exist_ok=True)
        if kind == "folder":
            database.mkdir()
        elif kind == "garbage":
            database.write_bytes(b"not a database\n" * 100)
        elif kind == "foreign":
            with duckdb.connect(str(database)) as conn:
                conn.execute("CREATE TABLE thesis_notes (line VARCHAR)")
        else:
            database.write_bytes(b"")
    capsys.readouterr()
    before = emulator.stats()["user_info_requests"]
    export_to = str(tmp_path / "x.parquet")
    for command in (["plan"], ["snapshot"], ["export", "user_info", "--out", export_to]):
        assert main(command) in (1, 2), (kind, command)
        err = capsys.readouterr().err
        assert "Traceback" not in err and "error" in err, (kind, command, err)
    assert emulator.stats()["user_info_requests"] == before  # no request spent on it
    assert not Path(export_to).exists()


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TIKTOK_REQUEST_DEADLINE_SECONDS", "0", "out of range"),
        ("TIKTOK_BACKOFF_BASE_SECONDS", "nan", "not a finite number"),
        ("TIKTOK_DAILY_QUOTA", "1e400", "not a finite number"),
        ("TIKTOK_CONCURRENCY", "1e20", "out of range"),
        ("TIKTOK_MAX_ATTEMPTS", "inf", "not a finite number"),
        ("RESEARCH_PIPELINE_RUN_DEADLINE_SECONDS", "nan", "not a finite number"),
        ("RESEARCH_PIPELINE_DAILY_BUDGET", "inf", "not a finite number"),
        ("RESEARCH_PIPELINE_MAX_DATA_AGE_DAYS", "40", "out of range"),
        ("TIKTOK_API_BASE_URL", "http://u:pw@127.0.0.1:9", "user name or password"),
        ("TIKTOK_API_BASE_URL", "https://169.254.169.254", "not TikTok's API"),
        ("DAGSTER_HOME", "relative/home", "relative path"),
    ],
)
def test_a_setting_that_makes_no_sense_is_refused_in_one_line_before_any_request(
    env, emulator, tmp_path, capsys, monkeypatch, variable, value, says
):
    (tmp_path / "cohorts" / "c1.txt").write_text("someone\n")
    monkeypatch.setenv(variable, value)
    assert main(["snapshot"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert emulator.stats()["user_info_requests"] == 0


def test_a_start_date_in_the_future_or_not_a_day_is_refused():
    from research_pipeline.errors import ConfigurationError
    from research_pipeline.orchestration.partitions import start_date

    assert start_date("2026-11-01") == "2026-11-01"
    for value, says in (("2099-01-01", "in the future"), ("yesterday", "not a day")):
        with pytest.raises(ConfigurationError, match=says):
            start_date(value)


def test_a_failed_run_prints_its_reason_in_one_line_and_no_stack_trace(
    env, emulator, tmp_path, capsys
):
    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(find_usernames(emulator, "active", 2)))
    emulator.config.scope_authorized = False  # research access not approved: the run fails
    assert main(["snapshot"]) == 1
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "Stack Trace" not in printed and 'File "' not in printed
    assert "tiktok__user_info: stopped after 0 users answered" in captured.out
    assert main(["-v", "snapshot"]) == 1  # behind -v, Dagster's own console, trace and all
    assert "Stack Trace" in "".join(capsys.readouterr())


def test_exports_never_write_over_what_they_did_not_write(env, emulator, tmp_path, capsys):
    """`export --out data/research.duckdb` overwrote the warehouse (exit 0); a file the user
    keeps there was replaced too. Now only an earlier export of ours is replaced."""
    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(find_usernames(emulator, "active", 2)))
    assert main(["snapshot"]) == 0
    database = Path(env["RESEARCH_PIPELINE_DUCKDB"])
    before = database.read_bytes()
    for target in (database, published_path(database), Path(str(database) + ".journal") / "x"):
        code = main(["export", "user_info", "--format", "csv", "--out", str(target)])
        assert code == 2 and "pipeline's own" in capsys.readouterr().err
    assert database.read_bytes() == before
    assert main(["export-dataset", "--cohort", "c1", "--out", str(database)]) == 2
    assert database.read_bytes() == before
    mine = tmp_path / "notes.csv"
    mine.write_text("my own notes\n")
    assert main(["export", "user_info", "--out", str(mine)]) == 2
    assert "not an earlier export" in capsys.readouterr().err
    assert mine.read_text() == "my own notes\n"
    out = tmp_path / "users.csv"
    assert main(["export", "user_info", "--out", str(out)]) == 0
    assert main(["export", "user_info", "--out", str(out)]) == 0  # ours: replaced
    (tmp_path / ".users.csv.partial-export").write_text("left by a killed export")
    assert main(["export", "user_info", "--out", str(out)]) == 0
    assert not (tmp_path / ".users.csv.partial-export").exists()


def test_a_killed_dataset_export_is_cleaned_up_by_the_next(env, emulator, tmp_path):
    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(find_usernames(emulator, "active", 2)))
    assert main(["snapshot"]) == 0
    out = tmp_path / "datasets" / "c1"
    killed = out.parent / ".partial-export-c1-999999999-abc"  # a pid no process has
    killed.mkdir(parents=True)
    (killed / "user_info.parquet").write_text("rows of accounts forgotten since")
    assert main(["export-dataset", "--cohort", "c1", "--out", str(out)]) == 0
    assert not killed.exists() and (out / "manifest.json").exists()


def test_the_readme_lists_every_variable_the_code_reads_and_no_other():
    """One surface of the settings tested against the code: a variable read and not in the
    README's configuration table (or listed and read nowhere) fails here."""
    import re

    repo = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\b((?:TIKTOK|RESEARCH_PIPELINE)_[A-Z0-9_]*[A-Z0-9])\b")
    read = set()
    for path in (repo / "research_pipeline").rglob("*.py"):
        read |= set(pattern.findall(path.read_text(encoding="utf-8")))
    readme = (repo / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration (environment)")[1].split("\n## ")[0]
    listed = set(re.findall(r"`((?:TIKTOK|RESEARCH_PIPELINE)_[A-Z0-9_*]+)`", table))
    prefixes = tuple(name[:-1] for name in listed if name.endswith("*"))
    assert sorted(v for v in read if v not in listed and not v.startswith(prefixes)) == []
    assert sorted(v for v in listed if not v.endswith("*") and v not in read) == []
