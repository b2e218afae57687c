"""Worker stdout/stderr to the driver, line by line, prefixed like Ray: ``(add pid=1234) hi``.

File descriptors 1 and 2 are replaced by pipes, so output of C extensions and subprocesses is
caught too. A reader thread per stream batches complete lines and sends them to the node, which
relays them to the drivers. Every byte also goes to the worker's file in the session's logs
directory (`worker-<id>-ffffffff-<pid>.out|err`, Ray's names), for `zray logs` and the
dashboard.
"""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import sys
import termios
import threading
import time

from zray._private.wire import protocol as P

_task_name = [""]
_read_fds: list = []
_processing = threading.Lock()  # held by a reader between read() and sending the lines


def task_name() -> str:
    return _task_name[0]


def set_task_name(name: str, drain_timeout: float = 0.05):
    """Switches the prefix once output already written is on its way under the old name."""
    if name == _task_name[0]:
        return  # the usual case (the same function again): no drain, no syscalls
    deadline = time.monotonic() + drain_timeout
    while any(_unread(fd) for fd in _read_fds) and time.monotonic() < deadline:
        time.sleep(0.0005)
    with _processing:
        _task_name[0] = name


def _unread(fd: int) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def capture_output() -> dict:
    streams = {}
    for fd, name in ((1, "stdout"), (2, "stderr")):
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        streams[name] = read_end
        _read_fds.append(read_end)
    sys.stdout = io.TextIOWrapper(
        os.fdopen(1, "wb", buffering=0, closefd=False), line_buffering=True, write_through=True
    )
    sys.stderr = io.TextIOWrapper(
        os.fdopen(2, "wb", buffering=0, closefd=False), line_buffering=True, write_through=True
    )
    return streams


def start_forwarding(streams: dict, core, pid: int):
    for name, fd in streams.items():
        threading.Thread(
            target=_forward, args=(fd, name, core, pid), name=f"zray-{name}", daemon=True
        ).start()


def _open_log_file(core, stream: str, pid: int):
    """The worker's log file of `stream`, for `zray logs` and the dashboard's logs page: drivers
    only see lines while they run, a file keeps them. Created at the worker's start, as Ray's,
    so a worker that printed nothing still has one; rotated with Ray's variables
    (common/log_rotation.py). None if it cannot be created: output still reaches the driver."""
    from zray._private.common import log_rotation
    from zray._private.common.log_names import worker_log_name

    path = os.path.join(core.session_dir, "logs", worker_log_name(core.worker_id, pid, stream))
    try:
        return log_rotation.RotatingFile(path, *log_rotation.settings())
    except OSError:
        return None


def _forward(fd: int, stream: str, core, pid: int):
    log_file = _open_log_file(core, stream, pid)
    pending = b""
    readable = select.poll()
    readable.register(fd, select.POLLIN)
    while True:
        try:
            readable.poll()
        except OSError:
            return
        # Read under the lock: set_task_name waits for the pipe to be empty, then for the
        # lock, so bytes read before a switch always go out under the name they were written
        # with (a child run inline switches names right after its last print).
        with _processing:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            if log_file is not None:
                try:
                    log_file.write(chunk)
                except OSError:  # e.g. the disk is full: the driver still sees the output
                    log_file.close()
                    log_file = None
            pending += chunk
            if b"\n" not in pending:
                if len(pending) < 65536:
                    continue
                pending += b"\n"  # an endless line is still shown, in pieces
            text, _, pending = pending.rpartition(b"\n")
            lines = text.decode(errors="replace").split("\n")
            prefix = f"({_task_name[0] or 'worker'} pid={pid})"
            try:
                core.endpoint.send(core.node_address, P.LogLines(stream, prefix, lines))
            except Exception:  # the node is gone; nothing left to tell
                return
