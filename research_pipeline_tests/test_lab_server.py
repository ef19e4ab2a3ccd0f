"""A lab server run unattended: credentials in one place (.env next to workspace.yaml), a run
without them fails in one line, the schedule's time is configurable."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
import requests
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    build_run_status_sensor_context,
)

from research_pipeline.definitions import load_project_defs
from research_pipeline.defs.tiktok.alerts import failed_day_alert, unfinished_day_alert
from research_pipeline_tests.helpers import (
    EMULATOR_SECRET,
    cli_process_environment,
    find_usernames,
    pipeline_environment,
)
from research_pipeline_tests.services import free_port, postgres_server, spawn, stop
from research_pipeline_tests.test_pipeline import failure_messages

REPO = Path(__file__).resolve().parent.parent
# End to end: the pipeline through Dagster or the CLI (`make check` leaves these out).
pytestmark = pytest.mark.e2e


def test_a_run_without_credentials_fails_in_one_line_that_says_where_they_go(pipeline):
    pipeline.write_cohort("alpha", ["someone"])
    pipeline.use_environment()
    pipeline.monkeypatch.delenv("TIKTOK_CLIENT_KEY")
    pipeline.monkeypatch.delenv("TIKTOK_CLIENT_SECRET")
    pipeline.defs = load_project_defs()  # as a UI's code location on a server without them
    [result] = pipeline.run(["alpha"])
    assert not result.success
    [message] = failure_messages(result)
    assert "TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET are not set" in message
    assert ".env file next to workspace.yaml" in message
    assert "\n" not in message.strip() and "DagsterInvalidConfigError" not in message
    assert pipeline.api.stats()["user_info_requests"] == 0


def test_the_env_file_gives_the_cli_its_credentials_and_never_overrides_the_environment(
    tmp_path, emulator
):
    env = cli_process_environment(tmp_path, emulator)
    secret, key = env.pop("TIKTOK_CLIENT_SECRET"), env.pop("TIKTOK_CLIENT_KEY")
    assert secret == EMULATOR_SECRET
    env_file = tmp_path / ".env"
    # A value already in the environment wins: the file's quota of 1 would leave one user out.
    env_file.write_text(
        f"TIKTOK_CLIENT_KEY={key}\nTIKTOK_CLIENT_SECRET='{secret}'\nTIKTOK_DAILY_QUOTA=1\n"
    )
    env["RESEARCH_PIPELINE_ENV_FILE"] = str(env_file)
    (tmp_path / "cohorts" / "alpha.txt").write_text("someone\nsomeone_else\n")
    command = [sys.executable, "-m", "research_pipeline.cli"]
    done = subprocess.run(
        [*command, "snapshot", "--cohort", "alpha"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert emulator.stats()["user_info_requests"] == 2
    assert secret not in done.stdout + done.stderr
    # A file named but missing is a typo, not "no credentials": one line, nothing spent.
    env["RESEARCH_PIPELINE_ENV_FILE"] = str(tmp_path / "missing.env")
    done = subprocess.run([*command, "plan"], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: RESEARCH_PIPELINE_ENV_FILE={tmp_path / 'missing.env'}: no such file; create it "
        "or unset the variable"
    ]
    assert os.environ["RESEARCH_PIPELINE_ENV_FILE"] == "none"  # the tests' own setting held


@pytest.fixture
def mailbox():
    """A real SMTP server on 127.0.0.1 (aiosmtpd) keeping what it receives."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler.messages
    finally:
        controller.stop()


@pytest.fixture
def chat_webhook():
    """A Slack-compatible incoming webhook on 127.0.0.1: keeps each posted JSON, answers 'ok'."""
    posts = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/secret", posts
    finally:
        server.shutdown()
        server.server_close()


