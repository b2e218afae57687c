"""The head's actor table as a state machine without I/O.

An actor is PENDING (waiting for a worker lease), ALIVE (its constructor returned), RESTARTING
(its worker died and restarts remain) or DEAD. The head, not the creating process, places and
restarts actors, so detached actors outlive their driver and any handle holder can learn where
an actor lives. Subscribers receive every state change exactly once, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from zray._private.common.actor_states import ALIVE, DEAD, PENDING, RESTARTING


@dataclass(frozen=True)
class RequestWorker:
    actor_id: bytes
    resources: dict[str, float]


@dataclass(frozen=True)
class StartActor:
    actor_id: bytes
    worker_id: bytes
    attempt: int


@dataclass(frozen=True)
class StopWorker:
    actor_id: bytes
    worker_id: bytes


@dataclass(frozen=True)
class ReturnWorker:
    """The lease is no longer needed (actor died before or while starting)."""

    lease_id: int


@dataclass(frozen=True)
class Publish:
    subscriber: object
    actor_id: bytes
    state: str
    address: str
    num_restarts: int
    death_cause: str
    error: bytes  # pickled exception of a failed constructor, or b""


@dataclass
class Actor:
    actor_id: bytes
    # name, namespace, class_name, lifetime, max_restarts, resources, owner_id ...
    spec: dict[str, Any]
    state: str = PENDING
    address: str = ""
    worker_id: bytes = b""
    lease_id: int = 0
    num_restarts: int = 0
    death_cause: str = ""
    error: bytes = b""
    error_text: str = ""  # the constructor's error with its traceback, for the state API
    no_restart: bool = False
    subscribers: list[object] = field(default_factory=list)


Instruction = Union[RequestWorker, StartActor, StopWorker, ReturnWorker, Publish]


class NameTaken(Exception):
    pass


class ActorManager:
    def __init__(self) -> None:
        self.actors: dict[bytes, Actor] = {}
        # (namespace, name) -> actor_id of a live actor
        self.names: dict[tuple[str, str], bytes] = {}
        self.by_lease: dict[int, bytes] = {}
        # Actors whose record changed since `take_changed()`: the head writes them through
        # even when a change tells no one (a death without subscribers).
        self.changed: set[bytes] = set()

    def take_changed(self) -> set[bytes]:
        changed, self.changed = self.changed, set()
        return changed

    # ------------------------------------------------------------------ events

    def create(self, actor_id: bytes, spec: dict[str, Any]) -> list[Instruction]:
        if actor_id in self.actors:
            return []
        key = (spec.get("namespace", ""), spec.get("name") or "")
        if key[1] and key in self.names:
            raise NameTaken(f"The name {key[1]} (namespace={key[0]}) is already taken.")
        self.actors[actor_id] = Actor(actor_id, spec)
        self.changed.add(actor_id)
        if key[1]:
            self.names[key] = actor_id
        return [RequestWorker(actor_id, spec.get("resources", {}))]

    def lease_granted(
        self, actor_id: bytes, lease_id: int, worker_id: bytes, address: str
    ) -> list[Instruction]:
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == DEAD:
            return [ReturnWorker(lease_id)]
        actor.lease_id, actor.worker_id, actor.address = lease_id, worker_id, address
        self.changed.add(actor_id)
        self.by_lease[lease_id] = actor_id
        return [StartActor(actor_id, worker_id, actor.num_restarts)]

    def started(
        self, actor_id: bytes, ok: bool, error: bytes = b"", error_text: str = ""
    ) -> list[Instruction]:
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == DEAD or not actor.worker_id:
            return []  # (no worker: a start a restarted head gave up on, answered late)
        if not ok:
            actor.error_text = error_text
            return self._die(
                actor, "the actor's constructor raised an exception", error, stop_worker=True
            )
        actor.state = ALIVE
        self.changed.add(actor_id)
        return self._publish(actor)

    def worker_died(self, lease_id: int, exit_code: int, why: str = "") -> list[Instruction]:
        actor_id = self.by_lease.pop(lease_id, None)
        actor = self.actors.get(actor_id) if actor_id else None
        if actor is None or actor.state == DEAD:
            return []
        actor.address, actor.worker_id, actor.lease_id = "", b"", 0
        self.changed.add(actor.actor_id)
        limit = actor.spec.get("max_restarts", 0)
        if not actor.no_restart and (limit == -1 or actor.num_restarts < limit):
            actor.num_restarts += 1
            actor.state = RESTARTING
            return self._publish(actor) + [
                RequestWorker(actor.actor_id, actor.spec.get("resources", {}))
            ]
        cause = actor.death_cause or (
            (
                f"The actor died because {why}"
                if why
                else f"The actor's worker process died unexpectedly (exit code {exit_code})"
            )
            + (f" after {actor.num_restarts} restart(s)." if actor.num_restarts else ".")
        )
        return self._die(actor, cause, b"", stop_worker=False)

    def kill(self, actor_id: bytes, no_restart: bool, cause: str) -> list[Instruction]:
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == DEAD:
            return []
        actor.no_restart = actor.no_restart or no_restart
        actor.death_cause = cause
        self.changed.add(actor_id)
        if actor.worker_id:
            # The worker's death comes back as worker_died, which restarts or buries it.
            return [StopWorker(actor_id, actor.worker_id)]
        if no_restart:
            return self._die(actor, cause, b"", stop_worker=False)
        return []

    def exited(self, actor_id: bytes, cause: str) -> list[Instruction]:
        """The actor ended itself (exit_actor): never restarted."""
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == DEAD:
            return []
        actor.no_restart = True
        self.changed.add(actor_id)
        return self._die(actor, cause, b"", stop_worker=True)

    def owner_died(self, owner_id: bytes) -> list[Instruction]:
        out: list[Instruction] = []
        for actor in list(self.actors.values()):
            if (
                actor.spec.get("owner_id") == owner_id
                and actor.state != DEAD
                and actor.spec.get("lifetime") != "detached"
            ):
                out += self.kill(
                    actor.actor_id,
                    True,
                    "The actor's owner (the process that created it) has exited.",
                )
        return out

    def subscribe(self, actor_id: bytes, subscriber: object) -> list[Instruction]:
        actor = self.actors.get(actor_id)
        if actor is None:
            return [
                Publish(
                    subscriber, actor_id, DEAD, "", 0, "The actor is unknown to this cluster.", b""
                )
            ]
        if subscriber not in actor.subscribers:
            actor.subscribers.append(subscriber)
        return [self._state(actor, subscriber)]

    def unsubscribe_all(self, subscriber: object) -> list[Instruction]:
        for actor in self.actors.values():
            if subscriber in actor.subscribers:
                actor.subscribers.remove(subscriber)
        return []

    def lookup(self, namespace: str, name: str) -> Actor | None:
        actor_id = self.names.get((namespace, name))
        return self.actors.get(actor_id) if actor_id else None

    def named(self, namespace: str | None) -> list[tuple[str, str]]:
        """(namespace, name) of every named actor not dead, in `namespace` or (None) in all.
        Dead actors have given their names up already, so the name table is the answer."""
        return [key for key in self.names if namespace is None or key[0] == namespace]

    # ------------------------------------------------------------------ internals

    def _die(self, actor: Actor, cause: str, error: bytes, stop_worker: bool) -> list[Instruction]:
        self.changed.add(actor.actor_id)
        actor.state = DEAD
        actor.death_cause = cause
        actor.error = error
        key = (actor.spec.get("namespace", ""), actor.spec.get("name") or "")
        if key[1] and self.names.get(key) == actor.actor_id:
            del self.names[key]
        out: list[Instruction] = []
        if stop_worker and actor.worker_id:
            out.append(StopWorker(actor.actor_id, actor.worker_id))
        self.by_lease.pop(actor.lease_id, None)
        out += self._publish(actor)
        return out

    def _publish(self, actor: Actor) -> list[Instruction]:
        return [self._state(actor, s) for s in actor.subscribers]

    @staticmethod
    def _state(actor: Actor, subscriber: object) -> Publish:
        return Publish(
            subscriber,
            actor.actor_id,
            actor.state,
            actor.address,
            actor.num_restarts,
            actor.death_cause,
            actor.error,
        )

    def stats(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for actor in self.actors.values():
            counts[actor.state] = counts.get(actor.state, 0) + 1
        return counts
