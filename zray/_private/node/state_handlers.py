"""The node's answers to the state API about what it holds: its workers (ListState "workers")
and the objects its processes hold (ListState "objects", listed or summarized, and `zray
memory`'s GetMemoryReport). Objects are gathered from the processes' reference tables as for
`zray memory`, then filtered, limited or summarized here, so the asker receives at most
`limit` rows or one summary part per node.
"""

from __future__ import annotations

from zray._config import config
from zray._private.common import state_summaries
from zray._private.common.state_rows import object_rows, query_rows
from zray._private.node.memory_report import MemoryReportGather
from zray._private.wire import protocol as P

_MAX_GATHER_MS = 60_000


def _gather(node, identity: bytes, seq: int, timeout_ms: int, answer=None) -> None:
    timeout_s = min(max(timeout_ms, 0), _MAX_GATHER_MS) / 1000
    node._memory_reports.append(MemoryReportGather(node, identity, seq, timeout_s, answer))


def on_get_memory_report(node, identity: bytes, msg: P.GetMemoryReport, seq: int) -> None:
    _gather(node, identity, seq, msg.timeout_ms)


def _answer(msg: P.ListState):
    def answer(rows: list):
        try:
            found = query_rows(
                rows,
                msg.kind,
                [tuple(f) for f in msg.filters],
                msg.limit,
                list(msg.columns),
                list(msg.filterable),
                config.max_limit_from_data_source,
            )
        except (ValueError, TypeError) as exc:  # a bad query, never the node's failure
            return P.Error("ValueError", str(exc))
        rows = found.rows
        if msg.summarize:
            # This node's part of Ray's summary; the asker merges the parts and lists the
            # objects instead when the nodes hold more than a summary lists.
            rows = [state_summaries.object_summary_part(found.rows)]
        return P.StateRows(rows, found.total, found.num_after_truncation, found.num_filtered)

    return answer


def _one_worker(filters: list) -> bytes | None:
    """The worker an `worker_id =` filter names (the asker's pid lookup of an actor): only its
    rows need building, the filter keeps no other."""
    for entry in filters:
        if len(entry) != 3:
            continue  # malformed: query_rows answers it with its ValueError
        col, predicate, value = entry
        if str(col).lower() == "worker_id" and predicate == "=" and isinstance(value, str):
            try:
                return bytes.fromhex(value)
            except ValueError:
                return b""  # names no worker: the filter keeps nothing
    return None


def on_list_state(node, identity: bytes, msg: P.ListState, seq: int) -> None:
    answer = _answer(msg)
    if msg.kind == "objects":
        _gather(
            node,
            identity,
            seq,
            msg.timeout_ms,
            lambda report: answer(object_rows(report.node_ip, report.objects, report.processes)),
        )
    elif msg.kind == "workers" and not msg.summarize:
        table, only = node.worker_table, _one_worker(msg.filters)
        rows = table.rows(node.node_id.hex(), node.opts.node_ip, only)
        node.endpoint.reply(identity, answer(rows), seq)
    else:
        node.endpoint.reply(
            identity, P.Error("ValueError", f"a node cannot list {msg.kind!r}"), seq
        )
