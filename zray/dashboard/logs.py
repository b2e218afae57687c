"""The log files the dashboard shows, from every live node, wherever it runs: each node lists
and reads its own `<session>/logs/` (`ListLogs`, `ReadLog`; zray/_private/node/log_files.py).
A file is named to the browser as `<node id>/<file name>`."""

from __future__ import annotations

from zray._private.wire import protocol as P

QUERY_TIMEOUT_S = 5.0


class LogFiles:
    def __init__(self, source):
        self._source = source  # zray.dashboard.source.ClusterSource

    def listing(self) -> list:
        nodes = [n for n in self._source.node_table() if n["alive"]]
        replies = self._source.connection.gather(
            [(n["address"], P.ListLogs(P.LOG_LISTING_MAX_FILES)) for n in nodes], QUERY_TIMEOUT_S
        )
        files = []
        for node, reply in zip(nodes, replies):
            if not isinstance(reply, P.LogList):
                continue
            node_id = node["node_id"].hex()
            for name, size, mtime in reply.files:
                files.append(
                    {
                        "id": f"{node_id}/{name}",
                        "node_id": node_id,
                        "node_ip": node["ip"],
                        "name": name,
                        "size": size,
                        "mtime": mtime,
                    }
                )
        return files

    def read(self, file_id: str, offset: int | None) -> dict | None:
        """Text from `offset`, or the file's end when None; None if there is no such file."""
        node_id, _, name = file_id.partition("/")
        node = next(
            (n for n in self._source.node_table() if n["alive"] and n["node_id"].hex() == node_id),
            None,
        )
        if node is None or not name:
            return None
        reply = self._source.connection.gather(
            [
                (
                    node["address"],
                    P.ReadLog(name, -1 if offset is None else offset, P.LOG_CHUNK_MAX_BYTES),
                )
            ],
            QUERY_TIMEOUT_S,
        )[0]
        if not isinstance(reply, P.LogChunk):
            return None
        return {
            "id": file_id,
            "text": reply.data.decode(errors="replace"),
            "offset": reply.offset,
            "size": reply.size,
            "truncated": reply.truncated,
        }
