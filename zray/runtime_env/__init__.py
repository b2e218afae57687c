"""Ray's `ray.runtime_env`: RuntimeEnv and RuntimeEnvConfig, dicts with Ray's constructors."""

from __future__ import annotations

from zray._private.common import runtime_env as _RE


class RuntimeEnvConfig(dict):
    """A runtime env's `config`: `setup_timeout_seconds` (default 600, -1 for no bound),
    `eager_install` and `log_files`, validated as Ray validates them."""

    def __init__(
        self,
        setup_timeout_seconds: int = _RE.DEFAULT_SETUP_TIMEOUT_S,
        eager_install: bool = True,
        log_files: list | None = None,
    ):
        super().__init__(
            _RE.parse(
                {
                    "config": {
                        "setup_timeout_seconds": setup_timeout_seconds,
                        "eager_install": eager_install,
                        "log_files": log_files or [],
                    }
                }
            )["config"]
        )


class RuntimeEnv(dict):
    """A runtime env as a dict; the same fields as a plain `runtime_env={...}` dict. Fields
    zray cannot honour raise NotImplementedError naming the field."""

    def __init__(
        self,
        *,
        py_modules=None,
        py_executable=None,
        working_dir=None,
        pip=None,
        conda=None,
        container=None,
        env_vars=None,
        worker_process_setup_hook=None,
        nsight=None,
        rocprof_sys=None,
        config=None,
        _validate: bool = True,
        image_uri=None,
        uv=None,
        **kwargs,
    ):
        given = dict(
            kwargs,
            py_modules=py_modules,
            py_executable=py_executable,
            working_dir=working_dir,
            pip=pip,
            conda=conda,
            container=container,
            env_vars=env_vars,
            worker_process_setup_hook=worker_process_setup_hook,
            _nsight=nsight,
            _rocprof_sys=rocprof_sys,
            config=config,
            image_uri=image_uri,
            uv=uv,
        )
        given = {k: v for k, v in given.items() if v is not None}
        super().__init__(_RE.parse(given) if _validate else given)

    def to_dict(self) -> dict:
        return dict(self)

    def serialize(self) -> str:
        import json

        return json.dumps(self, sort_keys=True)

    @classmethod
    def deserialize(cls, serialized: str) -> "RuntimeEnv":
        import json

        return cls(_validate=False, **json.loads(serialized))

    def env_vars(self) -> dict:
        return self.get("env_vars", {})

    def working_dir(self) -> str:
        return self.get("working_dir", "")

    def py_modules(self) -> list:
        return self.get("py_modules", [])


__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
