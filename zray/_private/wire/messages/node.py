"""Records between core workers and their node daemon: clients joining, leases and
spillback, the node's object table (create, seal, get, release, free), worker deaths and logs.

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


@message(25)
class ClientJoined(NamedTuple):
    """Node to head: a driver or worker registered there. When the node dies, the head
    announces each of its processes dead (HolderDied), as their node would have."""

    node_id: bytes
    address: str


@message(30)
class RegisterClient(NamedTuple):
    worker_id: bytes
    kind: str  # "driver" | "worker"
    pid: int
    job_id: bytes


@message(31)
class ClientRegistered(NamedTuple):
    node_id: bytes
    arena_path: str
    arena_size: int
    session_dir: str
    head_address: str
    node_ip: str
    metrics: bool  # the node serves metrics: send it MetricsReport


@message(32)
class RequestLease(NamedTuple):
    """Answered LeaseGranted, or LeaseSpillback naming the node to ask instead."""

    request_id: int
    resources: dict
    job_id: bytes
    strategy: str  # DEFAULT | SPREAD | NODE_AFFINITY:<node hex>:<soft 0|1>
    spilled: bool  # already redirected once: run or queue here, never redirect again
    preferred_node: bytes  # the node holding most of the task's argument bytes, or b""
    for_actor: bool  # the worker will host an actor for good (outside the pool's cap)
    runtime_env: str  # canonical runtime env the worker must run in ("": the default env)


@message(33)
class LeaseGranted(NamedTuple):
    """`gpu_ids`: which of the node's GPUs the lease holds (empty without GPUs)."""

    request_id: int
    lease_id: int
    worker_id: bytes
    worker_address: str
    node_id: bytes
    gpu_ids: list


@message(53)
class LeaseSpillback(NamedTuple):
    request_id: int
    node_id: bytes
    address: str


@message(54)
class ClusterLoad(NamedTuple):
    """Head to every node, every heartbeat period: each node's resources and liveness."""

    nodes: list


@message(34)
class LeaseInfeasible(NamedTuple):
    """Not an answer: a warning that a lease request waits on resources no node has."""

    request_id: int
    resources: dict
    total: dict


@message(35)
class ReturnLease(NamedTuple):
    lease_id: int
    kill_worker: bool


@message(36)
class CancelLeaseRequest(NamedTuple):
    request_id: int


@message(37)
class NotifyBlocked(NamedTuple):
    blocked: bool


@message(38)
class CreateObject(NamedTuple):
    object_id: bytes
    size: int
    owner_address: str


@message(39)
class ObjectCreated(NamedTuple):
    """Where to write; arena pages from `warm_upto` on were never allocated (the writer
    allocates them in bulk first: far cheaper than faulting them in one by one)."""

    offset: int
    warm_upto: int


@message(40)
class SealObject(NamedTuple):
    """`pinned`: the writer keeps a pin on the object, released as a view's is (ReleaseObjects):
    its own get of the object right after needs no GetObjects."""

    object_id: bytes
    pinned: bool


@message(48)
class CreateObjects(NamedTuple):
    """Many CreateObject in one request (a task's many returns): answered with one
    ObjectsCreated once each has room or cannot have it."""

    object_ids: list
    sizes: list
    owner_address: str


@message(49)
class ObjectsCreated(NamedTuple):
    """Per object of a CreateObjects, in order: its offset, or -1 and `errors[i]` =
    [exception kind, message]. Pages from `warm_upto` on were never allocated."""

    offsets: list
    warm_upto: int
    errors: list


@message(26)
class SealObjects(NamedTuple):
    """SealObject for many objects, none pinned for the writer."""

    object_ids: list


@message(41)
class GetObjects(NamedTuple):
    """Pins and answers with ObjectsFound once every id is sealed locally (or at timeout);
    objects held elsewhere are pulled first, from the node in `node_hints` when given."""

    object_ids: list
    timeout_s: float
    node_hints: list


@message(42)
class ObjectsFound(NamedTuple):
    offsets: list  # per id: [offset, size] or None when absent at timeout


@message(43)
class ReleaseObjects(NamedTuple):
    object_ids: list


@message(44)
class FreeObjects(NamedTuple):
    """Owner to its node (cascade: free the copies on other nodes too), or head to a node."""

    object_ids: list
    cascade: bool


@message(240)
class ObjectsRevived(NamedTuple):
    """Owner to its node: objects it freed are being made again under the same ids (lineage
    reconstruction). The node forgets their frees, which it keeps to send again to a head
    that restarts: sent again, they would free the new copies."""

    object_ids: list


@message(45)
class KillWorker(NamedTuple):
    worker_id: bytes


@message(46)
class WorkerDied(NamedTuple):
    """Node to lease holder: the leased worker exited."""

    lease_id: int
    worker_id: bytes
    exit_code: int


@message(47)
class LogLines(NamedTuple):
    stream: str  # "stdout" | "stderr"
    prefix: str
    lines: list


@message(50)
class ShutdownNode(NamedTuple):
    reason: str


@message(51)
class GetNodeStats(NamedTuple):
    pass_: int


@message(52)
class NodeStats(NamedTuple):
    stats: dict


@message(65)
class NodeDied(NamedTuple):
    """Head to every node, node to every local client: a node was declared dead."""

    node_id: bytes
    address: str
