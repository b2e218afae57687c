"""Ray-compatible binary ids (pure-Python twin of ``ids.pyx``).

Random ids come from a PRNG seeded from ``os.urandom``: ids need to be unique, not secret.  A
forked child inherits the parent's generator state, so the generator is reseeded whenever
``os.getpid()`` changes.
"""

from __future__ import annotations

import os
import random
from operator import index as _index

JOB_ID_SIZE = 4
ACTOR_ID_SIZE = 16
TASK_ID_SIZE = 24
OBJECT_ID_SIZE = 28
NODE_ID_SIZE = 28
WORKER_ID_SIZE = 28

_rng = random.Random(os.urandom(32))
_rng_pid = os.getpid()


def random_id(size) -> bytes:
    """``size`` random bytes, unique across the processes of a cluster with high probability."""
    global _rng, _rng_pid
    n = _index(size)
    if n < 0 or n >= 1 << 63:
        raise ValueError(f"id size must be >= 0, got {size}")
    pid = os.getpid()
    if pid != _rng_pid:
        _rng, _rng_pid = random.Random(os.urandom(32)), pid
    return _rng.randbytes(n)


def object_id_for(task_id, index) -> bytes:
    """The id of the ``index``-th object a task returns/puts: task id + u32 LE index."""
    task_id = bytes(memoryview(task_id)) if type(task_id) is not bytes else task_id
    if len(task_id) != TASK_ID_SIZE:
        raise ValueError(f"task id must be {TASK_ID_SIZE} bytes, got {len(task_id)}")
    i = _index(index)
    if not 0 <= i <= 0xFFFFFFFF:
        raise ValueError(f"object index must be in [0, 2**32), got {index}")
    return task_id + i.to_bytes(4, "little")


def _object_id(object_id) -> bytes:
    object_id = bytes(memoryview(object_id)) if type(object_id) is not bytes else object_id
    if len(object_id) != OBJECT_ID_SIZE:
        raise ValueError(f"object id must be {OBJECT_ID_SIZE} bytes, got {len(object_id)}")
    return object_id


def task_id_of(object_id) -> bytes:
    """The id of the task that created ``object_id``."""
    return _object_id(object_id)[:TASK_ID_SIZE]


def index_of(object_id) -> int:
    """Which of its creating task's objects ``object_id`` is."""
    return int.from_bytes(_object_id(object_id)[TASK_ID_SIZE:], "little")
