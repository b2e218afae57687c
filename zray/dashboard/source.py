"""Where the dashboard's data comes from: the head and the nodes, asked through the state API
(`zray.util.state`) over one long-lived authenticated endpoint, so a page polled every second
costs one message per table instead of a new ZeroMQ context and handshake per request.

Calls block (they wait for answers); the server runs them on worker threads. One lock keeps
the endpoint to one question at a time, and answers are cached for a moment, so several open
tabs polling the same table cost the cluster one query.
"""

from __future__ import annotations

import itertools
import threading
import time

import zmq

from zray._fast import random_id
from zray._private.wire import protocol as P
from zray._private.wire.transport import REPLY, Endpoint, serve_context
from zray.util.state import _transport
from zray.util.state.api import StateApiClient
from zray.util.state.common import ListApiOptions, StateResource

CACHE_S = 0.5  # a poll every 1-2 s from each tab: answers this fresh are as good as new
QUERY_TIMEOUT_S = 5.0


class PersistentConnection(_transport.Connection):
    """The state API's connection, over an endpoint kept open for the dashboard's lifetime."""

    def __init__(self, head_address: str, creds):
        self.core = None
        self.head = head_address
        self.creds = creds
        self._ctx = zmq.Context()
        serve_context(self._ctx, creds)
        self._endpoint = Endpoint(
            b"dashboard-" + random_id(8), ["tcp://127.0.0.1:*"], self._ctx, creds
        )
        self._poller = zmq.Poller()
        self._poller.register(self._endpoint.inbox, zmq.POLLIN)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def _gather_own(self, requests: list, timeout: float) -> list:
        with self._lock:
            # Fresh sequence numbers each time: a late answer to an earlier, timed-out
            # question is recognised as stale and dropped.
            seqs = {}
            for index, (address, msg) in enumerate(requests):
                seq = next(self._seq) & 0xFFFFFFFF or next(self._seq)
                seqs[seq] = index
                self._endpoint.send(address, msg, seq=seq)
            answers: list = [None] * len(requests)
            deadline = time.monotonic() + timeout
            missing = len(requests)
            while missing:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0 or not self._poller.poll(min(left_ms, 100)):
                    if left_ms <= 0:
                        break
                    continue
                received = self._endpoint.receive()
                if not received or not received[3] & REPLY:
                    continue
                index = seqs.pop(received[2], None)
                if index is not None:
                    answers[index] = received[1]
                    missing -= 1
            return answers

    def close(self):
        with self._lock:
            self._endpoint.close()
            self._ctx.term()