def cli_snapshot(env: dict) -> subprocess.CompletedProcess:
    """`research-pipeline snapshot` as cron runs it, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "research_pipeline.cli", "snapshot"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def evaluate(sensor, pipeline, result, failed: bool):
    """Runs a run-status sensor on a finished run, as the daemon does."""
    run = pipeline.instance.get_run_by_id(result.run_id)
    event_type = DagsterEventType.RUN_FAILURE if failed else DagsterEventType.RUN_SUCCESS
    [record] = pipeline.instance.get_records_for_run(result.run_id, of_type=event_type).records
    context = build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=pipeline.instance,
        dagster_run=run,
        dagster_event=record.event_log_entry.dagster_event,
        resources={"alerts": pipeline.defs.resources["alerts"]},
    )
    if failed:
        context = context.for_run_failure()
    return sensor(context)


def test_someone_is_told_once_per_failed_day_with_its_cause(pipeline, mailbox, chat_webhook):
    (controller, mails), (webhook_url, posts) = mailbox, chat_webhook
    users = find_usernames(pipeline.api, "active", 4)
    pipeline.write_cohort("alpha", users[:2])
    pipeline.write_cohort("beta", users[2:])
    pipeline.use_environment()
    for name, value in {
        "RESEARCH_PIPELINE_ALERT_WEBHOOK_URL": webhook_url,
        "RESEARCH_PIPELINE_ALERT_EMAIL_TO": "pi@lab.example",
        "RESEARCH_PIPELINE_SMTP_HOST": controller.hostname,
        "RESEARCH_PIPELINE_SMTP_PORT": str(controller.port),
        "RESEARCH_PIPELINE_SMTP_STARTTLS": "0",
        "RESEARCH_PIPELINE_UI_URL": "http://lab-server:3000",
    }.items():
        pipeline.monkeypatch.setenv(name, value)
    day1 = pipeline.api.clock.today() - timedelta(days=2)  # three API days up to today
    pipeline.api.clock.set_date(day1)

    # Day 1: the credentials are gone. Two ticks fail; one message on each channel.
    pipeline.monkeypatch.delenv("TIKTOK_CLIENT_SECRET")
    pipeline.defs = load_project_defs()
    runs = []
    for _ in range(2):
        [result] = pipeline.run(["alpha", "beta"])
        assert not result.success
        evaluate(failed_day_alert, pipeline, result, failed=True)
        runs.append(result.run_id)
    assert len(posts) == 1 and len(mails) == 1
    text = posts[0]["text"]
    assert f"the snapshot of {day1} failed" in text and mails[0]["Subject"] in text
    assert "cohorts: alpha, beta" in text
    assert "TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET are not set" in text  # the cause
    assert "What to do" in text and f"http://lab-server:3000/runs/{runs[0]}" in text
    assert mails[0]["To"] == "pi@lab.example"
    mailed = [line.strip() for line in mails[0].get_content().strip().splitlines()]
    assert mailed == text.split("\n")[1:]  # the same text as the chat's, below its subject

    # Day 2: an outage; the run ends, the plan is not finished: one message, its cause named.
    pipeline.monkeypatch.setenv("TIKTOK_CLIENT_SECRET", EMULATOR_SECRET)
    pipeline.defs = load_project_defs()
    pipeline.api.clock.set_date(day1 + timedelta(days=1))
    pipeline.api.config.outage_requests = 100_000
    [result] = pipeline.run(["alpha", "beta"])
    evaluate(unfinished_day_alert, pipeline, result, failed=not result.success)
    assert len(posts) == 2 and len(mails) == 2
    text = posts[1]["text"]
    assert f"{day1 + timedelta(days=1)}: planned members were not fetched" in text
    assert "plan_completed" in text and "not_reached" in text and "outage" in text.lower()

    # Day 3: all well: nothing is sent.
    pipeline.api.config.outage_requests = 0
    pipeline.api.clock.set_date(day1 + timedelta(days=2))
    [result] = pipeline.run(["alpha", "beta"])
    assert result.success
    skipped = evaluate(unfinished_day_alert, pipeline, result, failed=False)
    assert "carried out" in skipped.skip_message
    assert len(posts) == 2 and len(mails) == 2
    assert webhook_url not in str(pipeline.instance.get_runs())  # the webhook's token stays put


@pytest.mark.slow
@dataclass
class LabServer:
    """The services of docs/deploy.md on loopback (see `lab_server`)."""

    srv: Path
    home: Path
    port: int
    settings: dict  # what .env holds
    env: dict  # what systemd gives the services (and the CLI beside them)
    processes: dict


@contextmanager
def lab_server(tmp_path: Path, emulator, cohorts: dict[str, list[str]], **extra: str):
    """A lab server as docs/deploy.md sets it up: dagster-webserver and dagster-daemon as two
    long-running processes started in the project folder, Dagster's storage on PostgreSQL,
    every setting in the .env there (`extra` added), Dagster's tables made first."""
    srv = tmp_path / "srv"
    home, folder, database = srv / "dagster_home", srv / "cohorts", srv / "data" / "r.duckdb"
    home.mkdir(parents=True)
    folder.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    shutil.copy(REPO / "workspace.yaml", srv / "workspace.yaml")
    for name, users in cohorts.items():
        (folder / f"{name}.txt").write_text("\n".join(users) + "\n")
    with postgres_server() as pg:
        settings = {
            **pipeline_environment(emulator, folder, database),
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": pg["host"],
            "DAGSTER_PG_PORT": str(pg["port"]),
            "DAGSTER_PG_DB": pg["db"],
            "DAGSTER_PG_USERNAME": pg["user"],
            "DAGSTER_PG_PASSWORD": "trust-auth",
            **extra,
        }
        del settings["RESEARCH_PIPELINE_ENV_FILE"]
        (srv / ".env").write_text("".join(f"{k}='{v}'\n" for k, v in settings.items()))
        # Only what systemd would give (PATH, HOME) and the file's place: the rest is in .env.
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "RESEARCH_PIPELINE_ENV_FILE": str(srv / ".env"),
        }
        bin_dir = Path(sys.executable).parent
        # Dagster's tables made once, as deploy.md says, before the services start together
        # (on an empty database they race to create them: 'type "instigators" already exists').
        migrated = subprocess.run(
            [str(bin_dir / "dagster"), "instance", "migrate"],
            cwd=srv, env={**env, **settings}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        port = free_port()
        logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("webserver", "daemon")}  # noqa: SIM115
        commands = {
            "webserver": [bin_dir / "dagster-webserver", "-w", "workspace.yaml", "-h",
                          "127.0.0.1", "-p", str(port)],
            "daemon": [bin_dir / "dagster-daemon", "run", "-w", "workspace.yaml"],
        }  # fmt: skip
        processes = {
            name: spawn([str(part) for part in command], cwd=srv, env=env, stdout=logs[name],
                        stderr=subprocess.STDOUT)
            for name, command in commands.items()
        }  # fmt: skip
        try:
            yield LabServer(srv, home, port, settings, env, processes)
        finally:
            for process in processes.values():
                stop(process, grace_seconds=5.0)
            for log in logs.values():
                log.close()


