"""Ray's `JobConfig`: settings that apply to every task and actor of one job (one driver).

`init(job_config=JobConfig(...))` takes from it the job's runtime env, namespace, default actor
lifetime and metadata, with Ray's precedence: `init`'s own `runtime_env` and `namespace`
replace the config's. Fields that would change what a program computes and that zray cannot
honour yet (`code_search_path`, `_py_driver_sys_path`, turning lineage reconstruction off per
job) raise when `init` is given them, naming the field; `jvm_options` only matter to Java
workers, which zray never starts, so they warn once.
"""

from __future__ import annotations

import json
from typing import Any, Optional

_LIFETIMES = ("detached", "non_detached")


class JobConfig:
    def __init__(
        self,
        jvm_options: Optional[list] = None,
        code_search_path: Optional[list] = None,
        runtime_env: Optional[dict] = None,
        _client_job: bool = False,
        metadata: Optional[dict] = None,
        ray_namespace: Optional[str] = None,
        default_actor_lifetime: str = "non_detached",
        _disable_job_level_lineage_reconstruction: bool = False,
        _py_driver_sys_path: Optional[list] = None,
    ):
        self.jvm_options = jvm_options or []
        search_path = code_search_path or []
        if not isinstance(search_path, (list, tuple)):
            raise TypeError(f"The type of code search path is incorrect: {type(code_search_path)}")
        self.code_search_path = search_path
        self._client_job = _client_job
        self.metadata = metadata or {}
        self.ray_namespace = ray_namespace
        self.set_runtime_env(runtime_env)
        self.set_default_actor_lifetime(default_actor_lifetime)
        self._disable_job_level_lineage_reconstruction = _disable_job_level_lineage_reconstruction
        self._py_driver_sys_path = _py_driver_sys_path or []
        self.py_logging_config = None

    def set_metadata(self, key: str, value: str) -> None:
        self.metadata[key] = value

    def set_runtime_env(self, runtime_env: Optional[dict], validate: bool = False) -> None:
        self.runtime_env = runtime_env if runtime_env is not None else {}
        if validate:
            from zray._private.common import runtime_env as RE

            self.runtime_env = RE.parse(self.runtime_env)

    def set_py_logging_config(self, logging_config: Any = None) -> None:
        self.py_logging_config = logging_config

    def set_ray_namespace(self, ray_namespace: str) -> None:
        self.ray_namespace = ray_namespace

    def set_default_actor_lifetime(self, default_actor_lifetime: str) -> None:
        if default_actor_lifetime not in _LIFETIMES:
            raise ValueError("Default actor lifetime must be one of `detached`, `non_detached`")
        self._default_actor_lifetime = default_actor_lifetime

    @classmethod
    def from_json(cls, job_config_json: dict) -> "JobConfig":
        """A JobConfig from its JSON form (keys named like the constructor's arguments)."""
        if isinstance(job_config_json, str):
            job_config_json = json.loads(job_config_json)
        return cls(
            jvm_options=job_config_json.get("jvm_options", None),
            code_search_path=job_config_json.get("code_search_path", None),
            runtime_env=job_config_json.get("runtime_env", None),
            metadata=job_config_json.get("metadata", None),
            ray_namespace=job_config_json.get("ray_namespace", None),
            _client_job=job_config_json.get("client_job", False),
            _py_driver_sys_path=job_config_json.get("py_driver_sys_path", None),
        )

    def _unsupported(self) -> list:
        """Set fields zray cannot honour, by the argument names a user wrote."""
        names = []
        if self.code_search_path:
            names.append("code_search_path")
        if self._py_driver_sys_path:
            names.append("_py_driver_sys_path")
        if self._disable_job_level_lineage_reconstruction:
            names.append("_disable_job_level_lineage_reconstruction")
        return names