class ClusterSource:
    """The dashboard's questions to the cluster, each answered as JSON-ready dicts."""

    def __init__(self, head_address: str, creds):
        self.connection = PersistentConnection(head_address, creds)
        self.state = StateApiClient._over(self.connection)
        self._cache: dict = {}
        self._cache_lock = threading.Lock()

    def close(self):
        self.connection.close()

    def _cached(self, key, compute):
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < CACHE_S:
                return hit[1]
        value = compute()
        with self._cache_lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    # ------------------------------------------------------------------ state rows

    def list_rows(self, resource: StateResource, options: ListApiOptions) -> dict:
        """Ray's ListApiResponse for `resource` (rows as dicts), with Ray's counts."""
        key = (resource, options.limit, options.detail, repr(options.filters))

        def compute():
            if options.has_conflicting_filters():  # nothing passes them: nothing is asked
                return {
                    "total": 0,
                    "num_after_truncation": 0,
                    "num_filtered": 0,
                    "result": [],
                    "partial_failure_warning": "",
                    "warnings": None,
                }
            response = self.state._list_response(resource, options)
            return response.asdict(response.rows)

        return self._cached(key, compute)

    def task_page(self, offset: int, limit: int, state: str) -> dict:
        """The tasks page's rows `offset` to `offset + limit` (by task id, Ray's order), with
        the state filter it chose: the head sends only those, without detail fields."""
        filters = [("state", "=", state)] if state else []
        options = ListApiOptions(
            limit=offset + limit, timeout=QUERY_TIMEOUT_S, filters=filters, detail=False
        )

        def compute():
            found = dict(self.list_rows(StateResource.TASKS, options))  # the cached one kept
            found["result"] = found["result"][offset:]
            found["offset"] = offset
            return found

        return self._cached(("task_page", offset, limit, state), compute)

    def summary(self, resource) -> dict:
        """Ray's SummaryApiResponse: {"total", "result": {"node_id_to_summary": ...}, ...}."""

        def compute():
            response = self.state._summary_response(resource, QUERY_TIMEOUT_S)
            return response.asdict({"node_id_to_summary": {"cluster": response.rows[0]}})

        return self._cached(("summary", resource), compute)

    # ------------------------------------------------------------------ the overview

    def nodes(self) -> list:
        """Every node with its resources in use, its object store and its machine's memory."""
        return self._cached("nodes", self._nodes)

    def node_table(self) -> list:
        return self._cached(
            "node_table", lambda: self.connection.ask_head(P.GetNodes(True), QUERY_TIMEOUT_S).nodes
        )

    def _nodes(self) -> list:
        nodes = self.node_table()
        alive = [n for n in nodes if n["alive"]]
        replies = self.connection.gather(
            [(n["address"], P.GetNodeStats(0)) for n in alive], QUERY_TIMEOUT_S
        )
        stats = {
            n["node_id"]: reply.stats
            for n, reply in zip(alive, replies)
            if isinstance(reply, P.NodeStats)
        }
        out = []
        for node in nodes:
            total = {k: v for k, v in node["resources"].items() if "_group_" not in k}
            available = node.get("available") or {}
            host = stats.get(node["node_id"], {}).get("host", {})
            out.append(
                {
                    "node_id": node["node_id"].hex(),
                    "ip": node["ip"],
                    "is_head": node["is_head"],
                    "state": "ALIVE" if node["alive"] else "DEAD",
                    "death_reason": node.get("death_reason") or "",
                    "cpus_total": total.get("CPU", 0),
                    "cpus_used": total.get("CPU", 0) - available.get("CPU", 0)
                    if node["alive"]
                    else 0,
                    "gpus_total": total.get("GPU", 0),
                    "gpus_used": total.get("GPU", 0) - available.get("GPU", 0)
                    if node["alive"]
                    else 0,
                    "resources_total": {
                        k: v
                        for k, v in total.items()
                        if not k.startswith("node:") and k not in ("memory", "object_store_memory")
                    },
                    "store_used": node.get("store_used", 0),
                    "store_capacity": node.get("object_store_memory", 0),
                    "memory_used": host.get("used", 0),
                    "memory_total": host.get("total", 0),
                    "cpu_percent": host.get("cpu_percent"),
                    "workers": stats.get(node["node_id"], {}).get("workers", 0),
                }
            )
        return out

    def memory(self) -> dict:
        """What `zray memory` shows: each reference per process, and the stores' totals."""
        return self._cached("memory", self._memory)

    def _memory(self) -> dict:
        from zray.scripts.memory import rows_of

        nodes = self.connection.ask_head(P.GetNodes(False), QUERY_TIMEOUT_S).nodes
        replies = self.connection.gather(
            [(n["address"], P.GetMemoryReport(int(QUERY_TIMEOUT_S * 800))) for n in nodes],
            QUERY_TIMEOUT_S,
        )
        reports = [r for r in replies if isinstance(r, P.MemoryReport)]
        rows = rows_of(reports)
        spilled = [row for r in reports for row in r.objects if row[2] != "memory"]
        return {
            "references": rows,
            "store_used": sum(r.store["used"] for r in reports),
            "store_capacity": sum(r.store["capacity"] for r in reports),
            "objects_in_memory": sum(1 for r in reports for row in r.objects if row[2] == "memory"),
            "spilled_bytes": sum(row[1] for row in spilled),
            "spilled_objects": len(spilled),
            "nodes_unanswered": len(nodes) - len(reports),
        }
