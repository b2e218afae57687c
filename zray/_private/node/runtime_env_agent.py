"""A node's runtime env setups (Ray's runtime env agent, inside the node daemon).

Before the node starts a worker for a non-default env, the env must exist on this node: its
packages fetched from the head's KV and unpacked, its pip virtualenv built. The loop asks the
head for missing packages (it alone owns the sockets); the slow parts (unzipping, `venv` and
`pip install`) run on a few threads, which announce each finished setup by a byte on a pipe the
loop polls, so no setup ever blocks the loop or another env's tasks. What a setup yields is the
worker *context*: env_vars, cwd, sys.path entries and the python to run under; the zygote applies
it to a forked worker (or execs the venv's python for a pip env).

Unpacked packages and venvs live under `<session>/runtime_resources/`, keyed by content hash
(packages) or by the hash of the pip spec (venvs), and are reused by every later env that names
them; they go with the session directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import site
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from zray._private.common import packaging
from zray._private.common import runtime_env as RE

PENDING, READY, FAILED = "pending", "ready", "failed"
SETUP_THREADS = 4
PIP_OUTPUT_TAIL = 4000  # characters of pip's output kept in the error


@dataclass
class EnvState:
    status: str
    deadline: float | None
    missing: set = field(default_factory=set)  # package URIs still on their way from the head
    fetched: dict = field(default_factory=dict)  # uri -> bytes
    context: dict = field(default_factory=dict)
    error: str = ""


class EnvSetups:
    def __init__(self, session_dir: str, fetch):
        """`fetch(uri, callback)` asks the head for a package; the callback gets its bytes, or
        None if the cluster does not have it, on the loop's thread."""
        self.resources_dir = os.path.join(session_dir, "runtime_resources")
        self._fetch = fetch
        self.states: dict[str, EnvState] = {}
        self._executor = ThreadPoolExecutor(SETUP_THREADS, thread_name_prefix="runtime-env")
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._venv_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    @property
    def fd(self) -> int:
        return self._wake_r

    def request(self, serialized: str) -> EnvState:
        """The env's state on this node, its setup started if this is the first ask."""
        state = self.states.get(serialized)
        if state is not None:
            return state
        env = RE.loads(serialized)
        timeout = RE.setup_timeout_s(env)
        state = EnvState(PENDING, None if timeout is None else time.monotonic() + timeout)
        self.states[serialized] = state
        for kind, uri in _packages(env):
            if not os.path.isdir(packaging.local_dir(self.resources_dir, kind, uri)):
                state.missing.add(uri)
        for uri in list(state.missing):
            self._fetch(uri, lambda data, uri=uri: self._on_fetched(serialized, uri, data))
        if not state.missing:
            self._start(serialized, state)
        return state

    def _on_fetched(self, serialized: str, uri: str, data):
        state = self.states.get(serialized)
        if state is None or state.status != PENDING or uri not in state.missing:
            return
        if data is None:  # reported through the pipe, like every other verdict
            self._report(
                serialized,
                None,
                f"the package {uri} is not in the cluster's KV "
                "store (was the driver that uploaded it gone before it was stored?)",
            )
            return
        state.missing.discard(uri)
        state.fetched[uri] = data
        if not state.missing:
            self._start(serialized, state)

    def _start(self, serialized: str, state: EnvState):
        fetched, state.fetched = state.fetched, {}
        self._executor.submit(self._setup, serialized, fetched, state.deadline)

    def _setup(self, serialized: str, fetched: dict, deadline):
        """On a setup thread: everything slow. Reports (serialized, context or None, error)."""
        try:
            context = self._build(RE.loads(serialized), fetched, deadline)
            self._report(serialized, context, "")
        except Exception as exc:  # every failure becomes the env's RuntimeEnvSetupError
            self._report(serialized, None, str(exc) or type(exc).__name__)

    def _report(self, serialized: str, context, error: str):
        self._done.put((serialized, context, error))
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # the pipe is full (the loop will drain it) or closed (shutting down)

    def _build(self, env: dict, fetched: dict, deadline) -> dict:
        sys_path = []
        cwd = None
        for kind, uri in _packages(env):
            target = packaging.local_dir(self.resources_dir, kind, uri)
            if uri in fetched:
                packaging.unpack(fetched[uri], target)
            if kind == "working_dir":
                cwd = target
            sys_path.append(target)
        context = {
            "env_vars": env.get("env_vars") or {},
            "cwd": cwd,
            "sys_path": sys_path,
            "runtime_env": RE.dumps(env),
            "python": None,
        }
        if env.get("pip"):
            context["python"] = self._venv(env["pip"], deadline)
        return context

    def _venv(self, pip: dict, deadline) -> str:
        """The python of the virtualenv for this pip spec, built the first time it is asked
        for (concurrent asks for the same spec wait for one build)."""
        key = hashlib.sha1(json.dumps(pip, sort_keys=True).encode()).hexdigest()[:16]
        with self._locks_lock:
            lock = self._venv_locks.setdefault(key, threading.Lock())
        with lock:
            path = os.path.join(self.resources_dir, "pip", key)
            python = os.path.join(path, "bin", "python")
            if os.path.exists(os.path.join(path, "zray-ready")):
                return python
            shutil.rmtree(path, ignore_errors=True)  # a build that failed or was cut short
            # --system-site-packages: zray and what the node's python has stay importable,
            # and pip installs only what is missing. No pip of its own in the venv: the
            # node's pip installs into it (seconds saved per env).
            _run(
                [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", path],
                deadline,
                "creating the virtualenv",
            )
            # A node that itself runs in a virtualenv: its site-packages, not the base
            # interpreter's, are the ones the workers must still see.
            purelib = subprocess.run(
                [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                timeout=_remaining(deadline),
            ).stdout.strip()
            with open(os.path.join(purelib, "_zray_node_site.pth"), "w") as f:
                f.write("\n".join(site.getsitepackages() + [site.getusersitepackages()]) + "\n")
            command = [
                sys.executable,
                "-m",
                "pip",
                "--python",
                python,
                "install",
                "--disable-pip-version-check",
            ]
            command += pip.get("pip_install_options") or ["--no-cache-dir"]
            if pip.get("pip_version"):
                command.append("pip" + pip["pip_version"])
            _run(command + list(pip["packages"]), deadline, "pip install")
            if pip.get("pip_check"):
                _run(
                    [sys.executable, "-m", "pip", "--python", python, "check"],
                    deadline,
                    "pip check",
                )
            open(os.path.join(path, "zray-ready"), "w").close()
            return python

    def completed(self) -> list:
        """(serialized env, state) of setups finished since the last call, ready or failed."""
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                serialized, context, error = self._done.get_nowait()
            except queue.Empty:
                return out
            state = self.states.get(serialized)
            if state is None or state.status != PENDING:
                continue  # timed out already: that verdict stands
            if context is None:
                out.append((serialized, self._fail(serialized, error)))
            else:
                state.status, state.context = READY, context
                out.append((serialized, state))

    def expired(self, now: float) -> list:
        out = []
        for serialized, state in list(self.states.items()):
            if state.status == PENDING and state.deadline is not None and now >= state.deadline:
                timeout = RE.setup_timeout_s(RE.loads(serialized))
                out.append(
                    (
                        serialized,
                        self._fail(
                            serialized,
                            f"the runtime env was not set up within setup_timeout_seconds="
                            f"{timeout:g}",
                        ),
                    )
                )
        return out

    def _fail(self, serialized: str, error: str) -> EnvState:
        """Failed envs are forgotten once reported: a later task of the env tries again."""
        state = self.states.pop(serialized)
        state.status, state.error = FAILED, error
        return state

    def shutdown(self):
        self._executor.shutdown(wait=False, cancel_futures=True)
        os.close(self._wake_r)
        os.close(self._wake_w)


def _packages(env: dict) -> list:
    out = []
    if env.get("working_dir"):
        out.append(("working_dir", env["working_dir"]))
    out += [("py_modules", uri) for uri in env.get("py_modules") or []]
    return out


def _remaining(deadline) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("setup_timeout_seconds ran out")
    return left


def _run(command: list, deadline, what: str):
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_remaining(deadline),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{what} did not finish within setup_timeout_seconds") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise RuntimeError(
            f"{what} failed (exit code {done.returncode}):\n{output[-PIP_OUTPUT_TAIL:]}"
        )
