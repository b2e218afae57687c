"""Ray's id types (JobID, TaskID, NodeID, WorkerID, ActorID): binary ids with hex forms.

They live below everything that hands them out (ObjectRef, actor handles, the runtime context),
so those import them without importing each other. Users import them from `zray` or
`zray.runtime_context`, and that is the module their pickles name.
"""

from __future__ import annotations


class BaseID:
    SIZE = 0

    def __init__(self, binary: bytes):
        self._binary = binary

    @classmethod
    def from_hex(cls, hex_id: str):
        return cls(bytes.fromhex(hex_id))

    @classmethod
    def from_binary(cls, id_bytes: bytes):
        return cls(id_bytes)

    @classmethod
    def nil(cls):
        return cls(b"\xff" * cls.SIZE)

    def binary(self) -> bytes:
        return self._binary

    def hex(self) -> str:
        return self._binary.hex()

    def is_nil(self) -> bool:
        return self._binary == b"\xff" * len(self._binary)

    def __eq__(self, other):
        return type(other) is type(self) and other._binary == self._binary

    def __hash__(self):
        return hash(self._binary)

    def __repr__(self):
        return f"{type(self).__name__}({self.hex()})"


class JobID(BaseID):
    SIZE = 4


class TaskID(BaseID):
    SIZE = 24


class NodeID(BaseID):
    SIZE = 28


class WorkerID(BaseID):
    SIZE = 28


class ActorID(BaseID):
    SIZE = 16


for _cls in (BaseID, JobID, TaskID, NodeID, WorkerID, ActorID):
    _cls.__module__ = "zray.runtime_context"  # keeps pickles made before the move loadable


class PlacementGroupID(BaseID):
    """14 random bytes, then the creating job's 4 (as in Ray)."""

    SIZE = 18


PlacementGroupID.__module__ = "zray.runtime_context"
