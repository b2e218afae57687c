"""The node's worker processes: spawned through the zygote fork server, tracked by pid."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time

from zray._config import environment_for_children
from zray._fast import random_id, WORKER_ID_SIZE
from zray._private.common.launch import module_command

logger = logging.getLogger(__name__)

# This many workers in a row that exit or time out before registering make the node stop
# starting workers for START_BACKOFF_S (then it tries one again): a node that cannot host more
# processes (descriptors, memory) kept forking replacements that never registered, up to 1,390
# processes and 17 GiB, while its callers waited without a word.
MAX_FAILED_STARTS = 5
START_BACKOFF_S = 10.0


class WorkerPool:
    def __init__(
        self,
        session_dir: str,
        node_address: str,
        node_id: bytes,
        start_timeout_s: float,
        node_ip: str,
        env_extra: dict,
    ):
        self.start_timeout_s = start_timeout_s
        # The token goes by environment, not argv, which every local user can read in ps.
        env = environment_for_children(env_extra)
        from zray._private.common.launch import set_parent_death_signal

        self.zygote = subprocess.Popen(
            module_command("zray._private.worker.zygote")
            + [node_address, node_id.hex(), session_dir, node_ip],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            preexec_fn=set_parent_death_signal,
            start_new_session=True,
        )
        os.set_blocking(self.zygote.stdout.fileno(), False)
        self._buffer = b""
        self.pids: dict[bytes, int] = {}  # worker_id -> pid
        self.by_pid: dict[int, bytes] = {}
        self.starting: dict[bytes, float] = {}  # worker_id -> deadline to register
        self.registered: set[bytes] = set()
        self.exit_codes: dict[bytes, int] = {}
        # worker_id -> its runtime env, non-default only; the node drops it when it exits.
        self.env_of: dict[bytes, str] = {}
        self.failed_starts = 0  # in a row: a registration resets it
        self.last_failure = ""
        self.refusing_until = 0.0

    @property
    def fd(self) -> int:
        return self.zygote.stdout.fileno()

    def spawn(self, runtime_env: str = "", context: dict | None = None) -> bytes:
        """Starts a worker; one for a runtime env gets that env's `context` (see zygote.py)."""
        worker_id = random_id(WORKER_ID_SIZE)
        self.starting[worker_id] = time.monotonic() + self.start_timeout_s
        line = f"spawn {worker_id.hex()}"
        if runtime_env:
            self.env_of[worker_id] = runtime_env
            line += " " + json.dumps(context).encode().hex()
        self.zygote.stdin.write(line.encode() + b"\n")
        self.zygote.stdin.flush()
        return worker_id

    def on_registered(self, worker_id: bytes) -> bool:
        if self.starting.pop(worker_id, None) is None:
            return False
        self.registered.add(worker_id)
        self.failed_starts = 0
        return True

    def start_failed(self, why: str) -> bool:
        """Counts a worker that never registered; True when this one makes the pool refuse
        to start workers for a while."""
        self.failed_starts += 1
        self.last_failure = why
        if self.failed_starts >= MAX_FAILED_STARTS and not self.refusing():
            self.refusing_until = time.monotonic() + START_BACKOFF_S
            return True
        return False

    def refusing(self) -> bool:
        return time.monotonic() < self.refusing_until

    def refusal_message(self) -> str:
        return (
            f"the node could not start a worker: {self.failed_starts} in a row exited or "
            f"timed out before registering (last: {self.last_failure}); it starts none "
            f"for {START_BACKOFF_S:.0f}s and fails the requests waiting for one. See the "
            f"node's log; descriptor or memory limits are the usual cause."
        )

    def read_events(self) -> list:
        """Returns ('exited', worker_id, code) events from the zygote's output."""
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        if not chunk:
            raise RuntimeError("worker zygote exited")
        self._buffer += chunk
        events = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            parts = line.decode(errors="replace").split()
            if len(parts) == 3 and parts[0] == "started":
                worker_id, pid = bytes.fromhex(parts[1]), int(parts[2])
                self.pids[worker_id] = pid
                self.by_pid[pid] = worker_id
            elif len(parts) == 3 and parts[0] == "exited":
                worker_id = self.by_pid.pop(int(parts[1]), None)
                if worker_id is not None:
                    self.pids.pop(worker_id, None)
                    self.registered.discard(worker_id)
                    was_starting = self.starting.pop(worker_id, None) is not None
                    events.append(("exited", worker_id, int(parts[2]), was_starting))
        return events

    def expired_starts(self, now: float) -> list:
        late = [w for w, deadline in self.starting.items() if deadline <= now]
        for worker_id in late:
            del self.starting[worker_id]
            self.kill(worker_id)
        return late

    def kill(self, worker_id: bytes, sig=signal.SIGKILL):
        pid = self.pids.get(worker_id)
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def pid_of(self, worker_id: bytes):
        return self.pids.get(worker_id)

    def shutdown(self, timeout: float = 2.0):
        for pid in list(self.by_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.zygote.stdin.close()
        except OSError:
            pass
        try:
            self.zygote.wait(timeout)
        except subprocess.TimeoutExpired:
            self.zygote.kill()
            self.zygote.wait(timeout)
        # Workers are the zygote's children; it reaped them before exiting. Any stragglers die
        # through PR_SET_PDEATHSIG.
        deadline = time.monotonic() + timeout
        for pid in list(self.by_pid):
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.01)