def test_the_daemon_fires_the_schedule_by_itself_on_postgres_with_the_env_file(tmp_path, emulator):
    """The lab server's schedule (on, ticking every minute for the test) runs the day's
    snapshot with nobody at the keyboard."""
    users = find_usernames(emulator, "active", 3)
    cron = {"RESEARCH_PIPELINE_SNAPSHOT_CRON": "* * * * *"}
    with lab_server(tmp_path, emulator, {"alpha": users}, **cron) as lab:
        bin_dir = Path(sys.executable).parent
        started = subprocess.run(
            [str(bin_dir / "dagster"), "schedule", "start", "daily_snapshot_schedule", "-w",
             "workspace.yaml"],
            cwd=lab.srv, env=lab.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        status = wait_for_scheduled_run(
            lab.home, lab.settings, list(lab.processes.values()), tmp_path
        )
        assert status == DagsterRunStatus.SUCCESS, read_logs(tmp_path)
        assert requests.get(f"http://127.0.0.1:{lab.port}/server_info", timeout=10).ok
    database = Path(lab.settings["RESEARCH_PIPELINE_DUCKDB"])
    with duckdb.connect(str(database), read_only=True) as conn:
        stored = conn.execute(
            "SELECT username FROM tiktok.user_info WHERE status = 'ok' ORDER BY 1"
        ).fetchall()
        summaries = conn.execute("SELECT count(*) FROM tiktok.cohort_summary").fetchone()[0]
    assert [u for (u,) in stored] == sorted(users) and summaries == 1


def wait_for_scheduled_run(home: Path, settings: dict, processes, logs: Path):
    """The first run the schedule started, once it has ended (status), read from Postgres."""
    deadline = time.monotonic() + 300
    with environment(settings), DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes), read_logs(logs)
            runs = instance.get_runs(
                RunsFilter(tags={"dagster/schedule_name": "daily_snapshot_schedule"})
            )
            if runs and runs[-1].is_finished:
                return runs[-1].status
            time.sleep(1)
    raise AssertionError("no scheduled run ended within 5 minutes:\n" + read_logs(logs))


@contextmanager
def environment(values: dict):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def read_logs(folder: Path) -> str:
    return "\n".join(p.read_text()[-2000:] for p in sorted(folder.glob("*.log")))


