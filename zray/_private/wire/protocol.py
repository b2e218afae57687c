"""Message records of the zray wire protocol: the code counterpart of docs/protocol.md.

Every ZeroMQ message is a multipart message::

    [header (8 bytes)] [body (msgpack array)] [payload frame]*

The header is ``<BBHI``: protocol version, message type, flags, sequence number. The body is a
msgpack array holding the record's fields in declaration order. Payload frames carry object bytes
(pickle-5 metadata and out-of-band buffers) and are never copied into the body.

Requests that expect an answer carry a non-zero ``seq``; the answer repeats it. Receivers drop
(and count) any message whose header, type, field count or field types do not match.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, TypeVar

import msgpack

from zray._fast import first_bad_field, pack_header, unpack_header

PROTOCOL_VERSION = 1
# Returns per task or actor call: more than any program asks for, and bounded because a worker
# builds one result (or error) per return before it answers; callers refuse more, and workers
# drop pushes asking for more (zray/_private/core/push_checks.py).
MAX_NUM_RETURNS = 100_000

_TYPES: dict[int, Any] = {}  # the record classes, with the CODE and _checks set on them
_CODES: dict[type, int] = {}
_Record = TypeVar("_Record")


class ProtocolError(ValueError):
    """A message that does not follow docs/protocol.md; the receiver drops it."""


def message(code: int) -> Callable[[_Record], _Record]:
    def register(cls: Any) -> Any:
        if code in _TYPES:
            raise RuntimeError(f"message code {code} used twice")
        _TYPES[code] = cls
        _CODES[cls] = code
        cls.CODE = code
        cls._checks = tuple(
            _allowed_types(_annotation_text(cls.__annotations__[name])) for name in cls._fields
        )
        return cls

    return register


def message_types() -> dict[int, type]:
    return dict(_TYPES)


def _body_packer() -> Callable[[Any], bytes]:
    """One packer for every message: msgpack.packb builds a Packer (and its buffer) per call,
    half of a small message's encoding. Sharing the compiled one between threads is safe:
    its `pack` holds the GIL throughout (no `default` hook calls back into Python) and resets
    its buffer on error. msgpack's pure-Python fallback could switch threads mid-message."""
    if msgpack.Packer.__module__ != "msgpack._cmsgpack":
        return lambda body: msgpack.packb(body, use_bin_type=True)
    pack: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack
    return pack


_pack_body = _body_packer()


def encode(msg: NamedTuple, seq: int = 0, flags: int = 0) -> list[bytes]:
    return [
        pack_header(PROTOCOL_VERSION, _CODES[type(msg)], flags, seq),
        _pack_body(tuple(msg)),
    ]


def decode(header: bytes | memoryview, body: bytes | memoryview) -> tuple[Any, int, int]:
    """Returns (record, seq, flags); raises ProtocolError on anything malformed."""
    try:
        version, code, flags, seq = unpack_header(header)
    except ValueError as exc:
        raise ProtocolError(f"bad header: {exc}") from None
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version}, expected {PROTOCOL_VERSION}")
    cls = _TYPES.get(code)
    if cls is None:
        raise ProtocolError(f"unknown message type {code}")
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated classes on garbage
        raise ProtocolError(f"{cls.__name__}: undecodable body ({type(exc).__name__})") from None
    if not isinstance(fields, list) or len(fields) != len(cls._fields):
        raise ProtocolError(f"{cls.__name__}: expected {len(cls._fields)} fields")
    bad = first_bad_field(cls._checks, fields)  # compiled: most of decoding a PushTask
    if bad >= 0:
        name, value = cls._fields[bad], fields[bad]
        raise ProtocolError(f"{cls.__name__}.{name}: unexpected {type(value).__name__}")
    return cls(*fields), seq, flags


