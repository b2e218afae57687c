"""What a worker checks of a pushed call before it runs it.

`protocol.decode` checks each field's type, not what is inside a list or whether an id has the
right length. A push that passes it can still make the executor fail outside any call's error
handling (an id of the wrong length, a borrowed entry that is not `[id, owner]`) or allocate
without bound (`num_returns=10**9`), and so kill the worker and break its legitimate callers.
Anyone who can reach a worker's inbox or direct socket can send one, so every push is checked
here once, at the inbox, and dropped (and counted) if it fails.

The common call has no `resolved` or `borrowed` entries and an owner seen before: a few
comparisons and one set lookup.
"""

from __future__ import annotations

from zray._fast import MAX_FRAMES, OBJECT_ID_SIZE, TASK_ID_SIZE
from zray._private.wire import protocol as P
from zray._private.wire.transport import valid_address

_KNOWN_OWNERS_MAX = 4096
_MAX_GPUS = 1024


def _resources(resources: dict) -> bool:
    """{name: amount}: what get_assigned_resources hands the task's code."""
    return all(
        type(name) is str and type(amount) in (int, float) and 0 <= amount < 2**53
        for name, amount in resources.items()
    )


class PushChecker:
    """Checks PushTask / PushActorTask records; remembers owner addresses already checked."""

    def __init__(self):
        self._owners: set[str] = set()
        # Set once this worker hosts an actor: then only calls to that actor are accepted.
        self.actor_id: bytes | None = None

    def problem(self, msg, nframes: int) -> str | None:
        """Why `msg` (with `nframes` payload frames) must be dropped, or None if it is fine."""
        kind = type(msg)
        if kind is P.PushActorTask:
            if msg.actor_id != self.actor_id:
                return "a call for an actor this worker does not host"
        elif kind is not P.PushTask:
            return f"{kind.__name__} is not a call"
        elif self.actor_id is not None:
            return "a task pushed to an actor's worker"
        if len(msg.task_id) != TASK_ID_SIZE:
            return f"task id of {len(msg.task_id)} bytes"
        if not 0 <= msg.num_returns <= P.MAX_NUM_RETURNS and msg.num_returns != P.STREAMING:
            return f"num_returns={msg.num_returns}"
        if not self._owner(msg.owner_address):
            return "invalid owner address"
        frames = 1 + msg.nbuffers
        if msg.nbuffers < 0:
            return f"nbuffers={msg.nbuffers}"
        for entry in msg.resolved:
            if not _resolved_entry(entry):
                return "malformed resolved entry"
            frames += entry[2]
        if frames > nframes:
            return f"{nframes} payload frames for {frames}"
        for entry in msg.borrowed:  # [object_id, owner address]: given back to that owner
            if not (
                type(entry) is list
                and len(entry) == 2
                and _object_id(entry[0])
                and self._owner(entry[1])
            ):
                return "malformed borrowed entry"
        if kind is P.PushTask and msg.resources:
            if not _resources(msg.resources):
                return "malformed resources"
        if kind is P.PushTask and msg.gpu_ids:
            if len(msg.gpu_ids) > _MAX_GPUS or not all(
                type(i) is int and 0 <= i < _MAX_GPUS for i in msg.gpu_ids
            ):
                return "malformed gpu ids"
        return None

    def _owner(self, address) -> bool:
        """Whether `address` can be sent to (answers, given-back borrows)."""
        if type(address) is not str:
            return False
        if address in self._owners:
            return True
        if not valid_address(address):
            return False
        if len(self._owners) >= _KNOWN_OWNERS_MAX:
            self._owners.clear()
        self._owners.add(address)
        return True


def _object_id(value) -> bool:
    return type(value) is bytes and len(value) == OBJECT_ID_SIZE


def _resolved_entry(entry) -> bool:
    """[object_id, kind, nframes, node_id, size], as PushTask documents it."""
    return (
        type(entry) is list
        and len(entry) == 5
        and _object_id(entry[0])
        and type(entry[1]) is int
        and type(entry[2]) is int
        and 0 <= entry[2] <= MAX_FRAMES
        and type(entry[3]) is bytes
        and type(entry[4]) is int
        and entry[4] >= 0
    )
