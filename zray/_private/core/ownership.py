"""The core worker as an owner of objects: borrowers registering and leaving, answering their
status questions, freeing what nobody holds any more (and giving back registrations on others'
objects), and the ref table `zray memory` reads.

A mixin of CoreWorker (core_worker.py): its handlers run on the I/O thread, with its state."""

from __future__ import annotations

import logging

from zray._private.core import lineage_pins
from zray._private.core.memory_store import KIND_ERROR, KIND_FREED, KIND_INLINE, KIND_PLASMA
from zray._private.core.reference_counter import Released
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)


class Ownership:
    def _free_released(self):
        self.apply_released(self.refs.collect())

    def apply_released(self, released: Released):
        """Frees what we own and no one holds, gives back borrowed registrations, and drops
        cached values of borrowed objects no longer used here."""
        if not released:
            return
        if released.freed:
            self.free_objects(released.freed)
        for oid in released.forgotten:
            self.memory_store.delete(oid)
        by_owner: dict = {}
        for owner, oid, count in released.removes:
            ids, counts = by_owner.setdefault(owner, ([], []))
            ids.append(oid)
            counts.append(count)
        for owner, (ids, counts) in by_owner.items():
            self.endpoint.send(owner, P.RemoveBorrowers(self.address, ids, counts))

    def register_borrower(self, holder: str, refs):
        """Tells each ref's owner that `holder` was handed it. Callers do this while they still
        hold the refs themselves, which keeps the objects alive until the owner knows."""
        for owner, ids in self.refs.hand_over(holder, refs).items():
            self.endpoint.send(owner, P.AddBorrowers(holder, ids))

    def unregister_borrower(self, holder: str, refs):
        """Gives back, on a dead holder's behalf, registrations made for a call it never
        finished: nobody else will."""
        released, remote = self.refs.give_back_for(holder, refs)
        for owner, ids in remote.items():
            self.endpoint.send(owner, P.RemoveBorrowers(holder, ids, [1] * len(ids)))
        self.apply_released(released)

    def on_add_borrowers(self, identity, msg, seq, payload):
        released = Released()
        for oid in msg.object_ids:
            if self.refs.owns(oid):
                released.extend(self.refs.add_borrower(oid, msg.holder))
            else:
                logger.warning(
                    "borrower registered for %s, which is not (or no longer) ours", oid.hex()
                )
        self.apply_released(released)

    def on_remove_borrowers(self, identity, msg, seq, payload):
        released = Released()
        for oid, count in zip(msg.object_ids, msg.counts):
            if isinstance(oid, bytes) and isinstance(count, int):
                released.extend(self.refs.remove_borrower(oid, msg.holder, count))
        self.apply_released(released)

    def revive_objects(self, object_ids):
        """Objects we may have freed are made again under the same ids (lineage
        reconstruction): our node must not send their frees again to a head that restarts."""
        self.endpoint.send(self.node_address, P.ObjectsRevived(list(object_ids)))

    def free_objects(self, object_ids):
        lineage_pins.freed(self, object_ids)  # lineage no kept spec uses goes too
        plasma = []
        for oid in object_ids:
            entry = self.memory_store.get(oid)
            self.memory_store.delete(oid)
            if entry is not None and entry.kind == KIND_PLASMA:
                plasma.append(oid)
        if plasma:
            self.endpoint.send(self.node_address, P.FreeObjects(plasma, True))

    def on_get_object_status(self, identity, msg, seq, payload):
        """A borrower asks for a value we own: answer when it is ready."""
        if not self.refs.owns(msg.object_id) and not self.memory_store.contains(msg.object_id):
            self.endpoint.reply(
                identity, P.ObjectStatus(msg.object_id, KIND_FREED, b"", 0, 0, []), seq
            )
            return

        def answer(object_id, entry):
            frames = list(entry.frames) if entry.kind in (KIND_INLINE, KIND_ERROR) else []
            contained = self.refs.contents(object_id)
            if contained:
                self.register_borrower(self.endpoint.peers.get(identity, ""), contained)
            self.endpoint.reply(
                identity,
                P.ObjectStatus(
                    object_id,
                    entry.kind,
                    entry.node_id,
                    entry.size,
                    len(frames),
                    [list(r) for r in contained],
                ),
                seq,
                frames,
            )

        self.memory_store.on_ready(msg.object_id, answer)

    def on_holder_died(self, identity, msg, seq, payload):
        self.apply_released(self.refs.forget_holder(msg.address))
        self.owner_died(msg.address)

    def on_get_ref_table(self, identity, msg, seq, payload):
        rows = []
        for oid, owner, reasons, borrowers in self.refs.table():
            view = self._live_views.get(oid)
            if view is not None and view() is not None:
                reasons.insert(1, "PINNED_IN_MEMORY")
            entry = self.memory_store.get(oid)
            rows.append([oid, owner, entry.size if entry is not None else -1, reasons, borrowers])
        self.endpoint.reply(identity, P.RefTable(self.address, rows), seq)
