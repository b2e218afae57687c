"""A node's log files (`ListLogs` / `ReadLog`), for the dashboard's logs page, `zray logs` and
`zray.util.state.list_logs/get_log`, which may ask from any machine: its `<session>/logs/`
(node.log, dashboard.log, the workers' `worker-<id>-ffffffff-<pid>.out|err`; names in
zray/_private/common/log_names.py). Only names the listing holds are read, so no request
reaches outside the directory (but for a submitted job's log kept from a session of this
machine now removed: common/kept_job_logs.py), and each answer is bounded, so a read costs the node's loop one
short local file read; an asker wanting more (a whole file, or following one) asks again from
where it got to.
"""

from __future__ import annotations

import os

from zray._private.common import kept_job_logs
from zray._private.wire import protocol as P

TAIL_BYTES = 64 * 1024  # what a first look at a file shows: its end
CHUNK_BYTES = P.LOG_CHUNK_MAX_BYTES  # also the most one poll of a live tail returns
MAX_FILES = P.LOG_LISTING_MAX_FILES


def listing(session_dir: str, limit: int = MAX_FILES) -> list:
    """[[name, size, mtime], ...] of the files in the node's log directory, by name; hidden
    ones are files being made (a rotation's new file: common/log_rotation.py)."""
    directory = os.path.join(session_dir, "logs")
    try:
        names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except OSError:
        return []
    files = []
    for name in names[: max(0, min(limit, MAX_FILES))]:
        try:
            info = os.stat(os.path.join(directory, name))
        except OSError:
            continue
        if os.path.isfile(os.path.join(directory, name)):
            files.append([name, info.st_size, info.st_mtime])
    return files


def read(session_dir: str, name: str, offset: int, max_bytes: int = CHUNK_BYTES) -> dict | None:
    """{"data": bytes, "offset": where the next read continues, "size", "truncated"}: from
    `offset`, or the last TAIL_BYTES (from a line start) when offset < 0; a file now shorter
    than `offset` (replaced) is read from its start. None for a name the directory lacks."""
    directory = os.path.join(session_dir, "logs")
    if not _bare_name(name):
        return None
    try:
        if name in os.listdir(directory):
            path = os.path.join(directory, name)
        else:  # a submitted job's log from a session of this machine now gone
            path = kept_job_logs.find(session_dir, name)
            if path is None:
                return None
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset < 0:
                start = max(0, size - TAIL_BYTES)
            else:
                start = offset if offset <= size else 0
            f.seek(start)
            data = f.read(max(0, min(max_bytes, CHUNK_BYTES)))
    except OSError:
        return None
    end = start + len(data)
    if offset < 0 and start > 0:
        data = data.partition(b"\n")[2]  # begin on a whole line
    return {"data": data, "offset": end, "size": size, "truncated": offset < 0 and start > 0}


# The node daemon's handlers (NodeDaemon._handlers): `node` is the daemon.


def on_list_logs(node, identity: bytes, msg: P.ListLogs, seq: int) -> None:
    node.endpoint.reply(identity, P.LogList(listing(node.session_dir, msg.limit)), seq)


def on_read_log(node, identity: bytes, msg: P.ReadLog, seq: int) -> None:
    if not _bare_name(msg.name):
        reply = P.Error("ValueError", f"bad log file name {msg.name!r}: a bare file name only")
        node.endpoint.reply(identity, reply, seq)
        return
    found = read(node.session_dir, msg.name, msg.offset, msg.max_bytes)
    if found is None:
        reply = P.Error("FileNotFound", f"this node has no log file {msg.name!r}")
    else:
        reply = P.LogChunk(
            msg.name, found["data"], found["offset"], found["size"], found["truncated"]
        )
    node.endpoint.reply(identity, reply, seq)


def on_forget_job_log(node, identity: bytes, msg: P.ForgetJobLog, seq: int) -> None:
    try:
        kept_job_logs.forget(node.session_dir, msg.submission_id)
    except ValueError as exc:
        node.endpoint.reply(identity, P.Error("ValueError", str(exc)), seq)
        return
    except OSError as exc:  # a full or read-only disk: the job's deletion stands regardless
        node.endpoint.reply(identity, P.Error("OSError", str(exc)), seq)
        return
    node.endpoint.reply(identity, P.Ok(0), seq)


def _bare_name(name) -> bool:
    return isinstance(name, str) and "/" not in name and name not in ("", ".", "..")