def test_a_rehearsal_days_ahead_runs_from_the_cli_with_the_days_ahead_setting(tmp_path, emulator):
    """The README's week-long rehearsal: the emulator's clock 5 days past this machine's. The
    CLI refuses it in one line by default and takes it with RESEARCH_PIPELINE_DAYS_AHEAD=7 (the
    partitions, and so the UI, reach that far)."""
    env = cli_process_environment(tmp_path, emulator)
    (tmp_path / "cohorts" / "alpha.txt").write_text(
        "\n".join(find_usernames(emulator, "active", 2))
    )
    ahead = emulator.clock.today() + timedelta(days=5)
    emulator.clock.set_date(ahead)
    command = [sys.executable, "-m", "research_pipeline.cli", "snapshot"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "RESEARCH_PIPELINE_DAYS_AHEAD" in refused.stderr
    [error] = [line for line in refused.stderr.splitlines() if not line.startswith("WARNING")]
    assert error.startswith("error: the API's day is")
    env["RESEARCH_PIPELINE_DAYS_AHEAD"] = "7"
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(tmp_path / "data" / "research.duckdb"), read_only=True) as conn:
        days = conn.execute("SELECT DISTINCT snapshot_date FROM tiktok.user_info").fetchall()
    assert days == [(ahead,)]
    env["RESEARCH_PIPELINE_DAYS_AHEAD"] = "a week"
    typo = subprocess.run(command, env=env, capture_output=True, text=True)
    assert typo.returncode == 2 and "RESEARCH_PIPELINE_DAYS_AHEAD='a week'" in typo.stderr


def test_a_broken_run_history_fails_in_one_line_spends_nothing_and_is_told(
    tmp_path, emulator, chat_webhook
):
    """Dagster's runs.db damaged: before, a raw SQLAlchemy traceback on every run, nobody told.
    Now one line naming the file and what to do, a non-zero exit for the service manager, and
    the alert channel told (it needs no Dagster)."""
    url, posts = chat_webhook
    env = cli_process_environment(tmp_path, emulator)
    env["RESEARCH_PIPELINE_ALERT_WEBHOOK_URL"] = url
    users = find_usernames(emulator, "active", 5)
    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(users) + "\n")
    runs = tmp_path / "dagster_home" / "history" / "runs.db"
    runs.parent.mkdir(parents=True)
    runs.write_bytes(b"this is not a SQLite file, " * 200)
    done = cli_snapshot(env)
    assert done.returncode == 2, done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert str(runs) in line and "move it aside" in line, done.stderr
    assert "Traceback" not in done.stderr
    assert emulator.stats()["user_info_requests"] == 0
    [post] = posts
    assert "Dagster's storage is broken" in post["text"] and str(runs) in post["text"]


def test_each_cause_of_a_day_is_told_once_whichever_came_first(pipeline, chat_webhook):
    """The API unreachable, then the credentials refused, the same API day: before, the
    second was never sent ('already told today': alerts were keyed per day, not per cause)."""
    webhook_url, posts = chat_webhook
    pipeline.write_cohort("alpha", find_usernames(pipeline.api, "active", 3))
    pipeline.configure(timeout_seconds=0.2)
    pipeline.use_environment()
    pipeline.monkeypatch.setenv("RESEARCH_PIPELINE_ALERT_WEBHOOK_URL", webhook_url)
    pipeline.defs = load_project_defs()
    pipeline.api.config.update({"token_stalls": 100, "hang_seconds": 0.5})
    for _ in range(2):  # two ticks while the API cannot be reached: told once
        [result] = pipeline.run(["alpha"])
        assert not result.success
        evaluate(failed_day_alert, pipeline, result, failed=True)
    assert len(posts) == 1 and "(outage)" in posts[0]["text"]
    pipeline.api.config.update({"token_stalls": 0, "scope_authorized": False})
    for _ in range(2):  # then the credentials are refused: told once too
        [result] = pipeline.run(["alpha"])
        assert not result.success
        evaluate(failed_day_alert, pipeline, result, failed=True)
    assert len(posts) == 2 and "(credentials)" in posts[1]["text"]
    pipeline.api.config.scope_authorized = True  # fixed the same day: the recovery is told
    for _ in range(2):
        [result] = pipeline.run(["alpha"])
        assert result.success
        evaluate(unfinished_day_alert, pipeline, result, failed=False)
    assert len(posts) == 3 and "recovered" in posts[2]["text"]
    assert "failed:credentials" in posts[2]["text"]


