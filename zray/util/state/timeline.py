"""`zray.timeline()` and `zray timeline`: the tasks' runs as a Chrome trace (chrome://tracing,
https://ui.perfetto.dev), built from task events as Ray's `chrome_tracing_dump` builds it from
`list_tasks(detail=True)` (ray/_private/profiling.py): one complete event ("ph": "X") per run,
a row per worker (tid) grouped per node (pid), named by metadata events, since Perfetto takes
only integer pids and tids.
"""

from __future__ import annotations

import json
import time
from typing import Optional

from zray.util.state import api

# Ray's _default_color_mapping, for the names a task event can have.
_DEFAULT_COLOR = "generic_work"


def chrome_tracing_dump(tasks: list) -> list:
    """The trace events of `tasks` (TaskState dicts with their profiling_data)."""
    events: list = []
    node_index: dict = {}  # node IP -> pid
    worker_index: dict = {}  # (pid, "worker:<hex>") -> tid
    for task in tasks:
        profiling = task.get("profiling_data") or {}
        if profiling.get("component_type") not in ("worker", "driver"):
            continue
        node = profiling["node_ip_address"]
        component = profiling["component_type"] + ":" + profiling["component_id"]
        pid = node_index.setdefault(node, len(node_index))
        tid = worker_index.setdefault((pid, component), len(worker_index))
        for event in profiling["events"]:
            extra = dict(event["extra_data"])
            extra["task_id"] = task["task_id"]
            extra["job_id"] = task["job_id"]
            extra["attempt_number"] = task["attempt_number"]
            extra["func_or_class_name"] = task["func_or_class_name"]
            extra["actor_id"] = task["actor_id"]
            start_us = event["start_time"] * 1e3
            events.append(
                {
                    "cat": event["event_name"],
                    "name": extra.get("name", event["event_name"]),
                    "pid": pid,
                    "tid": tid,
                    "ts": start_us,
                    "dur": event["end_time"] * 1e3 - start_us,
                    "cname": _DEFAULT_COLOR,
                    "args": extra,
                    "ph": "X",
                }
            )
    for node, pid in node_index.items():
        events.append(
            {"name": "process_name", "args": {"name": f"Node {node}"}, "pid": pid, "ph": "M"}
        )
    for (pid, component), tid in worker_index.items():
        events.append(
            {
                "name": "thread_name",
                "args": {"name": component},
                "pid": pid,
                "tid": tid,
                "ph": "M",
            }
        )
    return events


def timeline(filename: Optional[str] = None):
    """Return a list of profiling events that can viewed as a timeline.

    Each task run is a complete event from its start to its end; write them to a file with
    `filename` (then nothing is returned) and open it in chrome://tracing or Perfetto.
    Raises RuntimeError before `init()`, as Ray does."""
    from zray._config import config
    from zray._private.core import runtime

    core = runtime.core
    if core is None:
        raise RuntimeError(
            "Ray has not been started yet. Timeline requires Ray to be initialized first."
        )
    events = core.task_events
    if events.enabled:
        events.flush()
        # Every process sends its events at this interval: what ran until now is then in.
        time.sleep(config.task_events_report_interval_ms / 1000.0 + 0.1)
    trace = dump(None)
    if filename is None:
        return trace
    with open(filename, "w") as out:
        json.dump(trace, out)
    return None


def dump(address: Optional[str], timeout: float = api.DEFAULT_RPC_TIMEOUT) -> list:
    """Every task run the head has events of, as trace events."""
    client = api.StateApiClient(address=address)
    return chrome_tracing_dump(client._tasks(timeout).rows)