# The exact types msgpack decodes each annotation to (so bool is no int here); None: any.
# One set lookup per field: every message a daemon receives is checked field by field.
_CHECKS = {
    "bytes": frozenset({bytes}),
    "str": frozenset({str}),
    "int": frozenset({int}),
    "float": frozenset({int, float}),
    "bool": frozenset({bool}),
    "list": frozenset({list}),
    "dict": frozenset({dict}),
    "Any": None,
}


def _annotation_text(annotation: Any) -> str:
    text: str = getattr(annotation, "__forward_arg__", annotation)
    return text


def _allowed_types(annotation: str) -> frozenset[type] | None:
    if annotation.endswith(" | None"):
        inner = _CHECKS[annotation[: -len(" | None")]]
        return None if inner is None else inner | {type(None)}
    return _CHECKS[annotation]


def _checker(annotation: str) -> Callable[[Any], bool]:
    """The predicate `decode` applies to a field of this annotation."""
    allowed = _allowed_types(annotation)
    return lambda v: allowed is None or type(v) in allowed


# --------------------------------------------------------------------------- connection


@message(1)
class Hello(NamedTuple):
    """First message on every connection: where to send answers to this sender. The sender
    already proved it holds the cluster token in the connection's handshake."""

    address: str


@message(2)
class Ok(NamedTuple):
    """Generic answer to a request that returns nothing but success."""

    pass_: int


@message(3)
class Error(NamedTuple):
    """Answer to a request that failed; `kind` names a zray.exceptions class or ValueError."""

    kind: str
    message: str


# --------------------------------------------------------------------------- head service


@message(10)
class RegisterNode(NamedTuple):
    node_id: bytes
    address: str
    ip: str
    hostname: str
    resources: dict
    object_store_memory: int
    is_head: bool
    metrics_export_port: int  # -1: it serves no metrics


@message(11)
class RegisterJob(NamedTuple):
    driver_id: bytes
    namespace: str
    pid: int
    metadata: dict  # JobConfig.metadata, shown by list_jobs
    default_actor_lifetime: str  # JobConfig's: "detached" or "non_detached"


@message(12)
class JobRegistered(NamedTuple):
    job_id: bytes
    namespace: str
    default_actor_lifetime: str


@message(13)
class KvPut(NamedTuple):
    namespace: str
    key: bytes
    value: bytes
    overwrite: bool


@message(14)
class KvGet(NamedTuple):
    """Answered with KvValue; waits up to wait_s for the key to appear (function exports race
    with the first task that needs them)."""

    namespace: str
    key: bytes
    wait_s: float


@message(15)
class KvValue(NamedTuple):
    found: bool
    value: bytes


@message(16)
class GetNodes(NamedTuple):
    include_dead: bool


@message(17)
class NodeList(NamedTuple):
    nodes: list  # of dicts, see head.NodeRecord.to_wire


@message(18)
class AddObjectLocations(NamedTuple):
    node_id: bytes
    object_ids: list
    sizes: list


@message(19)
class RemoveObjectLocations(NamedTuple):
    """With `freed`, the owner freed these objects: the head frees every other copy too."""

    node_id: bytes
    object_ids: list
    freed: bool


@message(20)
class SubscribeObjectLocation(NamedTuple):
    """Answered with ObjectLocation now if known, or as soon as the object is sealed anywhere.
    `sealed_on`: the node its owner was told holds it (b"": not known). If that node is dead
    and the directory never heard of the copy (the node died before its report went out),
    the answer is no location at once, not a wait for a copy that will never come."""

    object_id: bytes
    sealed_on: bytes


@message(21)
class ObjectLocation(NamedTuple):
    object_id: bytes
    node_ids: list
    size: int


@message(22)
class NodeHeartbeat(NamedTuple):
    node_id: bytes
    available: dict
    total: dict
    store_used: int


@message(23)
class UnregisterJob(NamedTuple):
    job_id: bytes


@message(24)
class GetJobInfo(NamedTuple):
    """Worker to head: the namespace of a job its task runs for; answered JobRegistered, or
    Error when the head never registered that job."""

    job_id: bytes


