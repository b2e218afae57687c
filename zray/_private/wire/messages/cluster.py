"""Records of joining the cluster and of the head service: the connection's greeting,
node and job registration, the KV store, membership and heartbeats, and resuming after a head
restart.

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


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


@message(200)
class KvDel(NamedTuple):
    """Any to head: removes `key` from the KV (and its persisted table); answered Ok(1) if it
    was there, Ok(0) if not. Ray Jobs keep each submitted job's record in the KV (namespace
    "job"), as Ray does; `zray job delete` removes it."""

    namespace: str
    key: bytes


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


@message(210)
class ResumeBundles(NamedTuple):
    """Node to a head it lost and finds again, just before its ResumeNode (so the head settles
    them before it places anything there): `bundles` `[pg_id, index, committed]` of every
    placement group bundle the node holds. The head commits those it had committed there and
    returns the others (reservations a crashed head prepared and never committed, bundles of
    groups removed meanwhile). One-way."""

    node_id: bytes
    bundles: list
