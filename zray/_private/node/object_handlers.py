"""The node daemon's side of the local object store: creating (after making room by spilling),
sealing, getting, releasing and freeing objects, serving pulls, and telling the head's directory
where copies are.

A mixin of NodeDaemon (daemon.py): it runs on the daemon's one thread, with its state."""

from __future__ import annotations

import logging
import os
import threading
import time

from zray._config import config
from zray._private.node import head_resume
from zray._private.node.object_table import ObjectExists, StoreFull
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)


class ObjectHandlers:
    def on_holder_died(self, identity, msg: P.HolderDied, seq):
        for client_id in self.clients:
            self._send_to_client(client_id, msg)
        # What the dead process owned can never be asked for again: free every copy here
        # (Ray frees a dead owner's objects; borrowers get OwnerDiedError).
        owned = self.store.owned_by(msg.address)
        if owned:
            self.store.free(owned)
            self.endpoint.send(
                self.head_address, P.RemoveObjectLocations(self.node_id, owned, False)
            )

    def on_create_object(self, identity, msg: P.CreateObject, seq):
        refusal = self._refusal(msg.object_id, msg.size)
        if refusal is not None:
            self.endpoint.reply(identity, P.Error(*refusal), seq)
            return

        def created(ok: bool, why: str):
            warm = max(self.store.allocator.high_water, self._prefault_done)
            result = self._create_object(
                identity, msg.object_id, msg.size, msg.owner_address, ok, why
            )
            if type(result) is int:
                self.endpoint.reply(identity, P.ObjectCreated(result, warm), seq)
                self._after_create()
            elif result is not None:
                self.endpoint.reply(identity, P.Error(*result), seq)

        self.spiller.request_room(msg.size, created)

    def on_create_objects(self, identity, msg: P.CreateObjects, seq):
        """One answer for many creates: a task's 3,000 returns cost one round trip, not 3,000.
        Each waits for room in line as its own CreateObject would."""
        count = min(len(msg.object_ids), len(msg.sizes))
        offsets, errors = [-1] * count, [None] * count
        warm = max(self.store.allocator.high_water, self._prefault_done)
        left = [count]

        def settle(index: int, result):
            if type(result) is int:
                offsets[index] = result
            else:
                errors[index] = list(result or ("RaySystemError", "the writer left"))
            left[0] -= 1
            if left[0]:
                return
            if identity in self.endpoint.peers:
                self.endpoint.reply(identity, P.ObjectsCreated(offsets, warm, errors), seq)
            self._after_create()

        def created(index: int, ok: bool, why: str):
            object_id, size = msg.object_ids[index], msg.sizes[index]
            settle(
                index, self._create_object(identity, object_id, size, msg.owner_address, ok, why)
            )

        if not count:
            self.endpoint.reply(identity, P.ObjectsCreated([], warm, []), seq)
        for index in range(count):
            refusal = self._refusal(msg.object_ids[index], msg.sizes[index])
            if refusal is not None:
                settle(index, refusal)
            else:
                self.spiller.request_room(
                    msg.sizes[index], lambda ok, why, index=index: created(index, ok, why)
                )

    def _refusal(self, object_id, size) -> tuple[str, str] | None:
        """Why a create is refused before any wait for room, as (exception kind, message)."""
        if type(size) is not int or type(object_id) is not bytes:
            return ("ValueError", f"malformed create: {object_id!r} of size {size!r}")
        if size < 0:
            return ("ValueError", f"size {size} < 0")
        if size > self.store_capacity:
            return (
                "ObjectStoreFullError",
                f"an object of {size} bytes is larger than the whole object store "
                f"({self.store_capacity} bytes); raise object_store_memory",
            )
        if object_id in self.store.objects:
            return ("ObjectExists", object_id.hex())
        return None

    def _create_object(
        self, identity, object_id: bytes, size: int, owner_address: str, ok: bool, why: str
    ) -> int | tuple[str, str] | None:
        """Runs once room was made (maybe after waiting for spills) or could not be: the
        offset, or why not as (exception kind, message), or None if the writer died while it
        waited (nobody would seal the object)."""
        if identity not in self.endpoint.peers:
            return None
        try:
            if not ok:
                raise StoreFull(why)
            return self.store.create(identity, object_id, size, owner_address)
        except StoreFull as exc:
            return ("ObjectStoreFullError", str(exc))
        except ObjectExists:
            return ("ObjectExists", object_id.hex())

    def _after_create(self):
        self.spiller.spill_above_threshold()
        # The first large object shows this workload uses the arena: from then on keep
        # arena_prefault_bytes of warm pages ahead of the high-water mark. An idle cluster
        # holds no shared memory.
        high = self.store.allocator.high_water
        if high + config.arena_prefault_bytes // 2 > self._prefaulted:
            self._prefault(high + config.arena_prefault_bytes)

    def _prefault(self, upto: int):
        """Allocates shared-memory pages ahead of use, in the background: writing a fresh page
        costs ~30x a warm one on these machines."""
        upto = min(upto, self.store_capacity)
        with self._prefault_lock:
            if upto <= self._prefaulted:
                return
            start, self._prefaulted = self._prefaulted, upto

        def run():
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except OSError:
                pass
            try:
                fd = os.open(self.arena_path, os.O_RDWR)
            except FileNotFoundError:
                return
            try:
                chunk = 64 * 2**20
                for offset in range(start, upto, chunk):
                    if not self.running:
                        break
                    os.posix_fallocate(fd, offset, min(chunk, upto - offset))
                    self._prefault_done = max(self._prefault_done, offset + chunk)
            except OSError as exc:
                logger.warning("arena pre-fault stopped: %s", exc)
            finally:
                os.close(fd)

        threading.Thread(target=run, name="zray-prefault", daemon=True).start()

    def on_seal_objects(self, identity, msg: P.SealObjects, seq):
        for object_id in msg.object_ids:
            if type(object_id) is bytes:
                self.on_seal_object(identity, P.SealObject(object_id, False), seq)

    def on_seal_object(self, identity, msg: P.SealObject, seq):
        self._answer_waiters(self.store.seal(msg.object_id))
        obj = self.store.objects.get(msg.object_id)
        if obj is not None:
            self.pending_locations.append((msg.object_id, obj.size, obj.primary))
            if msg.pinned and obj.creator == identity:
                self.store.pin_sealed(identity, msg.object_id)
        self.spiller.retry()  # what is sealed may leave memory

    def on_get_objects(self, identity, msg: P.GetObjects, seq):
        deadline = time.monotonic() + max(0.0, min(msg.timeout_s, 3600.0))
        found = self.store.get(identity, seq, msg.object_ids, deadline)
        if found is not None:
            self.endpoint.reply(identity, P.ObjectsFound(found), seq)
            return
        for object_id in self.store.spilled_ids(msg.object_ids):
            self.spiller.restore(object_id, exclude=msg.object_ids)
        hints = msg.node_hints if len(msg.node_hints) == len(msg.object_ids) else []
        for index, object_id in enumerate(msg.object_ids):
            if object_id not in self.store.objects:
                hint = hints[index] if hints and isinstance(hints[index], bytes) else b""
                self.objects.want(object_id, hint)

    def object_lost(self, object_id: bytes):
        self._answer_waiters(self.store.give_up(object_id))

    def _answer_waiters(self, satisfied):
        for waiter, locations in satisfied:
            self.endpoint.reply(waiter.client, P.ObjectsFound(locations), waiter.handle)

    def _copies_evicted(self, object_ids: list):
        """Copies pulled from other nodes were deleted to make room: the directory must stop
        sending pullers here (not a free: the primary copy lives on)."""
        self.endpoint.send(
            self.head_address, P.RemoveObjectLocations(self.node_id, object_ids, False)
        )

    def on_pull_object(self, identity, msg: P.PullObject, seq):
        self.objects.on_pull_object(identity, msg, seq)

    def on_pull_chunk(self, identity, msg: P.PullChunk, seq):
        self.objects.on_pull_chunk(identity, msg, seq)

    def on_pull_stream(self, identity, msg: P.PullStream, seq):
        self.objects.on_pull_stream(identity, msg, seq)

    def on_pull_done(self, identity, msg: P.PullDone, seq):
        self.objects.on_pull_done(identity, msg)

    def on_release_objects(self, identity, msg: P.ReleaseObjects, seq):
        self.store.release(identity, msg.object_ids)
        self.spiller.retry()

    def on_free_objects(self, identity, msg: P.FreeObjects, seq):
        self.store.free(msg.object_ids)
        self.spiller.retry()
        if msg.cascade and self.head is None:
            head_resume.note_freed(self, msg.object_ids)  # sent again to a restarted head
        self.endpoint.send(
            self.head_address, P.RemoveObjectLocations(self.node_id, msg.object_ids, msg.cascade)
        )

    def on_objects_revived(self, identity, msg: P.ObjectsRevived, seq):
        if self.head is None:
            head_resume.forget_freed(self, [oid for oid in msg.object_ids if type(oid) is bytes])

    def _flush_locations(self):
        if self.pending_locations:
            pending, self.pending_locations = self.pending_locations, []
            for kind, primary in ((P.AddObjectLocations, True), (P.AddCopyLocations, False)):
                batch = [(oid, size) for oid, size, first in pending if first is primary]
                if batch:
                    ids, sizes = [oid for oid, _ in batch], [size for _, size in batch]
                    self.endpoint.send(self.head_address, kind(self.node_id, ids, sizes))
