"""Ray's log API (`ray.util.state.list_logs`, `get_log`) over zray's nodes: each node lists and
reads the files of its session's logs directory (`ListLogs`, `ReadLog`), so logs of any machine
are reachable from any other, as through Ray's dashboard agents.
"""

from __future__ import annotations

import codecs
import fnmatch
import re
import time
from typing import Dict, Generator, List, Optional

from zray._private.common import log_names
from zray._private.wire import protocol as P
from zray.util.state._transport import Connection
from zray.util.state.exception import RayStateApiException

DEFAULT_RPC_TIMEOUT = 30
CHUNK_BYTES = P.LOG_CHUNK_MAX_BYTES
MAX_TAIL_BYTES = 1 << 20  # how far back from its end a file is searched for its last lines
MAX_FILES = P.LOG_LISTING_MAX_FILES
FOLLOW_INTERVAL_S = 0.5
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def list_logs(
    address: Optional[str] = None,
    node_id: Optional[str] = None,
    node_ip: Optional[str] = None,
    glob_filter: Optional[str] = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
) -> Dict[str, List[str]]:
    """The log files of one node, grouped as Ray groups them (`worker_out`, `worker_err`,
    `raylet` for the node daemon's `node.log`, `internal`).

    Args:
        address: The cluster's address; by default the one this process is connected to, or
            the one `zray start` recorded on this machine.
        node_id: Id of the node containing the logs.
        node_ip: Ip of the node containing the logs.
        glob_filter: Glob of the file names, e.g. `"*worker*"`.
        timeout: Seconds to wait for the cluster's answers.
    """
    assert node_ip is not None or node_id is not None, (
        "At least one of node ip and node id is required"
    )
    conn = Connection(address)
    node = _node(conn, node_id, node_ip, timeout)
    return log_names.categorize(_list(conn, node, glob_filter or "*", timeout))


def get_log(
    address: Optional[str] = None,
    node_id: Optional[str] = None,
    node_ip: Optional[str] = None,
    filename: Optional[str] = None,
    actor_id: Optional[str] = None,
    task_id: Optional[str] = None,
    pid: Optional[int] = None,
    follow: bool = False,
    tail: int = -1,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    suffix: str = "out",
    encoding: Optional[str] = "utf-8",
    errors: Optional[str] = "strict",
    submission_id: Optional[str] = None,
    attempt_number: int = 0,
    _interval: Optional[float] = None,
    filter_ansi_code: bool = False,
) -> Generator[str, None, None]:
    """Yields the text of one log file: by `filename` on a node, or a worker's stdout
    (`suffix="out"`) or stderr (`"err"`) by its `pid` or the `actor_id` it hosts. `tail`:
    only the last lines (-1: all); `follow`: keep yielding what is appended until closed.

    Raises:
        NotImplementedError: for `task_id` (zray records no task log offsets).
        RayStateApiException: if no file or more than one matches.
    """
    if task_id is not None:
        raise NotImplementedError(
            "get_log(task_id=...) is not supported: zray does not record where a task's "
            "output starts in its worker's log; use actor_id= or pid= for the whole log"
        )
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix must be 'out' or 'err', got {suffix!r}")
    conn = Connection(address)
    if submission_id is not None:
        node, filename = _job_log(conn, submission_id, timeout)
    elif actor_id is not None:
        node, filename = _actor_log(conn, actor_id, suffix, timeout)
    else:
        node = None
        if node_id is not None or node_ip is not None:
            node = _node(conn, node_id, node_ip, timeout)
        if pid is not None:
            node, filename = _unique(conn, [node] if node else None, f"*-{pid}.{suffix}", timeout)
        elif filename is None:
            raise ValueError("get_log needs one of filename, actor_id or pid")
        elif node is None:
            node = _node(conn, None, None, timeout)
    return _read(conn, node, filename, follow, tail, timeout, encoding, errors, _interval,
                 filter_ansi_code)  # fmt: skip


def _job_log(conn, submission_id: str, timeout: float) -> tuple:
    """The node and name of a submitted job's driver log (`job-driver-<id>.log`, kept where
    its supervisor ran the entrypoint)."""
    rows = conn.ask_head(P.GetStateTable("jobs"), timeout).rows
    job = next((r for r in rows if r.get("submission_id") == submission_id), None)
    if job is None:
        raise RayStateApiException(f"Job {submission_id} does not exist")
    node_id = job.get("driver_node_id")
    terminal = job.get("status") in ("SUCCEEDED", "FAILED", "STOPPED")
    if not node_id and not terminal:
        raise RayStateApiException(f"Job {submission_id} has not started: it has no log yet")
    name = f"job-driver-{submission_id}.log"
    rows = conn.ask_head(P.GetStateTable("nodes"), timeout).rows
    driver = next((r for r in rows if node_id and r["node_id"] == node_id), None)
    if driver is not None and driver["state"] == "ALIVE":
        return _node(conn, node_id, None, timeout), name
    # Its node is gone (a head restart ends the head node's session) or it never had one (it
    # failed first): a live node of that machine, the head's first, reads the log kept from
    # the old session (common/kept_job_logs.py), or the dashboard's note of why it failed.
    nodes = _nodes(conn, timeout)
    same_machine = [n for n in nodes if driver is None or n["node_ip"] == driver["node_ip"]]
    if not same_machine:
        raise RayStateApiException(f"There is no alive node with the log of job {submission_id}.")
    return same_machine[0], name


