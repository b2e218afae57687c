"""What the head answers `zray.util.state` with: its tables as rows with Ray 2.60's state field
names (`ray.util.state.common`), filtered, sorted and limited here (ListState) so only the
rows asked for are sent; the summaries of tasks and actors and the timeline's trace are
computed here too. GetStateTable sends a whole table (the log lookups', the jobs manager's).

A mixin of HeadService: it reads the head's tables and never changes them.
"""

from __future__ import annotations

import logging

from zray._config import config
from zray._private.common import state_summaries
from zray._private.common.chrome_trace import chrome_tracing_dump
from zray._private.common.state_rows import query_rows
from zray._private.head import actor_manager as A
from zray._private.head import submitted_jobs
from zray._private.head.task_queries import query_tasks, trace_rows
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)

# Ray names an actor waiting for its worker PENDING_CREATION (its arguments are resolved by the
# creator before CreateActor, so an actor never waits for dependencies at the head).
ACTOR_STATES = {
    A.PENDING: "PENDING_CREATION",
    A.ALIVE: "ALIVE",
    A.RESTARTING: "RESTARTING",
    A.DEAD: "DEAD",
}


def ms(seconds: float) -> int:
    return int(seconds * 1000) if seconds else 0


def tcp_ip(address: str) -> str:
    """The IP of the tcp:// part of an advertised address ('' when it has none)."""
    for part in address.split("|"):
        if part.startswith("tcp://"):
            return part[len("tcp://") :].rpartition(":")[0]
    return ""