# --------------------------------------------------------------------------- node daemon


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
    object_id: bytes


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


@message(55)
class PullObject(NamedTuple):
    """Node to node: answered ObjectInfo; the source pins the object until PullDone."""

    object_id: bytes


@message(56)
class ObjectInfo(NamedTuple):
    """`arena_path`/`offset`: where the pinned copy lies, for a puller on the same machine to
    copy it straight from the source's shared memory (one copy, no chunks)."""

    object_id: bytes
    found: bool
    size: int
    owner_address: str
    arena_path: str
    offset: int


@message(57)
class PullChunk(NamedTuple):
    """Answered ObjectChunk with the bytes [offset, offset+length) as its payload frame."""

    object_id: bytes
    offset: int
    length: int
    compress: bool


@message(58)
class ObjectChunk(NamedTuple):
    object_id: bytes
    offset: int
    compressed: bool


@message(59)
class PullDone(NamedTuple):
    object_id: bytes


@message(160)
class PullStream(NamedTuple):
    """Node to the node chosen as the source (another host, or the same-host shortcut off):
    answered StreamGrant; the source pins the object (or, if it is still receiving it, pins it
    once complete) until PullDone."""

    object_id: bytes


@message(161)
class StreamGrant(NamedTuple):
    """`grant`: 16 random bytes that open the object's range on the source's transfer port
    (`port`, a plain TCP socket; see zray/_private/node/transfer.py) until PullDone."""

    object_id: bytes
    found: bool
    size: int
    owner_address: str
    port: int
    grant: bytes


@message(162)
class LocateSource(NamedTuple):
    """Node to head: which node should `node_id` stream this object from? Answered
    SourceChosen at once, or when a first copy is sealed; `exclude`: nodes that failed it."""

    object_id: bytes
    node_id: bytes
    sealed_on: bytes
    exclude: list


@message(163)
class SourceChosen(NamedTuple):
    """Head to puller: the node to pull from (a holder or a node still receiving a copy, the
    one with the fewest pullers); empty when every copy is lost."""

    object_id: bytes
    node_id: bytes
    size: int


@message(164)
class PullEnded(NamedTuple):
    """Node to head: it gave up pulling this object, so it forwards no copy to anyone."""

    object_id: bytes
    node_id: bytes


@message(165)
class GetObjectStatuses(NamedTuple):
    """Borrower to owner, for several values at once (a call's arguments past the inline
    budget): answered ObjectStatuses at once."""

    object_ids: list


@message(166)
class ObjectStatuses(NamedTuple):
    """Owner to borrower: `statuses` of the values ready now, each [object_id, kind, node_id,
    size, nframes, contained] as in ObjectStatus, their frames in the payload in that order;
    `pending`: the ids not ready yet (the borrower asks for each with GetObjectStatus)."""

    statuses: list
    pending: list


@message(65)
class NodeDied(NamedTuple):
    """Head to every node, node to every local client: a node was declared dead."""

    node_id: bytes
    address: str


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


# --------------------------------------------------------------------------- actors


@message(70)
class CreateActor(NamedTuple):
    """Creator to head; payload: the pickled constructor (args, kwargs) as for PushTask.
    Answered Ok, or Error(ValueError) when the name is taken."""

    actor_id: bytes
    spec: dict
    nbuffers: int
    resolved: list


@message(71)
class StartActor(NamedTuple):
    """Head to the leased worker: construct the actor (payload as in CreateActor)."""

    actor_id: bytes
    spec: dict
    nbuffers: int
    resolved: list
    attempt: int


@message(72)
class ActorStarted(NamedTuple):
    """Worker to head; when ok is false, payload holds the pickled constructor error."""

    actor_id: bytes
    ok: bool
    nframes: int
    error_text: str  # the error with its traceback, as text the head can show without unpickling


