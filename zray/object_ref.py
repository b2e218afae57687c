"""ObjectRef: a future for a value in the (distributed) object store.

Equality and hashing are by object id; pickling an ObjectRef inside another value keeps its
owner's address so the receiving process can fetch the value from wherever it lives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from zray._fast import untrack
from zray._private.core import runtime
from zray._private.core.serialization import note_ref_serialized

_OBJECT_ID_SIZE = 28
_TASK_ID_SIZE = 24


class ObjectRef:
    __slots__ = ("_id", "_owner", "__weakref__")

    def __init__(self, binary: bytes, owner_address: str = "", _count: bool = True):
        if not isinstance(binary, bytes) or len(binary) != _OBJECT_ID_SIZE:
            raise ValueError(f"ObjectRef needs {_OBJECT_ID_SIZE} id bytes, got {binary!r}")
        self._id = binary
        self._owner = owner_address
        if type(self) is ObjectRef:  # what a subclass adds might make a cycle
            untrack(self)
        core = runtime.core
        if _count and core is not None:
            core.refs.add_local(binary)

    def __del__(self):
        core = runtime.core
        if core is not None:
            core.refs.remove_local_later(self._id)

    @classmethod
    def nil(cls):
        return cls(b"\xff" * _OBJECT_ID_SIZE, _count=False)

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def is_nil(self) -> bool:
        return self._id == b"\xff" * _OBJECT_ID_SIZE

    def task_id(self):
        from zray._private.common.id_types import TaskID

        return TaskID(self._id[:_TASK_ID_SIZE])

    def job_id(self):
        from zray._private.common.id_types import JobID

        return JobID(self._id[_TASK_ID_SIZE - 4 : _TASK_ID_SIZE])

    def owner_address(self) -> str:
        return self._owner

    def call_site(self) -> str:
        return ""

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other._id == self._id

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self._id)

    def __lt__(self, other):
        return self._id < other._id

    def __repr__(self):
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        note_ref_serialized(self)
        return _rebuild, (self._id, self._owner)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    # ------------------------------------------------------------------ futures

    def future(self) -> concurrent.futures.Future:
        """A concurrent.futures.Future resolved with the value (or the task's exception)."""
        return runtime.require().future_for(self)

    def as_future(self):
        return asyncio.wrap_future(self.future())

    def __await__(self):
        return asyncio.wrap_future(self.future()).__await__()


def _rebuild(binary: bytes, owner_address: str):
    ref = ObjectRef(binary, owner_address)
    core = runtime.core
    if core is not None:
        core.refs.note_borrowed(ref)
    return ref