def test_a_failed_cli_snapshot_tells_the_channels_itself_once_per_day_and_cause(
    tmp_path, emulator, chat_webhook
):
    """Two failed `research-pipeline snapshot` runs (cron, as deploy.md documents): before, no
    alert at all (the sensor watches the daemon's runs only)."""
    url, posts = chat_webhook
    env = cli_process_environment(tmp_path, emulator)
    env["RESEARCH_PIPELINE_ALERT_WEBHOOK_URL"] = url
    (tmp_path / "cohorts" / "c1.txt").write_text("\n".join(find_usernames(emulator, "active", 3)))
    emulator.config.scope_authorized = False
    for _ in range(2):
        done = cli_snapshot(env)
        assert done.returncode == 1, done.stdout + done.stderr
    [post] = posts
    assert "failed (credentials)" in post["text"] and "cohorts: c1" in post["text"]
    assert url not in done.stdout + done.stderr  # the webhook's token stays put
    emulator.config.scope_authorized = True  # fixed: the next run completes the day
    done = cli_snapshot(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(posts) == 2 and "recovered" in posts[1]["text"]


def test_the_watchdog_tells_once_a_day_when_the_daemon_has_stopped_ticking(
    tmp_path, emulator, chat_webhook
):
    """Alerts come from the daemon: a dead daemon was the one failure nobody heard of."""
    import time as clock

    from dagster._daemon.types import DaemonHeartbeat

    url, posts = chat_webhook
    env = cli_process_environment(tmp_path, emulator)
    env["RESEARCH_PIPELINE_ALERT_WEBHOOK_URL"] = url
    home = tmp_path / "dagster_home"

    def watchdog():
        return subprocess.run(
            [sys.executable, "-m", "research_pipeline.cli", "watchdog"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def beat(seconds_ago: float) -> None:
        with DagsterInstance.from_config(str(home)) as instance:
            instance.add_daemon_heartbeat(
                DaemonHeartbeat(clock.time() - seconds_ago, "SCHEDULER", "d1", [])
            )

    beat(30)  # ticking
    assert watchdog().returncode == 0 and posts == []
    beat(3600)  # its last heartbeat an hour ago: stopped
    for _ in range(2):
        done = watchdog()
        assert done.returncode == 1 and "60 minutes ago" in done.stderr
    [post] = posts  # told once that day
    assert "the Dagster daemon has stopped" in post["text"]


def test_the_docs_start_a_postgres_without_root_that_dagster_migrates_into(tmp_path):
    """deploy.md's "Without root" commands, run as written (the folder, port and password put
    in; as root here, they run as the `postgres` user, as a user without sudo would run them),
    give a PostgreSQL that `dagster instance migrate` fills with deploy/dagster.postgres.yaml."""
    from research_pipeline_tests.services import _postgres_bin

    initdb = _postgres_bin("initdb")
    if not initdb:
        pytest.skip("PostgreSQL is not installed (scripts/ensure-test-services installs it)")
    docs = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    block = docs.split("### Without root")[1].split("```sh\n")[1].split("```")[0]
    # A home of its own outside tmp_path (whose parents only root may enter).
    home, port, password = Path(tempfile.mkdtemp(prefix="rp-home-")), free_port(), "s3cret-test"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: a user of its own
        shutil.chown(home, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    script = (
        block.replace("/usr/lib/postgresql/15/bin", str(Path(initdb).parent))
        .replace("~/", f"{home}/")
        .replace("5433", str(port))
    )
    done = subprocess.run(
        [*as_user, "bash", "-euc", script],
        input=f"{password}\n{password}\n", capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "PGPASSWORD": password},
    )  # fmt: skip
    stop_server = [*as_user, str(Path(initdb).with_name("pg_ctl")), "-D", f"{home}/pgdata", "stop"]
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        dagster_home = tmp_path / "dagster_home"
        dagster_home.mkdir()
        shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", dagster_home / "dagster.yaml")
        settings = {
            "DAGSTER_HOME": str(dagster_home), "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": password,
        }  # fmt: skip
        migrated = subprocess.run(
            [str(Path(sys.executable).with_name("dagster")), "instance", "migrate"],
            env={**os.environ, **settings}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        with environment(settings), DagsterInstance.from_config(str(dagster_home)) as instance:
            assert instance.get_runs() == []  # its tables are there, read through Postgres
    finally:
        subprocess.run(stop_server, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def test_a_semester_alone_every_cause_told_once_the_recovery_and_the_daemons_death(
    tmp_path, emulator, chat_webhook
):
    """The issue's service test: the lab server on PostgreSQL with a webhook; on the first
    API day an outage (two runs) and then refused credentials, each told once, then the
    recovery; on the second day a CLI run failing beside the daemon, told once by the CLI and
    not again by the daemon's sensor; then the daemon killed, and the watchdog tells it once.
    Runs are launched as the UI launches them (GraphQL, queued, started by the daemon)."""
    from dagster_graphql import DagsterGraphQLClient

    url, posts = chat_webhook
    users = find_usernames(emulator, "active", 3)
    settings = {"RESEARCH_PIPELINE_ALERT_WEBHOOK_URL": url, "TIKTOK_TIMEOUT_SECONDS": "0.2"}
    with lab_server(tmp_path, emulator, {"alpha": users}, **settings) as lab:
        day = emulator.clock.today()
        with environment(lab.settings), DagsterInstance.from_config(str(lab.home)) as instance:
            instance.add_dynamic_partitions("cohorts", ["alpha"])
            client = DagsterGraphQLClient("127.0.0.1", port_number=lab.port)
            wait_until(lambda: _webserver_up(lab.port), lab, tmp_path)

            def launched_run(told: int) -> DagsterRunStatus:
                """A run of today's partition as the UI launches it; waits for it to end and
                for `told` messages in all."""
                key = f"alpha|{day}"
                run_id = client.submit_job_execution(
                    "snapshot_job",
                    tags={"dagster/partition": key, "dagster/partition/cohort": "alpha",
                          "dagster/partition/date": str(day)},
                )  # fmt: skip
                wait_until(lambda: instance.get_run_by_id(run_id).is_finished, lab, tmp_path)
                wait_until(lambda: len(posts) >= told, lab, tmp_path)
                return instance.get_run_by_id(run_id).status

            emulator.config.update({"token_stalls": 100, "hang_seconds": 0.5})  # unreachable
            assert launched_run(told=1) == DagsterRunStatus.FAILURE
            assert launched_run(told=1) == DagsterRunStatus.FAILURE
            emulator.config.update({"token_stalls": 0, "scope_authorized": False})
            assert launched_run(told=2) == DagsterRunStatus.FAILURE
            emulator.config.scope_authorized = True  # fixed the same day
            assert launched_run(told=3) == DagsterRunStatus.SUCCESS

            day = day + timedelta(days=1)  # the second API day: the CLI fails beside the daemon
            emulator.clock.set_date(day)
            emulator.config.scope_authorized = False
            failed_at = time.time()
            done = cli_snapshot({**lab.env, **lab.settings})
            assert done.returncode == 1, done.stdout + done.stderr
            assert len(posts) == 4  # the CLI told it itself
            # The daemon's failure sensor has seen that run since, and said nothing more.
            wait_until(lambda: _sensor_ticked_after(instance, "failed_day_alert", failed_at),
                       lab, tmp_path)  # fmt: skip
            daemon = lab.processes.pop("daemon")  # the daemon dies (OOM killer, a crash)
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()

            def watchdog() -> subprocess.CompletedProcess:
                return subprocess.run(
                    [sys.executable, "-m", "research_pipeline.cli", "watchdog",
                     "--stale-minutes", "1"],
                    env={**lab.env, **lab.settings}, capture_output=True, text=True, timeout=120,
                )  # fmt: skip

            wait_until(lambda: watchdog().returncode == 1, lab, tmp_path, seconds=240)
            assert watchdog().returncode == 1  # still dead: not told twice
    subjects = [post["text"].split("\n")[0] for post in posts]
    assert len(posts) == 5, subjects
    assert "(outage)" in subjects[0] and "(credentials)" in subjects[1], subjects
    assert "recovered" in posts[2]["text"] and "(credentials)" in subjects[3], subjects
    assert "the Dagster daemon has stopped" in posts[4]["text"]


def wait_until(condition, lab: LabServer, logs: Path, seconds: float = 180) -> None:
    """Polls `condition` (the services alive) until it holds; fails with their logs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in lab.processes.values()), read_logs(logs)
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not reached within {seconds:.0f} s:\n" + read_logs(logs))


def _webserver_up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=5).ok
    except requests.ConnectionError:
        return False


def _sensor_ticked_after(instance: DagsterInstance, name: str, after: float) -> bool:
    """Whether the daemon evaluated sensor `name` after `after` (epoch seconds), to its end."""
    for state in instance.all_instigator_state():
        if state.name == name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            return bool(ticks) and ticks[0].timestamp > after and ticks[0].is_completed
    return False
