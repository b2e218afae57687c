"""A node's log files (its <session>/logs: `node.log`, each worker's `worker-*.out|err`) for
`zray logs` and `zray.util.state.list_logs/get_log`, which may ask from any machine.

Answers run in the node's loop, so each reads at most `MAX_READ` bytes from the page cache;
an asker wanting more (a whole file, or following one) asks again from where it got to.
"""

from __future__ import annotations

import fnmatch
import os

from zray._private.wire import protocol as P

MAX_READ = 1 << 20
_TAIL_BLOCK = 64 * 1024


def logs_dir(session_dir: str) -> str:
    return os.path.join(session_dir, "logs")


def on_list_logs(node, identity: bytes, msg: P.ListLogs, seq: int) -> None:
    try:
        names = os.listdir(logs_dir(node.session_dir))
    except OSError:
        names = []
    pattern = msg.glob or "*"
    files = sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))
    node.endpoint.reply(identity, P.LogList(files), seq)


def on_read_log(node, identity: bytes, msg: P.ReadLog, seq: int) -> None:
    name = msg.filename
    if not name or "/" in name or name in (".", ".."):
        node.endpoint.reply(identity, P.Error("ValueError", f"bad log file name {name!r}"), seq)
        return
    path = os.path.join(logs_dir(node.session_dir), name)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = msg.offset if msg.offset >= 0 else _tail_start(f, size, msg.tail_lines)
            f.seek(min(offset, size))
            data = f.read(min(MAX_READ, max(0, size - offset)))
    except FileNotFoundError:
        node.endpoint.reply(
            identity, P.Error("FileNotFoundError", f"no log file {name!r} on this node"), seq
        )
        return
    except OSError as exc:
        node.endpoint.reply(identity, P.Error("OSError", f"{name}: {exc.strerror}"), seq)
        return
    node.endpoint.reply(identity, P.LogData(min(offset, size), size, data), seq)


def _tail_start(f, size: int, lines: int) -> int:
    """Where the last `lines` lines of the file start (0 for -1, or if it has fewer); reads
    backwards at most MAX_READ bytes, so a huge last line is cut to its end."""
    if lines < 0 or size == 0:
        return 0
    if lines == 0:
        return size
    end = size
    f.seek(size - 1)
    if f.read(1) == b"\n":
        end -= 1  # the final newline ends the last line; it starts no new one
    position, seen = end, 0
    while position > 0 and size - position < MAX_READ:
        step = min(_TAIL_BLOCK, position)
        f.seek(position - step)
        block = f.read(step)
        for index in range(len(block) - 1, -1, -1):
            if block[index] == 10:
                seen += 1
                if seen == lines:
                    return position - step + index + 1
        position -= step
    return max(position, size - MAX_READ)
