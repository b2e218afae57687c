"""A driver started by a Ray Jobs supervisor: its init() takes the job's runtime_env and
metadata from RAY_JOB_CONFIG_JSON_ENV_VAR (set by zray/dashboard/job_supervisor.py), as Ray's
does, so the job's tasks and actors run in the env the job was submitted with and the job
table links the driver to its submission id (metadata `job_submission_id`)."""

from __future__ import annotations

import json
import os

RAY_JOB_CONFIG_JSON_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"
CONFLICT = (
    "Failed to merge the Job's runtime env {job} with a ray.init's runtime env {driver} because "
    "of a conflict. Specifying the same runtime_env fields or the same environment variable "
    "keys is not allowed. Use RAY_OVERRIDE_JOB_RUNTIME_ENV=1 to instruct Ray to combine Job "
    "and Driver's runtime environment in the event of a conflict."
)


def merge_runtime_env(job_env: dict | None, driver_env: dict | None, override: bool):
    """Ray's _merge_runtime_env: the driver's fields over the job's; None on a conflict (the
    same field, or the same env_vars key) unless `override`."""
    if not job_env:
        return dict(driver_env or {}) or None
    if not driver_env:
        return dict(job_env)
    merged = dict(job_env)
    for key, value in driver_env.items():
        if key == "env_vars" and isinstance(merged.get("env_vars"), dict):
            env_vars = dict(merged["env_vars"])
            for name, var in (value or {}).items():
                if name in env_vars and not override:
                    return None
                env_vars[name] = var
            merged["env_vars"] = env_vars
        elif key in merged and not override:
            return None
        else:
            merged[key] = value
    return merged


def apply(job_config, runtime_env: dict | None) -> dict | None:
    """The runtime_env init() uses, the job's merged in; the job's metadata set on
    `job_config`. Outside a submitted job, `runtime_env` as given."""
    # Not a setting but a message from the supervisor that started this process.
    raw = os.environ.get(RAY_JOB_CONFIG_JSON_ENV_VAR)
    if not raw:
        return runtime_env
    injected = json.loads(raw)
    job_env = injected.get("runtime_env") or {}
    from zray._config import config

    merged = merge_runtime_env(job_env, runtime_env, config.override_job_runtime_env)
    if merged is None and (job_env or runtime_env):
        raise ValueError(CONFLICT.format(job=job_env, driver=runtime_env))
    for key, value in (injected.get("metadata") or {}).items():
        job_config.set_metadata(key, value)
    return merged
