"""A node's drivers and workers as the state API lists them (Ray's WorkerState fields): the live
ones, and the latest that exited, kept so `list_workers` can say how they ended (Ray's GCS keeps
dead workers too). Bounded: a node that runs many short-lived workers keeps only the last
MAX_EXITED.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from dataclasses import dataclass

from zray._private.wire import protocol as P

MAX_EXITED = 1000
# Exit codes of a worker the node itself stopped (idle, killed, its lease or group gone).
_STOPPED = {0, -signal.SIGTERM, -signal.SIGKILL}


@dataclass
class Entry:
    worker_id: bytes
    kind: str
    pid: int
    started_at: float
    ended_at: float = 0.0
    exit_code: int | None = None


class WorkerTable:
    def __init__(self) -> None:
        self.live: dict[bytes, Entry] = {}
        self.exited: deque[Entry] = deque(maxlen=MAX_EXITED)

    def joined(self, worker_id: bytes, kind: str, pid: int) -> None:
        self.live[worker_id] = Entry(worker_id, kind, pid, time.time())

    def left(self, worker_id: bytes, exit_code: int | None) -> None:
        entry = self.live.pop(worker_id, None)
        if entry is not None:
            entry.ended_at = time.time()
            entry.exit_code = exit_code
            self.exited.append(entry)

    def rows(self, node_id: str, ip: str, only: bytes | None = None) -> list:
        """Every entry's row, or with `only` the rows of that worker id."""
        live = self.live.values() if only is None else [self.live.get(only)]
        exited = self.exited if only is None else [e for e in self.exited if e.worker_id == only]
        return [_row(e, node_id, ip, alive=True) for e in live if e is not None] + [
            _row(e, node_id, ip, alive=False) for e in exited
        ]


def _row(entry: Entry, node_id: str, ip: str, alive: bool) -> dict:
    exit_type = exit_detail = None
    if not alive:
        exit_type, exit_detail = _how_it_ended(entry)
    return {
        "worker_id": entry.worker_id.hex(),
        "is_alive": alive,
        "worker_type": "DRIVER" if entry.kind == "driver" else "WORKER",
        "exit_type": exit_type,
        "node_id": node_id,
        "ip": ip,
        "pid": entry.pid,
        "exit_detail": exit_detail,
        # -1: Ray's "not known" (zray's zygote forks a worker in well under a millisecond).
        "worker_launch_time_ms": -1,
        "worker_launched_time_ms": -1,
        "start_time_ms": int(entry.started_at * 1000),
        "end_time_ms": int(entry.ended_at * 1000),
        "debugger_port": 0,
        "num_paused_threads": 0,
    }


def _how_it_ended(entry: Entry) -> tuple[str, str]:
    if entry.kind == "driver":
        return "INTENDED_USER_EXIT", "The driver exited."
    if entry.exit_code is None:
        return "INTENDED_SYSTEM_EXIT", "The worker disconnected."
    if entry.exit_code in _STOPPED:
        return "INTENDED_SYSTEM_EXIT", f"The worker exited with code {entry.exit_code}."
    return "SYSTEM_ERROR", f"The worker died unexpectedly with exit code {entry.exit_code}."


def on_get_state_table(node, identity: bytes, msg: P.GetStateTable, seq: int) -> None:
    """The node's handler: it answers for its own workers only (the head has the rest)."""
    if msg.kind != "workers":
        node.endpoint.reply(
            identity, P.Error("ValueError", f"a node has no {msg.kind!r} table"), seq
        )
        return
    node.endpoint.reply(
        identity,
        P.StateTable(msg.kind, node.worker_table.rows(node.node_id.hex(), node.opts.node_ip)),
        seq,
    )