@message(73)
class SubscribeActor(NamedTuple):
    """Handle holder to head: ActorState now and at every change."""

    actor_id: bytes


@message(74)
class ActorState(NamedTuple):
    actor_id: bytes
    state: str
    address: str
    num_restarts: int
    death_cause: str
    error: bytes


@message(75)
class KillActor(NamedTuple):
    actor_id: bytes
    no_restart: bool
    cause: str


@message(82)
class ActorKilled(NamedTuple):
    """Head's answer to a KillActor sent as a request: whether it stops the actor's worker
    (so the next instance, if any, is restart number `num_restarts` + 1)."""

    actor_id: bytes
    stopping: bool
    num_restarts: int


@message(76)
class GetNamedActor(NamedTuple):
    name: str
    namespace: str


@message(77)
class NamedActor(NamedTuple):
    found: bool
    actor_id: bytes
    handle_meta: bytes


@message(83)
class ListNamedActors(NamedTuple):
    namespace: str
    all_namespaces: bool


@message(84)
class NamedActorList(NamedTuple):
    actors: list


@message(78)
class ActorExiting(NamedTuple):
    actor_id: bytes
    reason: str


@message(79)
class ClientDied(NamedTuple):
    """Node to head: a driver or worker of this node is gone (its non-detached actors die)."""

    worker_id: bytes


@message(80)
class ResizeLease(NamedTuple):
    """Head to node: an actor placed with `resources` holds only these while it runs."""

    lease_id: int
    resources: dict


@message(81)
class PushActorTask(NamedTuple):
    """Caller to the actor's worker, in submission order; answered by TaskDone.
    `concurrency_group`: the group the call runs in ("" for the actor's default group)."""

    actor_id: bytes
    task_id: bytes
    method: str
    num_returns: int
    owner_address: str
    nbuffers: int
    resolved: list
    borrowed: list
    concurrency_group: str
    generator_backpressure: int  # a streaming call pauses this many values ahead (-1: never)
    attempt: int  # as PushTask's


# --------------------------------------------------------------------------- references


@message(90)
class AddBorrowers(NamedTuple):
    """Anyone handing refs to another process, to each ref's owner, before the sender drops
    its own hold: `holder` now holds one more registration of each object."""

    holder: str
    object_ids: list


@message(91)
class RemoveBorrowers(NamedTuple):
    """Holder to owner, once nothing in the holder uses the objects any more: gives back
    `counts[i]` registrations of `object_ids[i]`."""

    holder: str
    object_ids: list
    counts: list


# --------------------------------------------------------------------------- memory report


@message(92)
class GetRefTable(NamedTuple):
    """Node to each of its clients, for `zray memory`; answered RefTable."""

    pass_: int


@message(93)
class RefTable(NamedTuple):
    """Client to node: one row per object the process knows, [object_id, owner_address, size,
    reasons, borrowers]; `reasons` say why it is held here (LOCAL_REFERENCE, PINNED_IN_MEMORY,
    USED_BY_PENDING_TASK, CAPTURED_IN_OBJECT, BORROWED, ESCAPED); `borrowers`: registrations
    other processes hold (owner only). `address`: the client's own, to name owners."""

    address: str
    rows: list


@message(94)
class GetMemoryReport(NamedTuple):
    """`zray memory` to each node; answered MemoryReport within `timeout_ms`."""

    timeout_ms: int


@message(95)
class MemoryReport(NamedTuple):
    """Node to `zray memory`: `store` is the node's store stats; `objects` one row per object
    in its store, [object_id, size, state, primary, pins, owner_address] with state "memory",
    "spilled" or "spilling"; `processes` one entry per client that answered in time,
    [pid, kind, address, rows as in RefTable]."""

    node_id: bytes
    node_ip: str
    store: dict
    objects: list
    processes: list


@message(96)
class HolderDied(NamedTuple):
    """A node's process (driver or worker) is gone: node to head, head to every live node, node
    to its local clients. Owners drop the borrower registrations that process held."""

    address: str


