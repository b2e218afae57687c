"""The Jobs API's records without a cluster: JobInfo as Ray stores it, the job rows the head
derives from its KV and its drivers, and the runtime_env a submitted driver ends up with."""

from __future__ import annotations

import json

import pytest

from zray._private.common import submitted_driver
from zray._private.head import submitted_jobs
from zray.job_config import JobConfig
from zray.job_submission import JobDetails, JobInfo, JobStatus, JobType
from zray.job_submission.common import JobErrorType, JobSubmitRequest, job_data_key


def test_job_info_messages_and_json_round_trip_as_ray():
    pending = JobInfo(status=JobStatus.PENDING, entrypoint="x", runtime_env={"pip": ["a"]})
    assert pending.message == (
        "Job has not started yet. It may be waiting for the runtime environment to be set up."
    )
    reserved = JobInfo(status="PENDING", entrypoint="x", entrypoint_num_cpus=1)
    assert "waiting for resources" in reserved.message
    as_json = pending.to_json()
    assert as_json["runtime_env_json"] == '{"pip": ["a"]}' and "runtime_env" not in as_json
    assert as_json["status"] == "PENDING"
    assert JobInfo.from_json(json.loads(json.dumps(as_json))) == pending
    failed = pending.with_status(
        JobStatus.FAILED, "boom", 3, JobErrorType.JOB_ENTRYPOINT_COMMAND_ERROR
    )
    assert failed.end_time and failed.to_json()["error_type"] == "JOB_ENTRYPOINT_COMMAND_ERROR"
    with pytest.raises(RuntimeError, match="from a terminal state: FAILED -> RUNNING"):
        failed.with_status(JobStatus.RUNNING)
    assert JobInfo(status=JobStatus.STOPPED, entrypoint="x").message == (
        "Job was intentionally stopped."
    )


def test_submit_request_checks_types_as_ray():
    with pytest.raises(TypeError, match="entrypoint must be a string"):
        JobSubmitRequest(entrypoint=["python"])
    with pytest.raises(TypeError, match="metadata values must be strings"):
        JobSubmitRequest(entrypoint="x", metadata={"a": 1})
    with pytest.raises(TypeError, match="entrypoint_resources values must be numbers"):
        JobSubmitRequest(entrypoint="x", entrypoint_resources={"a": "1"})
    with pytest.raises(TypeError, match="entrypoint_num_cpus must be a number"):
        JobSubmitRequest(entrypoint="x", entrypoint_num_cpus=True)


def driver(job_id: str, namespace: str = "ns", submission_id: str | None = None) -> dict:
    metadata = {"job_submission_id": submission_id} if submission_id else {}
    return {
        "type": "DRIVER",
        "job_id": job_id,
        "submission_id": None,
        "driver_info": {"id": job_id, "node_ip_address": "127.0.0.1", "pid": "1"},
        "status": "RUNNING",
        "metadata": metadata,
        "_namespace": namespace,
    }


def test_job_rows_link_drivers_to_submissions_and_hide_internal_ones():
    record = JobInfo(status=JobStatus.RUNNING, entrypoint="python a.py", metadata={"k": "v"})
    kv = {
        ("job", job_data_key("raysubmit_a")): json.dumps(record.to_json()).encode(),
        ("job", b"something else"): b"{}",
        ("fn", job_data_key("not-a-job")): b"{}",
    }
    rows = submitted_jobs.job_rows(
        [
            driver("01000000", namespace="_ray_internal_dashboard"),
            driver("02000000", submission_id="raysubmit_a"),
            driver("03000000"),
        ],
        kv,
    )
    assert [(r["type"], r["job_id"], r["submission_id"]) for r in rows] == [
        ("SUBMISSION", "02000000", "raysubmit_a"),
        ("DRIVER", "03000000", None),
    ]
    submission = rows[0]
    assert submission["driver_info"]["id"] == "02000000" and submission["metadata"] == {"k": "v"}
    assert all("_namespace" not in r for r in rows)
    details = JobDetails(**submission)
    assert details.type == JobType.SUBMISSION and details.status == JobStatus.RUNNING


def test_a_submitted_driver_takes_the_jobs_env_and_metadata(monkeypatch):
    monkeypatch.delenv(submitted_driver.RAY_JOB_CONFIG_JSON_ENV_VAR, raising=False)
    config = JobConfig()
    assert submitted_driver.apply(config, {"env_vars": {"A": "1"}}) == {"env_vars": {"A": "1"}}
    injected = {
        "runtime_env": {"working_dir": "gcs://_ray_pkg_x.zip", "env_vars": {"A": "job"}},
        "metadata": {"job_submission_id": "raysubmit_x"},
    }
    monkeypatch.setenv(submitted_driver.RAY_JOB_CONFIG_JSON_ENV_VAR, json.dumps(injected))
    assert submitted_driver.apply(config, {"env_vars": {"B": "driver"}}) == {
        "working_dir": "gcs://_ray_pkg_x.zip",
        "env_vars": {"A": "job", "B": "driver"},
    }
    assert config.metadata == {"job_submission_id": "raysubmit_x"}
    with pytest.raises(ValueError, match="RAY_OVERRIDE_JOB_RUNTIME_ENV=1"):
        submitted_driver.apply(JobConfig(), {"env_vars": {"A": "driver"}})
    from zray._config import config

    monkeypatch.setattr(config, "override_job_runtime_env", True)
    merged = submitted_driver.apply(JobConfig(), {"env_vars": {"A": "driver"}})
    assert merged["env_vars"] == {"A": "driver"}