class StateQueries:
    """HeadService's answers to the state API."""

    def _tables(self) -> dict:
        return {
            "actors": self._actor_rows,
            "nodes": self._node_rows,
            "jobs": self._job_rows,
            "placement_groups": self._placement_group_rows,
        }

    def on_GetStateTable(self, identity, msg: P.GetStateTable, seq):
        build = {
            **self._tables(),
            "tasks": self._task_rows,
            "task_events_stats": self._task_event_stats,
            "timeline": self._timeline,
        }.get(msg.kind)
        if build is None:
            self.endpoint.reply(
                identity, P.Error("ValueError", f"the head has no {msg.kind!r} table"), seq
            )
            return
        self.endpoint.reply(identity, P.StateTable(msg.kind, build()), seq)

    def on_ListState(self, identity, msg: P.ListState, seq):
        try:
            reply = self._state_rows(msg)
        except (ValueError, TypeError) as exc:  # a bad query, never the head's failure
            reply = P.Error("ValueError", str(exc))
        self.endpoint.reply(identity, reply, seq)

    def _state_rows(self, msg: P.ListState) -> P.StateRows:
        filters = [tuple(f) for f in msg.filters]
        columns, filterable = list(msg.columns), list(msg.filterable)
        source_limit = config.max_limit_from_data_source
        if msg.kind == "tasks":
            node_ips = {n.node_id: n.ip for n in self.nodes.values()}
            found = query_tasks(
                self.task_events, node_ips, filters, msg.limit, columns, filterable, source_limit
            )
            rows = [state_summaries.task_summary(found.rows)] if msg.summarize else found.rows
            return P.StateRows(rows, found.total, found.num_after_truncation, found.num_filtered)
        build = self._tables().get(msg.kind)
        if build is None:
            raise ValueError(f"the head cannot list {msg.kind!r}")
        if msg.summarize and msg.kind != "actors":
            raise ValueError(f"the head cannot summarize {msg.kind!r}")
        found = query_rows(build(), msg.kind, filters, msg.limit, columns, filterable, source_limit)
        rows = [state_summaries.actor_summary(found.rows)] if msg.summarize else found.rows
        return P.StateRows(rows, found.total, found.num_after_truncation, found.num_filtered)

    def _timeline(self) -> list:
        """The task runs the head has events of, as Chrome trace events."""
        return chrome_tracing_dump(
            trace_rows(self.task_events, {n.node_id: n.ip for n in self.nodes.values()})
        )

    # ------------------------------------------------------------------ tables

    def _node_rows(self) -> list:
        rows = []
        for node in self.nodes.values():
            rows.append(
                {
                    "node_id": node.node_id.hex(),
                    "node_ip": node.ip,
                    "is_head_node": node.is_head,
                    "state": "ALIVE" if node.alive else "DEAD",
                    "state_message": None
                    if node.alive
                    else f"Unexpected termination: {node.death_reason}",
                    # Ray names a node by its IP unless `--node-name` says otherwise.
                    "node_name": node.ip,
                    "resources_total": {
                        k: v for k, v in node.resources.items() if "_group_" not in k
                    },
                    "labels": {},
                    "start_time_ms": ms(node.started_at),
                    "end_time_ms": ms(node.ended_at),
                    # Not Ray's: where the state API asks this node for its workers.
                    "_address": node.address,
                }
            )
        return rows

    def _task_rows(self) -> list:
        """One row per task attempt the head has events of (Ray's TaskState, detail fields
        and profiling data included)."""
        return self.task_events.rows({n.node_id: n.ip for n in self.nodes.values()})

    def _task_event_stats(self) -> list:
        """One row: how many task attempts are kept and how many were dropped."""
        return [self.task_events.stats()]

    def _actor_rows(self) -> list:
        by_address = {n.address: n.node_id.hex() for n in self.nodes.values()}
        rows = []
        for actor in self.actors.actors.values():
            spec = actor.spec
            node_address = self.actor_nodes.get(actor.actor_id, "")
            group = spec.get("placement_group") or ""
            rows.append(
                {
                    "actor_id": actor.actor_id.hex(),
                    "class_name": spec.get("class_name", ""),
                    "state": ACTOR_STATES.get(actor.state, actor.state),
                    "job_id": actor.actor_id[-4:].hex(),
                    "name": spec.get("name") or "",
                    "node_id": by_address.get(node_address),
                    # The asker fills the pid in from the node's worker table.
                    "pid": 0,
                    "ray_namespace": spec.get("namespace", ""),
                    "serialized_runtime_env": "{}",
                    "required_resources": dict(spec.get("resources") or {}),
                    "death_cause": _death_cause(actor) if actor.state == A.DEAD else None,
                    "is_detached": spec.get("lifetime") == "detached",
                    "placement_group_id": _group_hex(group),
                    "repr_name": "",
                    "num_restarts": actor.num_restarts,
                    "num_restarts_due_to_lineage_reconstruction": 0,
                    "num_restarts_due_to_node_preemption": 0,
                    "call_site": None,
                    "label_selector": {},
                    "fallback_strategy": None,
                    "_worker_id": self.actor_workers.get(actor.actor_id, b"").hex(),
                    "_node_address": node_address,
                }
            )
        return rows

    def _job_rows(self) -> list:
        by_id = {n.node_id: n for n in self.nodes.values()}
        rows = []
        for job_id, job in self.jobs.items():
            address = job.get("address", "")
            node = by_id.get(self.node_of_client.get(address, b""))
            ip = node.ip if node is not None else tcp_ip(address)
            rows.append(
                {
                    "type": "DRIVER",
                    "job_id": job_id.hex(),
                    "submission_id": None,
                    "driver_info": {
                        "id": job_id.hex(),
                        "node_ip_address": ip,
                        "pid": str(job["pid"]),
                    },
                    "status": "RUNNING" if job["alive"] else "SUCCEEDED",
                    "entrypoint": "",
                    "message": None,
                    "error_type": None,
                    "start_time": ms(job["start"]),
                    "end_time": ms(job.get("end", 0.0)) or None,
                    "metadata": dict(job.get("metadata") or {}),
                    "runtime_env": {},
                    "driver_agent_http_address": None,
                    "driver_node_id": node.node_id.hex() if node is not None else None,
                    "driver_exit_code": None,
                    "_namespace": job.get("namespace", ""),
                }
            )
        return submitted_jobs.job_rows(rows, self.kv)

    def _placement_group_rows(self) -> list:
        rows = []
        for group in self.placement.groups.values():
            entry = self.placement.table_entry(group)
            stats = entry["stats"]
            rows.append(
                {
                    "placement_group_id": entry["placement_group_id"],
                    "name": group.name,
                    "creator_job_id": group.job_id.hex(),
                    "state": group.state,
                    "bundles": [
                        {
                            "bundle_id": {
                                "placement_group_id": entry["placement_group_id"],
                                "bundle_index": i,
                            },
                            "unit_resources": resources,
                            "node_id": entry["bundles_to_node_id"][i] or None,
                            "label_selector": {},
                        }
                        for i, resources in entry["bundles"].items()
                    ],
                    "is_detached": group.detached,
                    "stats": {
                        "end_to_end_creation_latency_us": int(
                            stats["end_to_end_creation_latency_ms"] * 1000
                        ),
                        "scheduling_latency_us": int(stats["scheduling_latency_ms"] * 1000),
                        "scheduling_attempt": stats["scheduling_attempt"],
                        "highest_retry_delay_ms": stats["highest_retry_delay_ms"],
                        "scheduling_state": stats["scheduling_state"],
                    },
                    "topology_strategy": {},
                    "topology_assignments": {},
                }
            )
        return rows


def _group_hex(group: str) -> str | None:
    """The id of the placement group an actor was created in ('<hex>:<capture>' in the spec)."""
    return group.split(":")[0] if group else None


def _death_cause(actor: A.Actor) -> dict:
    spec = actor.spec
    context = {
        # Ray's message for a constructor that raised carries its traceback.
        "error_message": actor.error_text or actor.death_cause,
        "actor_id": actor.actor_id.hex(),
        "class_name": spec.get("class_name", ""),
        "name": spec.get("name") or "",
        "ray_namespace": spec.get("namespace", ""),
        "owner_id": (spec.get("owner_id") or b"").hex(),
    }
    if actor.error:  # its constructor raised
        return {"creation_task_failure_context": context}
    return {"actor_died_error_context": context}
