"""Records of an actor's life: creation through the head, start on a node, state
subscriptions, kills and names, and the calls pushed to it.

Each record's fields and meaning are in docs/protocol.md; the codec is in
`zray/_private/wire/codec.py`."""

from __future__ import annotations

from typing import NamedTuple

from zray._private.wire.codec import message


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