# --------------------------------------------------------------------------- placement groups


@message(100)
class CreatePlacementGroup(NamedTuple):
    """Driver or worker to head; bundles: resource dicts; answered Ok, or Error (ValueError)."""

    pg_id: bytes
    name: str
    namespace: str
    strategy: str
    bundles: list
    detached: bool
    job_id: bytes
    soft_target: bytes
    creator_actor: bytes  # the actor creating it (it fate-shares with it), or b""


@message(101)
class RemovePlacementGroup(NamedTuple):
    pg_id: bytes


@message(102)
class WaitPlacementGroup(NamedTuple):
    """Answered PlacementGroupReady once the group is created or removed, or after timeout_s
    (a negative timeout waits for one of the two)."""

    pg_id: bytes
    timeout_s: float


@message(103)
class PlacementGroupReady(NamedTuple):
    pg_id: bytes
    created: bool
    state: str


@message(104)
class GetPlacementGroups(NamedTuple):
    """pg_id, or a name in a namespace, or neither for all; answered PlacementGroupTable."""

    pg_id: bytes
    name: str
    namespace: str


@message(105)
class PlacementGroupTable(NamedTuple):
    groups: list


@message(106)
class PrepareBundles(NamedTuple):
    """Head to node, phase one: reserve all of bundles ([index, resources]) or none."""

    pg_id: bytes
    attempt: int
    bundles: list


@message(107)
class BundlesPrepared(NamedTuple):
    pg_id: bytes
    attempt: int
    ok: bool


@message(108)
class CommitBundles(NamedTuple):
    pg_id: bytes
    indices: list


@message(109)
class ReturnBundles(NamedTuple):
    pg_id: bytes
    indices: list


# --------------------------------------------------------------------------- metrics


@message(130)
class MetricsReport(NamedTuple):
    """Driver or worker to its node, at most once per `metrics_report_interval_s` and only when
    something changed: the process's `zray.util.metrics` series and task counts, each as its
    current total (so a lost or repeated report does no harm). `metrics`: rows
    [kind, name, description, tag_keys, boundaries, series], series [[tag values], value]
    (a histogram's value: [bucket counts, sum, count]); `tasks`: rows
    [name, state, source, is_retry, count]."""

    worker_id: bytes
    metrics: list
    tasks: list


# --------------------------------------------------------------------------- state API


@message(110)
class GetStateTable(NamedTuple):
    """`zray.util.state` to the head (kind: actors, nodes, jobs, placement_groups) or to a node
    (workers); answered StateTable."""

    kind: str


@message(111)
class StateTable(NamedTuple):
    """Rows with Ray's state field names (detail ones included); the asker filters, limits and
    trims them, so the head does no per-query work beyond building the rows."""

    kind: str
    rows: list


# --------------------------------------------------------------------------- task events


@message(120)
class AddTaskEvents(NamedTuple):
    """Any driver or worker to the head, about once a second: the task events it recorded,
    a msgpack array packed apart (the head unpacks it itself, see HeadService), each
    `[task_id, attempt, state, time_ns, extra]` (zray/_private/core/task_events.py);
    `node_id`, `worker_id`, `pid`: the sender, where its RUNNING events ran. `dropped`: events
    it dropped since the last batch. One-way, or answered `Ok` when sent as a request (the
    last batch of a process that exits)."""

    node_id: bytes
    worker_id: bytes
    pid: int
    events: bytes
    dropped: int


# --------------------------------------------------------------------------- head restart


@message(150)
class ResumeNode(NamedTuple):
    """Node to a head it lost (the head's connection broke, or it stopped hearing ClusterLoad)
    and finds again: RegisterNode's fields plus what the node holds, from which a restarted head
    rebuilds what it does not keep. `clients`: [worker_id, address, kind] of its live drivers
    and workers; `actor_leases`: [lease_id, worker_id] of the leases it granted to a head for
    actors; `objects`: [object_id, size] of its sealed objects. Answered Ok."""

    node_id: bytes
    address: str
    ip: str
    hostname: str
    resources: dict
    object_store_memory: int
    is_head: bool
    clients: list
    actor_leases: list
    objects: list


