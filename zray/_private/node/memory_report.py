"""`zray memory` on one node: every local process reports the objects it knows and why it
holds them; the node adds its store's own view (where the bytes are) and answers the CLI.

Bounded: a process that does not answer within the CLI's timeout is left out of the report
rather than holding it up.
"""

from __future__ import annotations

import logging
import time

from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)


def store_rows(store) -> list:
    """[object_id, size, state, primary, pins, owner_address] per object in the store."""
    rows = []
    for oid, obj in store.objects.items():
        state = "spilled" if obj.spilled else "spilling" if obj.io else "memory"
        rows.append([oid, obj.size, state, obj.primary, sum(obj.pins.values()), obj.owner_address])
    return rows


class MemoryReportGather:
    """`answer`: the reply made of the node's MemoryReport (by default the report itself; the
    state API's object queries filter or summarize it first)."""

    def __init__(self, node, identity: bytes, seq: int, timeout_s: float, answer=None):
        self.node = node
        self.answer = answer or (lambda report: report)
        self.identity = identity
        self.seq = seq
        self.deadline = time.monotonic() + timeout_s
        self.waiting: dict[bytes, int] = {}  # client identity -> request seq
        self.processes: list = []
        self.done = False
        for client_id, client in list(node.clients.items()):
            address = node.endpoint.peers.get(client_id)
            if not address:
                continue
            self.waiting[client_id] = node.requests.send(
                address,
                P.GetRefTable(0),
                lambda reply, payload, c=client_id, info=client: self._answered(c, info, reply),
            )
        if not self.waiting:
            self._finish()

    def _answered(self, client_id: bytes, client, reply):
        if self.done or self.waiting.pop(client_id, None) is None:
            return
        if isinstance(reply, P.RefTable) and reply.rows:
            self.processes.append([client.pid, client.kind, reply.address, reply.rows])
        if not self.waiting:
            self._finish()

    def expire(self, now: float) -> bool:
        """True once answered (by everyone, or because time ran out)."""
        if not self.done and now >= self.deadline:
            for seq in self.waiting.values():
                self.node.requests.forget(seq)
            self.waiting.clear()
            self._finish()
        return self.done

    def _finish(self):
        self.done = True
        node = self.node
        try:
            report = P.MemoryReport(
                node.node_id,
                node.opts.node_ip,
                node.store.stats(),
                store_rows(node.store),
                self.processes,
            )
            node.endpoint.reply(self.identity, self.answer(report), self.seq)
        except Exception:  # runs from the node's timers: the asker's problem must not stop it
            logger.exception("could not answer a memory report request")
