"""Ray Jobs on zray (`ray.job_submission`): submit a script to a cluster's head, follow its
status and logs, stop it. The client speaks Ray's REST API to the dashboard (`/api/jobs/`), so
Ray's own JobSubmissionClient works against zray too, and this one against Ray."""

from zray.job_submission.common import JobErrorType, JobInfo, JobStatus
from zray.job_submission.models import DriverInfo, JobDetails, JobType
from zray.job_submission.sdk import JobSubmissionClient

__all__ = [
    "JobSubmissionClient",
    "JobStatus",
    "JobErrorType",
    "JobInfo",
    "JobDetails",
    "DriverInfo",
    "JobType",
]
