"""Dagster's history kept for a while: old finished runs go with their logs, nothing else."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterRunStatus, instance_for_test, job, op

from research_pipeline.defs.housekeeping import housekeeping_job
from research_pipeline.orchestration.housekeeping import forget_old_runs


@op
def say_hello(context) -> None:
    print("hello")  # captured output: a compute log file under $DAGSTER_HOME/storage


@job
def a_job():
    say_hello()


def test_runs_older_than_the_kept_days_go_with_their_logs_and_newer_ones_stay(tmp_path):
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        old = [a_job.execute_in_process(instance=instance).run_id for _ in range(2)]
        storage = Path(tmp_path) / "storage"
        assert all((storage / run_id).is_dir() for run_id in old)
        queued = instance.create_run_for_job(a_job)  # not finished: never touched
        assert instance.get_run_by_id(queued.run_id).status == DagsterRunStatus.NOT_STARTED
        now = datetime.now(UTC)
        assert forget_old_runs(instance, keep_days=180, now=now) == 0  # all recent
        later = now + timedelta(days=181)
        assert forget_old_runs(instance, keep_days=180, now=later) == 2
        assert [r.run_id for r in instance.get_runs()] == [queued.run_id]
        assert not any((storage / run_id).exists() for run_id in old)
        assert instance.get_records_for_run(old[0]).records == []  # the event log too


def test_the_housekeeping_job_runs_with_its_kept_days(tmp_path):
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        a_job.execute_in_process(instance=instance)
        result = housekeeping_job.execute_in_process(
            instance=instance,
            run_config={"ops": {"forget_old_runs_op": {"config": {"keep_days": 7}}}},
        )
        assert result.success and result.output_for_node("forget_old_runs_op") == 0
        assert len(instance.get_runs()) == 2  # the job's own run and the recent one