@message(151)
class ResumeJob(NamedTuple):
    """Driver to a head it lost and finds again: its job goes on under the same id (a
    restarted head read it back from its store, or learns it now). Answered JobRegistered."""

    job_id: bytes
    driver_id: bytes
    namespace: str
    pid: int
    metadata: dict  # as RegisterJob's
    default_actor_lifetime: str


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


# --------------------------------------------------------------------------- Ray Client
# A ray:// client's connection to the head's client server (zray/util/client/): requests and
# replies carry a pickled payload; frames above CLIENT_CHUNK_BYTES follow as ClientChunks.

CLIENT_CHUNK_BYTES = 4 * 2**20


@message(180)
class ClientRequest(NamedTuple):
    """Client to its session: call `op`. `sizes`: the payload's frame sizes, the small ones
    attached, each larger one in ClientChunks after it. `acked`: every reply below this seq
    arrived, so the session may forget them (it keeps the others to answer a resend)."""

    seq: int
    op: str
    acked: int
    sizes: list


@message(181)
class ClientReply(NamedTuple):
    """Session to client: the outcome of request `seq`; `ok` False: the payload is the
    pickled exception to raise. Frames as in ClientRequest."""

    seq: int
    ok: bool
    sizes: list


@message(182)
class ClientChunk(NamedTuple):
    """One piece of a large frame of request or reply `seq`: `frame` is its index in the
    payload, `offset` where this piece starts; the piece is the single payload frame."""

    seq: int
    frame: int
    offset: int


@message(183)
class ClientHeartbeat(NamedTuple):
    """Client to the client server each second, answered at once: the session stays while they
    arrive (and for the reconnect grace period after the last). A session process sends one
    when it is ready for requests."""

    acked: int


@message(184)
class ClientSessionEnded(NamedTuple):
    """Client server to a client whose session does not exist (ended, or its grace period
    passed), or to a session process: end now."""

    reason: str


@message(185)
class ClientLogLines(NamedTuple):
    """Session to client (one-way): lines a task or actor printed, as LogLines to a driver."""

    stream: str
    prefix: str
    lines: list


# --------------------------------------------------------------------------- log files
# The dashboard's logs page, `zray logs` and zray.util.state.list_logs/get_log, from any
# machine, to the node whose log files they want (zray/_private/node/log_files.py).


@message(140)
class ListLogs(NamedTuple):
    """To a node: its log files, at most `limit`; answered LogList."""

    limit: int


@message(141)
class LogList(NamedTuple):
    """Node to the asker: [[name, size, mtime], ...] of `<session>/logs/`, by name."""

    files: list


@message(142)
class ReadLog(NamedTuple):
    """To a node: up to `max_bytes` (at most 256 KiB) of log file `name` from
    `offset`, or its last 64 KiB when `offset` < 0; answered LogChunk, or Error(FileNotFound)
    for a name the node's log directory does not hold."""

    name: str
    offset: int
    max_bytes: int


@message(143)
class LogChunk(NamedTuple):
    """Node to the asker: `data` read; `offset` is where the next read continues, `size`
    the file's size, `truncated` whether a tail left the file's beginning out."""

    name: str
    data: bytes
    offset: int
    size: int
    truncated: bool


# --------------------------------------------------------------------------- pipelined tasks


@message(170)
class TasksHandedBack(NamedTuple):
    """Worker to owner, on the connection the tasks came on: pushed tasks queued behind the
    running one, which blocked in get/wait, handed back unstarted for the owner to run
    elsewhere (a pipelined task must never wait behind a blocked one)."""

    task_ids: list
