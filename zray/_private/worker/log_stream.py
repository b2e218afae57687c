"""Worker stdout/stderr to the driver, line by line, prefixed like Ray: ``(add pid=1234) hi``.

File descriptors 1 and 2 are replaced by pipes, so output of C extensions and subprocesses is
caught too. A reader thread per stream batches complete lines and sends them to the node, which
relays them to the drivers.
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


class WorkerLogFile:
    """The worker's own copy of its output, `<session>/logs/worker-<id>-<pid>.out|err`, for the
    dashboard's log pages: drivers only see lines while they run, a file keeps them. Opened at
    the first byte, so workers that print nothing leave no files."""

    def __init__(self, session_dir: str, worker_id: bytes, pid: int, stream: str):
        suffix = "out" if stream == "stdout" else "err"
        self.path = os.path.join(
            session_dir, "logs", f"worker-{worker_id.hex()[:12]}-{pid}.{suffix}"
        )
        self.fd = -1

    def write(self, chunk: bytes):
        try:
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(self.fd, chunk)
        except OSError:
            pass  # a full disk or a removed session must not stop the output reaching drivers


def _forward(fd: int, stream: str, core, pid: int):
    log_file = WorkerLogFile(core.session_dir, core.worker_id, pid, stream)
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
            log_file.write(chunk)
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
