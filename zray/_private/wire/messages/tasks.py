"""Records between an owner and the workers running its tasks: pushes, answers,
cancellation, object status and reconstruction, generator items and pipelined hand-backs.

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


# --------------------------------------------------------------------------- core workers


@message(60)
class PushTask(NamedTuple):
    """Owner to leased worker. Payload frames: pickled (args, kwargs) metadata, its `nbuffers`
    out-of-band buffers, then the frames of each inline entry in `resolved` (top-level ObjectRef
    arguments the owner already holds: [object_id, kind, nframes, node_id, size]).
    `resources`: what the lease holds for the task (a worker blocked in get runs its own queued
    children inline only when they fit in it)."""

    task_id: bytes
    function_id: bytes
    name: str
    num_returns: int
    owner_address: str
    lease_id: int
    nbuffers: int
    resolved: list
    borrowed: list
    resources: dict  # what the task holds while it runs (get_assigned_resources)
    gpu_ids: list  # the lease's GPUs: the worker's CUDA_VISIBLE_DEVICES while it runs
    placement_group: str  # "<group hex>:<capture 0|1>" for a task in a group, else ""
    generator_backpressure: int  # a streaming task pauses this many values ahead (-1: never)
    attempt: int  # the attempt's number in task events; -1: the task records none


@message(61)
class TaskDone(NamedTuple):
    """Worker to owner. `returns` holds one entry per return object:
    [object_id, kind, nframes, node_id, size]; kind is one of memory_store.KIND_*.
    Payload frames: for each inline return, its metadata frame then its buffers.
    `contained` lists, per return, the refs inside its value as [object_id, owner_address];
    the worker registered the task's owner as their borrower before sending this."""

    task_id: bytes
    returns: list
    lease_id: int
    contained: list


@message(62)
class CancelTask(NamedTuple):
    """Owner to the worker running (or about to run) a task or actor call; with `recursive`,
    the tasks and actor calls that task submitted are cancelled too."""

    task_id: bytes
    force: bool
    recursive: bool


@message(63)
class GetObjectStatus(NamedTuple):
    """Borrower to owner: answered with ObjectStatus once the object is ready."""

    object_id: bytes


@message(190)
class ReconstructObject(NamedTuple):
    """Borrower to owner: every copy of the object the borrower was told of is lost. The owner
    recomputes it from lineage and answers Ok (a new GetObjectStatus then waits for the new
    copy), or answers Error naming why it cannot (`kind` ObjectLostError, or
    ObjectReconstructionFailedError with Ray's reason name as `message`)."""

    object_id: bytes


@message(64)
class ObjectStatus(NamedTuple):
    """Owner to borrower. `contained`: the refs inside the value, [object_id, owner_address],
    whose owners were told the borrower holds them."""

    object_id: bytes
    kind: int
    node_id: bytes
    size: int
    nframes: int
    contained: list


# --------------------------------------------------------------------------- generators

STREAMING = -2  # PushTask.num_returns of a streaming generator task (Ray's marker too)


@message(66)
class GeneratorItem(NamedTuple):
    """Worker to owner, once per value a generator task yields (before its TaskDone, on the
    same channel). `item`: [object_id, kind, nframes, node_id, size] of stream position
    `position` (2, 3, ...; 1 is the task's completion); payload: its inline frames. `contained`:
    refs inside the value, registered for the owner as for a return."""

    task_id: bytes
    position: int
    item: list
    contained: list
    worker_address: str


@message(67)
class GeneratorConsumed(NamedTuple):
    """Owner to the worker running a generator task with back-pressure: the consumer took the
    values up to stream position `position`."""

    task_id: bytes
    position: int


# --------------------------------------------------------------------------- pipelined tasks


@message(170)
class TasksHandedBack(NamedTuple):
    """Worker to owner, on the connection the tasks came on: pushed tasks queued behind the
    running one, which blocked in get/wait, handed back unstarted for the owner to run
    elsewhere (a pipelined task must never wait behind a blocked one)."""

    task_ids: list
