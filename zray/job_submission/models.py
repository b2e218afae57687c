"""JobDetails, JobType and DriverInfo: what the Jobs API answers about a job (Ray's pydantic
models in ray/dashboard/modules/job/pydantic_models.py, as plain dataclasses with the same
fields and `dict()`/`json()`; unknown fields are ignored as pydantic does)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any, Dict, Optional

from zray.job_submission.common import JobStatus
from zray.util.state.common import DriverInfo


class JobType(str, Enum):
    """An enumeration for describing the different job types."""

    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"


@dataclass(init=False)
class JobDetails:
    """Job data with extra details about its driver and its submission."""

    type: JobType
    job_id: Optional[str] = None
    submission_id: Optional[str] = None
    driver_info: Optional[DriverInfo] = None
    status: JobStatus = JobStatus.PENDING
    entrypoint: str = ""
    message: Optional[str] = None
    error_type: Optional[str] = None
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    metadata: Optional[Dict[str, str]] = None
    runtime_env: Optional[Dict[str, Any]] = None
    driver_agent_http_address: Optional[str] = None
    driver_node_id: Optional[str] = None
    driver_exit_code: Optional[int] = None

    def __init__(self, **data):
        for required in ("type", "status", "entrypoint"):
            if required not in data:
                raise ValueError(f"JobDetails: field required: {required}")
        for f in fields(self):
            setattr(self, f.name, data.get(f.name, f.default))
        self.type = JobType(self.type)
        self.status = JobStatus(self.status)
        if self.error_type is not None and not isinstance(self.error_type, str):
            self.error_type = str(getattr(self.error_type, "value", self.error_type))
        if isinstance(self.driver_info, dict):
            self.driver_info = DriverInfo(**self.driver_info)

    def dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["type"] = self.type.value
        out["status"] = self.status.value
        return out

    def json(self) -> str:
        return json.dumps(self.dict())
