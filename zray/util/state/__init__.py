"""zray.util.state: Ray's state API (`ray.util.state`) for what zray's head and nodes know:
actors, nodes, jobs, placement groups, workers, objects and tasks (from task events). Logs
(`list_logs`, `get_log`) are read from each node's session directory. Runtime envs and cluster
events are not there yet."""

from zray.util.state.api import (
    StateApiClient,
    get_actor,
    get_node,
    get_objects,
    get_placement_group,
    get_task,
    get_worker,
    list_actors,
    list_jobs,
    list_nodes,
    list_objects,
    list_placement_groups,
    list_tasks,
    list_workers,
    summarize_actors,
    summarize_objects,
    summarize_tasks,
)
from zray.util.state.logs import get_log, list_logs

__all__ = [
    "StateApiClient",
    "get_actor",
    "get_node",
    "get_objects",
    "get_placement_group",
    "get_task",
    "get_worker",
    "get_log",
    "list_actors",
    "list_jobs",
    "list_logs",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "list_workers",
    "summarize_actors",
    "summarize_objects",
    "summarize_tasks",
]
