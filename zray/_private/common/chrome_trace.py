"""Ray's `chrome_tracing_dump` (ray/_private/profiling.py), computed on the head from its task
events for `zray.timeline()` and `zray timeline`: one complete event ("ph": "X") per run, a
row per worker (tid) grouped per node (pid), named by metadata events, since Perfetto takes
only integer pids and tids.
"""

from __future__ import annotations

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
