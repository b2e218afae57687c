"""The job table as Ray's state API and Jobs API show it: each job submitted through the Jobs
API (its record in the KV, namespace "job", written by the dashboard and the job's supervisor)
is one SUBMISSION row carrying its last driver; drivers that no submission started are DRIVER
rows; drivers in Ray's internal namespaces (the dashboard's own) are not shown. Pure: the head's
tables in, rows out."""

from __future__ import annotations

import json
import logging

logger = logging.getLogger(__name__)

KV_NAMESPACE_JOB = "job"
JOB_DATA_KEY_PREFIX = b"_ray_internal_job_info_"
JOB_ID_METADATA_KEY = "job_submission_id"
INTERNAL_NAMESPACE_PREFIX = "_ray_internal_"


def submission_records(kv: dict) -> dict:
    """submission id -> the job's record (Ray's JobInfo JSON) from the head's KV."""
    out = {}
    for (namespace, key), value in kv.items():
        if namespace != KV_NAMESPACE_JOB or not key.startswith(JOB_DATA_KEY_PREFIX):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            logger.warning("ignoring an unreadable job record %r", key)
            continue
        out[key[len(JOB_DATA_KEY_PREFIX) :].decode(errors="replace")] = record
    return out


def job_rows(driver_rows: list, kv: dict) -> list:
    """Ray's list_jobs rows: SUBMISSION rows first (by submission id), then DRIVER rows.
    `driver_rows` are the head's drivers as DRIVER rows, each with its `_namespace`."""
    drivers_of: dict = {}
    plain = []
    for row in sorted(driver_rows, key=lambda r: r["job_id"]):
        namespace = row.pop("_namespace", "")
        if namespace.startswith(INTERNAL_NAMESPACE_PREFIX):
            continue
        submission_id = (row.get("metadata") or {}).get(JOB_ID_METADATA_KEY)
        if submission_id:
            drivers_of[submission_id] = row  # the last driver of the submission
        else:
            plain.append(row)
    rows = []
    for submission_id, record in sorted(submission_records(kv).items()):
        driver = drivers_of.get(submission_id)
        runtime_env = record.get("runtime_env_json")
        rows.append(
            {
                "type": "SUBMISSION",
                "job_id": driver["job_id"] if driver else None,
                "submission_id": submission_id,
                "driver_info": driver["driver_info"] if driver else None,
                "status": record.get("status"),
                "entrypoint": record.get("entrypoint", ""),
                "message": record.get("message"),
                "error_type": record.get("error_type"),
                "start_time": record.get("start_time"),
                "end_time": record.get("end_time"),
                "metadata": record.get("metadata") or {},
                "runtime_env": json.loads(runtime_env) if runtime_env else {},
                "driver_agent_http_address": record.get("driver_agent_http_address"),
                "driver_node_id": record.get("driver_node_id"),
                "driver_exit_code": record.get("driver_exit_code"),
            }
        )
    return rows + plain
