"""Values a process borrows: asked of their owner once, failed at once when it died, and
recomputed by their owner when every copy was lost (Ray: only the owner can reconstruct, so a
borrower asks it to).

Mixed into CoreWorker (core_worker.py), which owns the memory store and the requests.
"""

from __future__ import annotations

import logging
import threading

from zray import exceptions as X
from zray._config import config
from zray._private.wire import protocol as P
from zray._private.core.dependencies import error_entry
from zray._private.core.memory_store import KIND_ERROR, KIND_FREED, KIND_INLINE, Entry

logger = logging.getLogger(__name__)

# Values asked of one owner in one message: inline values are at most max_inline_bytes
# (100 KiB) each, so an answer stays far below a connection's message limit.
STATUS_BATCH = 256


class BorrowedValues:
    def _init_borrowed_values(self):
        self._owner_requests: dict[bytes, str] = {}  # borrowed ids asked of their owner
        self._dead_owners: set[str] = set()  # processes announced dead (HolderDied)

    def owner_died(self, address: str):
        """A process was announced dead: what we asked of it will never be answered."""
        self._dead_owners.add(address)
        for object_id, owner in list(self._owner_requests.items()):
            if owner == address:
                self._owner_gone(object_id, owner)

    def _request_missing(self, refs):
        """Asks owners for borrowed values we do not hold yet (once per object); several of
        one owner in one message, since a round trip each was most of a call with thousands
        of ref arguments."""
        present, owned, asked = self.memory_store._entries, self.refs._owned, self._owner_requests
        by_owner: dict[str, list] = {}
        for ref in refs:  # runs over every ref of every get and wait: kept to set lookups
            oid = ref._id
            if oid in present or oid in owned or oid in asked:
                continue
            if not ref._owner or ref._owner == self.address:
                continue
            if ref._owner in self._dead_owners:
                self._owner_gone(oid, ref._owner)
                continue
            self._owner_requests[oid] = ref._owner
            by_owner.setdefault(ref._owner, []).append(oid)
        for owner, oids in by_owner.items():
            if len(oids) == 1:
                self.requests.send(owner, P.GetObjectStatus(oids[0]), self._on_object_status)
                continue
            for start in range(0, len(oids), STATUS_BATCH):
                batch = oids[start : start + STATUS_BATCH]
                self.requests.send(
                    owner,
                    P.GetObjectStatuses(batch),
                    lambda reply, payload, o=owner, b=batch: self._on_object_statuses(
                        o, b, reply, payload
                    ),
                )

    def _on_object_statuses(self, owner: str, asked: list, reply, payload):
        if not isinstance(reply, P.ObjectStatuses):  # e.g. a peer without the batch message
            for oid in asked:
                self.requests.send(owner, P.GetObjectStatus(oid), self._on_object_status)
            return
        packed = payload[0].buffer if payload else memoryview(b"")
        position, unanswered = 0, set(asked)
        for status in reply.statuses:
            try:
                object_id, kind, node_id, size, frame_sizes, contained = status
                ends, end = [], position
                for n in frame_sizes:
                    if type(n) is not int or n < 0:
                        raise ValueError(f"a frame size of {n!r}")
                    end += n
                    ends.append(end)
                if end > len(packed):
                    raise ValueError("frame sizes run past the payload")
            except (TypeError, ValueError) as exc:
                logger.warning(
                    "a malformed answer from %s (%s): asking again one by one", owner, exc
                )
                break
            # Copied out of the one payload frame: a value kept alive must not keep the other
            # 255 values' bytes alive with it.
            frames = []
            for end in ends:
                frames.append(bytes(packed[position:end]))
                position = end
            unanswered.discard(object_id)
            self._store_status(
                P.ObjectStatus(object_id, kind, node_id, size, len(frames), contained), frames
            )
        for oid in asked:  # `reply.pending` and any the answer did not cover: asked one by one
            if oid in unanswered and oid in self._owner_requests:
                self.requests.send(owner, P.GetObjectStatus(oid), self._on_object_status)

    def on_get_object_statuses(self, identity, msg, seq, payload):
        """Several values a borrower asks for at once: those ready now, in one answer."""
        statuses, pending, frames = [], [], []
        # All values' frames go as one payload frame: ZeroMQ and the borrower's I/O thread
        # paid ~25 us per frame, most of asking for 10,000 values past a call's inline budget.
        for object_id in msg.object_ids:
            if not isinstance(object_id, bytes):
                continue
            entry = self.memory_store.get(object_id)
            if entry is None and not self.refs.owns(object_id):
                statuses.append([object_id, KIND_FREED, b"", 0, [], []])
                continue
            if entry is None:
                pending.append(object_id)
                continue
            inline = list(entry.frames) if entry.kind in (KIND_INLINE, KIND_ERROR) else []
            contained = self.refs.contents(object_id)
            if contained:
                self.register_borrower(self.endpoint.peers.get(identity, ""), contained)
            statuses.append(
                [
                    object_id,
                    entry.kind,
                    entry.node_id,
                    entry.size,
                    [memoryview(f).nbytes for f in inline],
                    [list(r) for r in contained],
                ]
            )
            frames.extend(inline)
        packed = [b"".join(frames)] if frames else []
        self.endpoint.reply(identity, P.ObjectStatuses(statuses, pending), seq, packed)

    def _owner_gone(self, object_id: bytes, owner: str):
        """Its owner died before telling us the value: nobody ever will (Ray's OwnerDiedError,
        raised at once rather than when the get times out)."""
        self._owner_requests.pop(object_id, None)
        if not self.memory_store.contains(object_id):
            self.memory_store.put(
                object_id, error_entry(X.OwnerDiedError(object_id.hex(), owner.encode(), ""))
            )

    def _on_object_status(self, reply, payload):
        if isinstance(reply, P.Error):
            logger.warning("owner could not answer: %s", reply.message)
            return
        self._store_status(reply, [f.buffer for f in payload])

    def _store_status(self, reply: P.ObjectStatus, frames: list):
        self._owner_requests.pop(reply.object_id, None)
        if reply.contained:
            self.apply_released(
                self.refs.receive_contained(reply.object_id, [tuple(r) for r in reply.contained])
            )
        self.memory_store.put(reply.object_id, Entry(reply.kind, frames, reply.node_id, reply.size))

    def reconstruct_borrowed(self, object_id: bytes, owner: str, lost: X.ObjectLostError):
        """Asks the owner to recompute a borrowed object whose copies are all lost; returns
        once it has started (the next get asks the owner again and waits for the new copy),
        or raises why it cannot."""
        if owner in self._dead_owners:
            raise X.OwnerDiedError(object_id.hex(), owner.encode(), "")
        try:
            reply, _ = self.requests.call(
                owner, P.ReconstructObject(object_id), config.rpc_timeout_s
            )
        except TimeoutError:
            raise lost from None
        if isinstance(reply, P.Error):
            if reply.kind == "ObjectReconstructionFailedError":
                raise X.ObjectReconstructionFailedError(object_id.hex(), reply.message)
            raise lost
        self.memory_store.delete(object_id)

    def on_reconstruct_object(self, identity, msg: P.ReconstructObject, seq, payload):
        """A borrower lost every copy of an object we own. Recomputing may ask the head
        whether arguments are lost too, which this (I/O) thread must not wait for."""

        def run():
            try:
                if not self.refs.owns(msg.object_id) or not self.submitter.reconstruct(
                    msg.object_id
                ):
                    answer = P.Error("ObjectLostError", "")
                else:
                    answer = P.Ok(0)
            except X.ObjectReconstructionFailedError as failed:
                answer = P.Error("ObjectReconstructionFailedError", failed.reason)
            except Exception as exc:  # noqa: BLE001 - the borrower must hear back
                logger.exception("recomputing %s for a borrower", msg.object_id.hex())
                answer = P.Error("ObjectLostError", str(exc))
            self.endpoint.reply(identity, answer, seq)

        threading.Thread(target=run, name="zray-reconstruct", daemon=True).start()
