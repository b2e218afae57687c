"""Exports remote function and class definitions to the head's registry once, and loads them in
workers on first use (waiting briefly when a worker gets a task before the export lands)."""

from __future__ import annotations

import hashlib
import threading

from zray._private.common import definitions
from zray._private.wire import protocol as P

NAMESPACE = "fn"


def function_id_of(pickled: bytes) -> bytes:
    return hashlib.blake2b(pickled, digest_size=20).digest()


class FunctionManager:
    def __init__(self, core):
        self.core = core
        self._exported: set[bytes] = set()
        self._loaded: dict[bytes, object] = {}
        self._lock = threading.Lock()

    def export(self, function_id: bytes, pickled: bytes):
        if function_id in self._exported:
            return
        self._exported.add(function_id)
        # A request (answered Ok), so a head that restarts before it stored it gets it again.
        self.core.requests.send(
            self.core.head_address,
            P.KvPut(NAMESPACE, function_id, pickled, False),
            lambda reply, payload: None,
        )

    def remember(self, function_id: bytes, value):
        self._loaded[function_id] = value

    def load(self, function_id: bytes, timeout: float):
        value = self._loaded.get(function_id)
        if value is not None:
            return value
        with self._lock:
            value = self._loaded.get(function_id)
            if value is not None:
                return value
            reply, _ = self.core.requests.call(
                self.core.head_address, P.KvGet(NAMESPACE, function_id, timeout), timeout + 5
            )
            if not isinstance(reply, P.KvValue) or not reply.found:
                raise RuntimeError(f"function {function_id.hex()} was never exported")
            value = definitions.loads(reply.value)
            self._loaded[function_id] = value
            return value
