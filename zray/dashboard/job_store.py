"""Job records in the head's KV (Ray's JobInfoStorageClient): the dashboard writes a job's
first record, its supervisor actor every change after, and `zray job delete` removes it. The
head persists its KV, so jobs outlive a head restart (`--head-state-path`). Works over any
connection with `ask_head` (the dashboard's, or a worker's through its core worker)."""

from __future__ import annotations

import json
from typing import Optional

from zray._private.wire import protocol as P
from zray.job_submission.common import (
    KV_NAMESPACE_JOB,
    JobErrorType,
    JobInfo,
    JobStatus,
    job_data_key,
)

TIMEOUT_S = 30.0


class JobInfoStore:
    def __init__(self, connection):
        self.connection = connection  # zray.util.state._transport.Connection or a subclass

    def put_info(self, submission_id: str, info: JobInfo, overwrite: bool = True) -> bool:
        """True if the record was stored (False: `overwrite` was off and the job exists)."""
        reply = self.connection.ask_head(
            P.KvPut(
                KV_NAMESPACE_JOB,
                job_data_key(submission_id),
                json.dumps(info.to_json()).encode(),
                overwrite,
            ),
            TIMEOUT_S,
        )
        return bool(reply.pass_)

    def get_info(self, submission_id: str) -> Optional[JobInfo]:
        reply = self.connection.ask_head(
            P.KvGet(KV_NAMESPACE_JOB, job_data_key(submission_id), 0.0), TIMEOUT_S
        )
        if not reply.found:
            return None
        return JobInfo.from_json(json.loads(reply.value))

    def delete_info(self, submission_id: str) -> bool:
        reply = self.connection.ask_head(
            P.KvDel(KV_NAMESPACE_JOB, job_data_key(submission_id)), TIMEOUT_S
        )
        return bool(reply.pass_)

    def put_status(
        self,
        submission_id: str,
        status: JobStatus,
        message: Optional[str] = None,
        driver_exit_code: Optional[int] = None,
        error_type: Optional[JobErrorType] = None,
        **more,
    ) -> JobInfo:
        """Moves the job to `status` (end_time set for a terminal one); a job already in a
        terminal status raises RuntimeError, as in Ray."""
        old = self.get_info(submission_id)
        if old is None:
            old = JobInfo(status=status, entrypoint="Entrypoint not found.")
        new = old.with_status(status, message, driver_exit_code, error_type, **more)
        self.put_info(submission_id, new)
        return new
