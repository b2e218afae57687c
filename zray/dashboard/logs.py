"""The log files the dashboard shows: each node's `<session>/logs/` (node.log, dashboard.log,
and the workers' `worker-<id>-<pid>.out|err`), for the nodes whose session directory is on this
machine. A file is named to the browser as `<node id>/<file name>` and read only if it is one
of the files the listing found, so no request can reach outside the log directories.
"""

from __future__ import annotations

import os

TAIL_BYTES = 64 * 1024  # what a first look at a file shows: its end
CHUNK_BYTES = 256 * 1024  # most one poll of a live tail returns


class LogFiles:
    def __init__(self, session_dirs):
        """`session_dirs()` -> {node id hex: session directory on this machine}."""
        self._session_dirs = session_dirs

    def listing(self) -> list:
        files = []
        for node_id, session_dir in self._session_dirs().items():
            directory = os.path.join(session_dir, "logs")
            try:
                names = os.listdir(directory)
            except OSError:
                continue
            for name in sorted(names):
                try:
                    info = os.stat(os.path.join(directory, name))
                except OSError:
                    continue
                if not os.path.isfile(os.path.join(directory, name)):
                    continue
                files.append(
                    {
                        "id": f"{node_id}/{name}",
                        "node_id": node_id,
                        "name": name,
                        "size": info.st_size,
                        "mtime": info.st_mtime,
                    }
                )
        return files

    def _path(self, file_id: str) -> str | None:
        node_id, _, name = file_id.partition("/")
        session_dir = self._session_dirs().get(node_id)
        if session_dir is None or not name or "/" in name or name in (".", ".."):
            return None
        directory = os.path.join(session_dir, "logs")
        try:
            if name not in os.listdir(directory):
                return None
        except OSError:
            return None
        return os.path.join(directory, name)

    def read(self, file_id: str, offset: int | None) -> dict | None:
        """Text from `offset` (at most CHUNK_BYTES), or the file's last TAIL_BYTES when offset
        is None; `offset` in the answer is where the next poll continues. A file that became
        shorter than `offset` (replaced) is read from its start."""
        path = self._path(file_id)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if offset is None:
                    start = max(0, size - TAIL_BYTES)
                else:
                    start = offset if 0 <= offset <= size else 0
                f.seek(start)
                data = f.read(CHUNK_BYTES)
        except OSError:
            return None
        end = start + len(data)
        if offset is None and start > 0:
            data = data.partition(b"\n")[2]  # begin on a whole line
        return {
            "id": file_id,
            "text": data.decode(errors="replace"),
            "offset": end,
            "size": size,
            "truncated": offset is None and start > 0,
        }