def _read(conn, node, filename, follow, tail, timeout, encoding, errors, interval, strip_ansi):
    decoder = codecs.getincrementaldecoder(encoding or "utf-8")(errors or "strict")
    offset = 0 if tail < 0 else _tail_start(conn, node, filename, tail, timeout)
    while True:
        reply = _read_chunk(conn, node, filename, offset, timeout)
        offset = reply.offset
        text = decoder.decode(reply.data)
        if text:
            yield _ANSI.sub("", text) if strip_ansi else text
        if offset < reply.size:
            continue  # more than one answer's worth is there already
        if not follow:
            return
        time.sleep(interval or FOLLOW_INTERVAL_S)


def _read_chunk(conn, node, filename: str, offset: int, timeout: float) -> P.LogChunk:
    reply = _ask(conn, node, P.ReadLog(filename, offset, CHUNK_BYTES), timeout)
    if not isinstance(reply, P.LogChunk):
        raise RayStateApiException(f"unexpected answer {type(reply).__name__}")
    return reply


def _tail_start(conn, node, filename: str, lines: int, timeout: float) -> int:
    """Where the file's last `lines` lines start. The node's first answer, its end, holds them
    unless the lines are long; else blocks before it are read backwards, at most
    MAX_TAIL_BYTES, so a huge last line is cut to its end."""
    reply = _read_chunk(conn, node, filename, -1, timeout)
    size, end = reply.size, reply.offset
    if lines == 0:
        return size
    block, start = reply.data, reply.offset - len(reply.data)
    seen = 0
    while True:
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) >= 0:
            if start + index == size - 1:
                continue  # the newline ending the file ends the last line; it starts none
            seen += 1
            if seen == lines:
                return start + index + 1
        if start <= 0 or end - start >= MAX_TAIL_BYTES:
            return max(start, 0)
        step = min(CHUNK_BYTES, start)
        block = _read_chunk(conn, node, filename, start - step, timeout).data[:step]
        start -= step


def _ask(conn, node: dict, msg, timeout: float):
    reply = conn.gather([(node["_address"], msg)], timeout)[0]
    if reply is None:
        raise RayStateApiException(
            f"Node {node['node_id']} ({node['node_ip']}) did not answer within {timeout}s."
        )
    if isinstance(reply, P.Error):
        raise RayStateApiException(reply.message)
    return reply


def _nodes(conn, timeout: float) -> list:
    rows = conn.ask_head(P.GetStateTable("nodes"), timeout).rows
    return sorted(
        (row for row in rows if row["state"] == "ALIVE"), key=lambda r: not r["is_head_node"]
    )


def _node(conn, node_id, node_ip, timeout: float) -> dict:
    """The live node of that id (or unique id prefix) or ip; with neither, the head node."""
    nodes = _nodes(conn, timeout)
    if node_id is not None:
        found = [n for n in nodes if n["node_id"].startswith(node_id)]
        what = f"node id {node_id}"
    elif node_ip is not None:
        found = [n for n in nodes if n["node_ip"] == node_ip]
        what = f"node ip {node_ip}"
    else:
        found, what = nodes[:1], "a head node"
    if not found or (node_id is not None and len(found) > 1):
        raise RayStateApiException(f"There is no alive node with {what}.")
    return found[0]


def _list(conn, node: dict, glob: str, timeout: float) -> list:
    return _matching(_ask(conn, node, P.ListLogs(MAX_FILES), timeout), glob)


def _matching(reply, glob: str) -> list:
    """The names in a node's LogList that match `glob` (none from a node that failed)."""
    if not isinstance(reply, P.LogList):
        return []
    return [name for name, _size, _mtime in reply.files if fnmatch.fnmatchcase(name, glob)]


def _unique(conn, nodes, glob: str, timeout: float) -> tuple:
    """The one (node, file) matching `glob` among `nodes` (default: every live node)."""
    nodes = nodes or _nodes(conn, timeout)
    replies = conn.gather([(n["_address"], P.ListLogs(MAX_FILES)) for n in nodes], timeout)
    found = [(node, name) for node, reply in zip(nodes, replies) for name in _matching(reply, glob)]
    if len(found) != 1:
        where = ", ".join(f"{n['node_id'][:8]}:{name}" for n, name in found)
        raise RayStateApiException(
            f"Expected one log file matching {glob!r}, found {len(found)}" + (f": {where}" if where else "")
        )  # fmt: skip
    return found[0]


def _actor_log(conn, actor_id: str, suffix: str, timeout: float) -> tuple:
    rows = conn.ask_head(P.GetStateTable("actors"), timeout).rows
    actor = next((r for r in rows if r["actor_id"] == actor_id), None)
    if actor is None:
        raise RayStateApiException(f"Actor {actor_id} not found.")
    worker_id, address = actor.get("_worker_id"), actor.get("_node_address")
    if not worker_id or not address:
        raise RayStateApiException(f"Actor {actor_id} has no worker yet: it has no log.")
    nodes = [n for n in _nodes(conn, timeout) if n["_address"] == address]
    if not nodes:
        raise RayStateApiException(f"The node of actor {actor_id} is not alive.")
    return _unique(conn, nodes, f"worker-{worker_id}-*.{suffix}", timeout)
