"""Runtime environments as Ray 2.60 defines them: validating a user's `runtime_env`, merging a
task's or actor's env over its parent's, and the canonical string that keys worker pools.

Ray's rules kept here: a field whose value is None, and an empty `env_vars` or `excludes`, ask
for nothing and vanish; `config` gains its defaults; a child's env overrides its parent's field
by field, except `env_vars`, merged key by key; a child that sets no env inherits its parent's
(the job's env in the driver). Fields zray cannot honour raise NotImplementedError naming the
field: running without them would not compute what Ray computes.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict

logger = logging.getLogger(__name__)

SUPPORTED = ("env_vars", "working_dir", "py_modules", "excludes", "config", "pip")
# Ray's known fields zray has no counterpart for (the rest are plugins, which zray lacks too).
KNOWN_UNSUPPORTED = (
    "conda",
    "container",
    "image_uri",
    "uv",
    "java_jars",
    "py_executable",
    "worker_process_setup_hook",
    "nsight",
    "_nsight",
    "rocprof_sys",
    "_rocprof_sys",
    "_ray_release",
    "_ray_commit",
    "_inject_current_ray",
)
DEFAULT_SETUP_TIMEOUT_S = 600  # Ray's DEFAULT_RUNTIME_ENV_TIMEOUT_SECONDS
CONFIG_FIELDS = ("setup_timeout_seconds", "eager_install", "log_files")
REMOTE_SCHEMES = (
    "s3://",
    "gs://",
    "https://",
    "http://",
    "file://",
    "hdfs://",
    "azure://",
    "abfss://",
)
PACKAGE_SCHEME = "gcs://"  # a package uploaded to the cluster, as Ray names them


def parse(runtime_env) -> dict:
    """The validated, normalized env (a plain dict; {} asks for nothing). Local paths stay
    local here: `packaging.upload` replaces them with package URIs."""
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, dict):
        raise TypeError(
            f"runtime_env must be a dict or a RuntimeEnv, got {type(runtime_env).__name__}"
        )
    for key in runtime_env:
        if key not in SUPPORTED:
            what = (
                "a field zray does not support"
                if key in KNOWN_UNSUPPORTED
                else "not a runtime_env field zray knows (zray has no runtime_env plugins)"
            )
            raise NotImplementedError(
                f"runtime_env field {key!r} is {what}; running without it would not do what "
                "Ray does. zray supports: " + ", ".join(SUPPORTED) + "."
            )
    env: dict = {}
    for key, value in runtime_env.items():
        if value is None:
            continue
        parsed = _PARSERS[key](value)
        if parsed is not None:
            env[key] = parsed
    return env


def _env_vars(env_vars) -> dict | None:
    if not isinstance(env_vars, dict):
        raise TypeError(
            f"runtime_env['env_vars'] must be of type Dict[str, str], got {type(env_vars)}"
        )
    for key, val in env_vars.items():
        if not isinstance(key, str):
            raise TypeError(
                "runtime_env['env_vars'] must be of type "
                f"Dict[str, str], but the key {key} is of type {type(key)}"
            )
        if not isinstance(val, str):
            raise TypeError(
                "runtime_env['env_vars'] must be of type "
                f"Dict[str, str], but the value {val} is of type {type(val)}"
            )
    return dict(env_vars) or None


def _check_location(value: str, field: str) -> None:
    if value.startswith(PACKAGE_SCHEME):
        return
    if value.startswith(REMOTE_SCHEMES):
        raise NotImplementedError(
            f"runtime_env[{field!r}] = {value!r}: zray does not download remote packages; "
            "give a local directory (or a .zip/.whl file), which zray uploads to the cluster."
        )
    if not os.path.exists(value):
        raise ValueError(f"{value} is not a valid path.")


def _working_dir(working_dir) -> str:
    if not isinstance(working_dir, str):
        raise TypeError(f"`working_dir` must be a string, got {type(working_dir)}.")
    _check_location(working_dir, "working_dir")
    if not working_dir.startswith(PACKAGE_SCHEME) and not (
        os.path.isdir(working_dir) or working_dir.endswith(".zip")
    ):
        raise ValueError(f"`working_dir` must be a directory or a .zip file, got {working_dir}.")
    return working_dir


def _py_modules(py_modules) -> list:
    if not isinstance(py_modules, list):
        raise TypeError(f"`py_modules` must be a list of strings, got {type(py_modules)}.")
    for module in py_modules:
        if not isinstance(module, str):
            raise TypeError(f"`py_module` must be a string, got {type(module)}.")
        _check_location(module, "py_modules")
        if not module.startswith(PACKAGE_SCHEME) and not (
            os.path.isdir(module) or module.endswith((".whl", ".zip"))
        ):
            raise ValueError(f"py_modules entry {module} must be a directory, a .whl or a .zip.")
    return list(py_modules)


def _excludes(excludes) -> list | None:
    if isinstance(excludes, list) and all(isinstance(path, str) for path in excludes):
        return list(excludes) or None
    raise TypeError(f"runtime_env['excludes'] must be of type List[str], got {type(excludes)}")


def _config(config) -> dict:
    if not isinstance(config, dict):
        raise TypeError(
            f"runtime_env['config'] must be a dict or RuntimeEnvConfig, got {type(config)}"
        )
    unknown = set(config) - set(CONFIG_FIELDS)
    if unknown:
        raise NotImplementedError(
            f"runtime_env['config'] fields {sorted(unknown)} are not "
            f"known; zray knows {list(CONFIG_FIELDS)}."
        )
    timeout = config.get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_S)
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        raise TypeError(f"setup_timeout_seconds must be of type int, got: {type(timeout)}")
    if timeout <= 0 and timeout != -1:
        raise ValueError(
            f"setup_timeout_seconds must be greater than zero or equals to -1, got: {timeout}"
        )
    eager = config.get("eager_install", True)
    if not isinstance(eager, bool):
        raise TypeError(f"eager_install must be a boolean. got {type(eager)}")
    log_files = config.get("log_files", [])
    if not isinstance(log_files, list):
        raise TypeError(f"log_files must be a list of strings. got {type(log_files)}")
    return {"eager_install": eager, "log_files": list(log_files), "setup_timeout_seconds": timeout}


def _pip(pip) -> dict | None:
    if isinstance(pip, str):
        result: dict = {"packages": _requirements_file(pip), "pip_check": False}
    elif isinstance(pip, list) and all(isinstance(dep, str) for dep in pip):
        result = {"packages": list(pip), "pip_check": False}
    elif isinstance(pip, dict):
        extra = set(pip) - {"packages", "pip_check", "pip_install_options", "pip_version"}
        if extra:
            raise ValueError(
                "runtime_env['pip'] can only have these fields: packages, "
                "pip_check, pip_install_options and pip_version, but got: "
                f"{list(pip)}"
            )
        if "packages" not in pip:
            raise ValueError(f"runtime_env['pip'] must include field 'packages', but got {pip}")
        result = dict(pip)
        result["pip_check"] = pip.get("pip_check", False)
        if not isinstance(result["pip_check"], bool):
            raise TypeError(
                "runtime_env['pip']['pip_check'] must be of type bool, "
                f"got {type(result['pip_check'])}"
            )
        if not isinstance(result.get("pip_version", ""), str):
            raise TypeError(
                "runtime_env['pip']['pip_version'] must be of type str, "
                f"got {type(result['pip_version'])}"
            )
        options = result.get("pip_install_options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise TypeError("runtime_env['pip']['pip_install_options'] must be of type list[str]")
        if isinstance(pip["packages"], str):
            result["packages"] = _requirements_file(pip["packages"])
        elif not isinstance(pip["packages"], list):
            raise ValueError(
                "runtime_env['pip']['packages'] must be of type str of list, "
                f"got: {type(pip['packages'])}"
            )
    else:
        raise TypeError(f"runtime_env['pip'] must be of type str or List[str], got {type(pip)}")
    # pip refuses a requirement given twice; order kept, so the spec's key is deterministic.
    result["packages"] = list(OrderedDict.fromkeys(result["packages"]))
    return result if result["packages"] else None


def _requirements_file(path: str) -> list:
    if not os.path.isfile(path):
        raise ValueError(f"{os.path.abspath(path)} is not a valid file")
    with open(path) as f:
        lines = [line.strip() for line in f]
    return [line for line in lines if line and not line.startswith("#")]


_PARSERS = {
    "env_vars": _env_vars,
    "working_dir": _working_dir,
    "py_modules": _py_modules,
    "excludes": _excludes,
    "config": _config,
    "pip": _pip,
}


def merge(parent: dict, child: dict) -> dict:
    """`child` over `parent`, as Ray's core worker merges a task's env over its parent's."""
    if not child:
        return dict(parent)
    merged = dict(parent)
    merged.update({k: v for k, v in child.items() if k != "env_vars"})
    env_vars = dict(parent.get("env_vars") or {})
    env_vars.update(child.get("env_vars") or {})
    if env_vars:
        merged["env_vars"] = env_vars
    return merged


def dumps(env: dict) -> str:
    """The canonical string of an env (sorted keys): equal envs, equal strings, one worker
    pool. The empty env is "" so that the default pool's key costs nothing to compare."""
    return json.dumps(env, sort_keys=True) if env else ""


def loads(serialized: str) -> dict:
    return json.loads(serialized) if serialized else {}


def setup_timeout_s(env: dict) -> float | None:
    """How long the node may take to set `env` up (None: no bound, Ray's -1)."""
    timeout = (env.get("config") or {}).get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_S)
    return None if timeout == -1 else float(timeout)
