"""Names of the log files in a session's logs directory, and Ray's grouping of them."""

from __future__ import annotations

import re

NODE_LOG = "node.log"  # the node daemon's own log (Ray's raylet.out; the head's too)
_WORKER = re.compile(r"^worker-([0-9a-f]+)-([0-9a-f]+)-(\d+)\.(out|err)$")


def worker_log_name(worker_id: bytes, pid: int, stream: str) -> str:
    """Ray's name for a worker's output file (`job id` ffffffff: a zray worker serves any job)."""
    return f"worker-{worker_id.hex()}-ffffffff-{pid}.{'err' if stream == 'stderr' else 'out'}"


def worker_pid(name: str) -> int | None:
    match = _WORKER.match(name)
    return int(match.group(3)) if match else None


def categorize(files: list) -> dict:
    """Ray's log groups (`list_logs`' keys), by the same rules as its log manager."""
    groups: dict = {}
    for name in files:
        if "worker" in name and name.endswith(".out"):
            group = "worker_out"
        elif "worker" in name and name.endswith(".err"):
            group = "worker_err"
        elif name == NODE_LOG:
            group = "raylet"
        else:
            group = "internal"
        groups.setdefault(group, []).append(name)
    return groups
