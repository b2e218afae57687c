"""Log rotation with Ray's variables: a log file past `RAY_ROTATION_MAX_BYTES` (512 MiB) is
renamed `<name>.1` (the older ones shifting to `.2` ... up to `RAY_ROTATION_BACKUP_COUNT`, 5;
the oldest removed) and a new file starts, as Python's RotatingFileHandler, which Ray uses,
names them. A backup count of 0 never rotates, as there. Used for the workers' output files
(`worker/log_stream.py`, at each write), and the logs that are a process's own stderr, checked
once a second: the node daemon's `node.log`, the dashboard's `dashboard.log` (its stdout
too) and the Ray Client server's `client_server.log`.

The rotated files stay in the logs directory, so `zray logs`, `list_logs` and `get_log` list
and read them by name; a worker's current file keeps its name, which `get_log(pid=...)` finds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

logger = logging.getLogger(__name__)

CHECK_S = 1.0  # how often the node checks its own log's size


def settings(cfg=None) -> tuple[int, int]:
    """(max bytes, backup count): RAY_ROTATION_MAX_BYTES and RAY_ROTATION_BACKUP_COUNT, read
    into the config like every setting."""
    from zray._config import config

    cfg = cfg or config
    return max(0, cfg.rotation_max_bytes), max(0, cfg.rotation_backup_count)


def shift_backups(path: str, backup_count: int) -> None:
    """`path.1` becomes `path.2`, ... (the oldest is removed), what `path` holds becomes
    `path.1`, and `path` names a new empty file. `path` never stops naming a file: its content
    is linked as `path.1` before the new file replaces it in one rename, so a reader looking it
    up meanwhile (`get_log(pid=...)` while a worker's output rotates) finds the old or the new."""
    for index in range(backup_count - 1, 0, -1):
        older = f"{path}.{index}"
        if os.path.exists(older):
            os.replace(older, f"{path}.{index + 1}")
    backup = f"{path}.1"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(backup)  # still there only with one backup kept
    try:
        os.link(path, backup)
    except OSError:  # a file system without hard links: renamed, as Python's handler does
        os.replace(path, backup)
        return
    directory, name = os.path.split(path)
    fresh = os.path.join(directory, f".{name}.rotating")  # hidden: log listings skip it
    os.close(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    os.replace(fresh, path)


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


class RotatingFile:
    """An append-only log file written with os.write, rotated at a line's end before the limit
    (a worker's pipe hands over many lines at once; a single line longer than the limit goes
    whole into a file of its own, as a record does with Python's handler)."""

    def __init__(self, path: str, max_bytes: int, backup_count: int):
        self.path = path
        self.max_bytes, self.backup_count = max_bytes, backup_count
        self.fd = _open(path)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        limit = self.max_bytes if self.backup_count > 0 else 0
        while data and limit > 0 and self.size + len(data) > limit:
            room = limit - self.size
            cut = data.rfind(b"\n", 0, room) + 1 if room > 0 else 0  # what fits, to a line end
            if cut == 0:
                if self.size > 0:
                    self._rotate()
                    continue
                cut = data.find(b"\n", room) + 1 or len(data)  # one long line, whole
            self._append(data[:cut])
            data = data[cut:]
            if data:
                self._rotate()
        if data:
            self._append(data)

    def _append(self, data: bytes) -> None:
        os.write(self.fd, data)
        self.size += len(data)

    def _rotate(self) -> None:
        os.close(self.fd)
        self.fd = -1
        shift_backups(self.path, self.backup_count)
        self.fd = _open(self.path)
        self.size = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class RotatingStderr:
    """A process's stderr (and any other of `fds`), pointed at `path`: past the limit, the
    file is rotated and a new one put on those fds (checked every CHECK_S, so it may run over
    by what one second of logging writes). Children started before keep the old file."""

    def __init__(self, path: str, max_bytes: int, backup_count: int, fds: tuple = (2,)):
        self.path = path
        self.max_bytes, self.backup_count = max_bytes, backup_count
        self.fds = fds
        self._next_check = 0.0
        self._point_stderr()

    def _point_stderr(self) -> None:
        fd = _open(self.path)
        for target in self.fds:
            os.dup2(fd, target)
        os.close(fd)

    def tick(self, now: float) -> None:
        if now < self._next_check or self.backup_count <= 0 or self.max_bytes <= 0:
            return
        self._next_check = now + CHECK_S
        try:
            if os.fstat(self.fds[0]).st_size > self.max_bytes:
                shift_backups(self.path, self.backup_count)
                self._point_stderr()
        except OSError as exc:  # a full or vanished disk: keep writing where we were
            logger.warning("%s not rotated: %s", os.path.basename(self.path), exc)
            self._next_check = time.monotonic() + 60.0
