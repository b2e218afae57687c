"""Moving objects between nodes: a node pulls what its clients need from a node that holds it.

The puller asks the source for the object's size (the source pins it meanwhile), allocates a
local copy, then requests chunks, keeping at most `WINDOW` chunks in flight so a transfer never
holds more than WINDOW x CHUNK bytes of buffers. Chunks are lz4-compressed when the peer is on
another host and compression pays. The finished copy is sealed locally, which registers it in the
head's object directory like any other object.
"""

from __future__ import annotations

import logging
import mmap
import os
from dataclasses import dataclass, field

import lz4.block

from zray._fast import copy_into, populate
from zray._private.wire import protocol as P
from zray._private.node.object_table import ObjectExists, StoreFull

logger = logging.getLogger(__name__)

CHUNK = 4 * 2**20
WINDOW = 16
COMPRESSION_MIN_SAVING = 0.2
MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux 5.14+


@dataclass
class Pull:
    object_id: bytes
    source: str = ""
    size: int = 0
    offset: int = 0  # where the local copy lives in our arena
    next_chunk: int = 0  # next byte to request
    received: int = 0
    inflight: int = 0
    compress: bool = False
    tried: set = field(default_factory=set)
    attempt: int = 0  # bumped per source tried: stale answers are recognised
    hint: bytes = b""  # the node its owner says holds it


class ObjectManager:
    def __init__(self, node):
        self.node = node
        self.pulls: dict[bytes, Pull] = {}
        self.serving: dict[tuple, int] = {}  # (puller identity, object id) -> pins held
        self._arena = None
        self.bytes_pulled = 0
        self.bytes_served = 0
        self.compressed_chunks = 0
        self.copied_locally = 0  # pulls done by one copy from a same-machine peer's arena
        self._peer_arenas: dict[str, mmap.mmap] = {}

    @property
    def arena(self):
        if self._arena is None:
            fd = os.open(self.node.arena_path, os.O_RDWR)
            try:
                self._arena = mmap.mmap(fd, self.node.store_capacity)
            finally:
                os.close(fd)
        return self._arena

    # ------------------------------------------------------------------ pulling

    def want(self, object_id: bytes, hint: bytes):
        """Makes sure a pull of `object_id` is under way (a no-op if we hold or fetch it)."""
        if object_id in self.pulls or object_id in self.node.store.objects:
            return
        pull = self.pulls[object_id] = Pull(object_id, hint=hint)
        source = self.node.view.address_of(hint) if hint and hint != self.node.node_id else None
        if source:
            self._start(pull, source, hint)
        else:
            self._locate(pull)

    def _locate(self, pull: Pull):
        """Asks the head's directory; it answers once a copy exists anywhere (seed 002)."""
        self.node.requests.send(
            self.node.head_address,
            P.SubscribeObjectLocation(pull.object_id, pull.hint),
            lambda reply, payload: self._on_location(pull, reply),
        )

    def _on_location(self, pull: Pull, reply):
        if self.pulls.get(pull.object_id) is not pull:
            return
        candidates = [
            n
            for n in getattr(reply, "node_ids", [])
            if n != self.node.node_id and self.node.view.address_of(n) and n not in pull.tried
        ]
        if not candidates:
            self._lost(pull, "no live node holds a copy")
            return
        self._start(pull, self.node.view.address_of(candidates[0]), candidates[0])

    def _start(self, pull: Pull, source: str, node_id: bytes = b""):
        pull.source = source
        pull.attempt += 1
        if node_id:
            pull.tried.add(node_id)
        pull.compress = self._remote_host(node_id)
        self.node.requests.send(
            source, P.PullObject(pull.object_id), lambda reply, payload: self._on_info(pull, reply)
        )

    def _remote_host(self, node_id: bytes) -> bool:
        node = self.node.view.nodes.get(node_id)
        return node is not None and bool(node.ip) and node.ip != self.node.opts.node_ip

    def _on_info(self, pull: Pull, reply):
        if self.pulls.get(pull.object_id) is not pull:
            return
        if not isinstance(reply, P.ObjectInfo) or not reply.found:
            self._locate(pull)  # that copy is gone: ask the directory for another
            return
        # The source pins its copy until PullDone, so waiting here for room is safe.
        attempt, source = pull.attempt, pull.source
        self.node.spiller.request_room(
            reply.size, lambda ok, why: self._allocate(pull, attempt, source, reply, ok, why)
        )

    def _allocate(self, pull: Pull, attempt: int, source: str, reply, ok: bool, why: str):
        if self.pulls.get(pull.object_id) is not pull or pull.attempt != attempt:
            self.node.endpoint.send(source, P.PullDone(pull.object_id))
            return
        try:
            if not ok:
                raise StoreFull(why)
            # A pulled copy is secondary: when room is short it is deleted, not spilled.
            pull.offset = self.node.store.create(
                self.node.node_id, pull.object_id, reply.size, reply.owner_address, primary=False
            )
        except ObjectExists:
            self.pulls.pop(pull.object_id, None)
            self.node.endpoint.send(pull.source, P.PullDone(pull.object_id))
            return
        except StoreFull as exc:
            self._lost(pull, f"no room for the copy: {exc}")
            self.node.endpoint.send(pull.source, P.PullDone(pull.object_id))
            return
        pull.size = reply.size
        if pull.size == 0:
            self._complete(pull)
            return
        if not pull.compress and self._copy_from_shared_memory(pull, reply):
            return
        self._request_chunks(pull)

    def _copy_from_shared_memory(self, pull: Pull, reply: P.ObjectInfo) -> bool:
        """A source on this machine: one copy from its arena into ours, instead of chunks
        copied into messages and out again (the source pins its copy until PullDone)."""
        source = self._source_arena(reply.arena_path)
        if source is None or not 0 <= reply.offset <= len(source) - pull.size:
            return False
        self._map_ahead(source, reply.offset, pull.offset, pull.size)
        copy_into(
            self.arena, pull.offset, memoryview(source)[reply.offset : reply.offset + pull.size]
        )
        pull.received = pull.size
        self.bytes_pulled += pull.size
        self.copied_locally += 1
        self._complete(pull)
        return True

    def _map_ahead(self, source, source_offset: int, offset: int, size: int):
        """Maps both ranges in before the copy: one call each instead of a page fault per
        4 KiB page on both sides (262,144 of each for 1 GiB)."""
        try:
            populate(self.arena, offset, size)  # allocates the pages too
        except OSError:
            pass  # the copy faults them in as it goes
        start = source_offset - source_offset % mmap.PAGESIZE
        try:
            source.madvise(MADV_POPULATE_READ, start, source_offset + size - start)
        except (OSError, ValueError):
            pass

    def _source_arena(self, path: str):
        """Another node's arena on this machine, mapped read-only (once per node)."""
        mapped = self._peer_arenas.get(path)
        if mapped is not None:
            return mapped
        if not path or os.path.dirname(path) != os.path.dirname(self.node.arena_path):
            return None  # only arenas where ours lives: never any file a peer names
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None  # another machine (same path, other /dev/shm), or gone
        try:
            size = os.fstat(fd).st_size
            mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else None
        finally:
            os.close(fd)
        if mapped is not None:
            self._peer_arenas[path] = mapped
        return mapped

    def _request_chunks(self, pull: Pull):
        while pull.inflight < WINDOW and pull.next_chunk < pull.size:
            length = min(CHUNK, pull.size - pull.next_chunk)
            offset = pull.next_chunk
            pull.next_chunk += length
            pull.inflight += 1
            self.node.requests.send(
                pull.source,
                P.PullChunk(pull.object_id, offset, length, pull.compress),
                lambda reply, payload, o=offset, n=length: self._on_chunk(
                    pull, o, n, reply, payload
                ),
            )

    def _on_chunk(self, pull: Pull, offset: int, length: int, reply, payload):
        if self.pulls.get(pull.object_id) is not pull:
            return
        pull.inflight -= 1
        if not isinstance(reply, P.ObjectChunk) or not payload:
            self._abort(pull)
            return
        data = payload[0].buffer
        if reply.compressed:
            data = lz4.block.decompress(data, uncompressed_size=length)
            self.compressed_chunks += 1
        copy_into(self.arena, pull.offset + offset, data)
        pull.received += length
        self.bytes_pulled += length
        if pull.received >= pull.size:
            self._complete(pull)
        else:
            self._request_chunks(pull)

    def _complete(self, pull: Pull):
        self.pulls.pop(pull.object_id, None)
        self.node.endpoint.send(pull.source, P.PullDone(pull.object_id))
        self.node.on_seal_object(self.node.node_id, P.SealObject(pull.object_id), 0)

    def _abort(self, pull: Pull):
        """The source failed mid-transfer: drop the partial copy and look for another source."""
        self.node.store.free([pull.object_id])
        pull.next_chunk = pull.received = pull.inflight = 0
        self._locate(pull)

    def _lost(self, pull: Pull, why: str):
        self.pulls.pop(pull.object_id, None)
        logger.warning("object %s is lost: %s", pull.object_id.hex()[:16], why)
        self.node.object_lost(pull.object_id)

    def node_died(self, address: str):
        for pull in list(self.pulls.values()):
            if pull.source == address:
                if pull.size:
                    self.node.store.free([pull.object_id])
                pull.next_chunk = pull.received = pull.inflight = 0
                pull.size = 0
                self._locate(pull)

    # ------------------------------------------------------------------ serving

    def on_pull_object(self, identity: bytes, msg: P.PullObject, seq: int):
        store = self.node.store
        obj = store.objects.get(msg.object_id)
        if obj is not None and obj.spilled:
            # Answered once the object is back in memory (or lost).
            self.node.spiller.restore(
                msg.object_id, then=lambda ok: self._serve_restored(identity, msg, seq, ok)
            )
            return
        if obj is None or not obj.sealed:
            self.node.endpoint.reply(
                identity, P.ObjectInfo(msg.object_id, False, 0, "", "", 0), seq
            )
            return
        store.get(identity, None, [msg.object_id], 0)  # pin for the transfer
        key = (identity, msg.object_id)
        self.serving[key] = self.serving.get(key, 0) + 1
        self.node.endpoint.reply(
            identity,
            P.ObjectInfo(
                msg.object_id, True, obj.size, obj.owner_address, self.node.arena_path, obj.offset
            ),
            seq,
        )

    def _serve_restored(self, identity: bytes, msg: P.PullObject, seq: int, ok: bool):
        obj = self.node.store.objects.get(msg.object_id)
        if not ok or obj is None or obj.spilled:
            self.node.endpoint.reply(
                identity, P.ObjectInfo(msg.object_id, False, 0, "", "", 0), seq
            )
            return
        self.on_pull_object(identity, msg, seq)

    def on_pull_chunk(self, identity: bytes, msg: P.PullChunk, seq: int):
        obj = self.node.store.objects.get(msg.object_id)
        if (
            (identity, msg.object_id) not in self.serving
            or obj is None
            or msg.offset < 0
            or msg.length < 0
            or msg.offset + msg.length > obj.size
        ):
            self.node.endpoint.reply(identity, P.Error("ObjectLostError", "not serving"), seq)
            return
        start = obj.offset + msg.offset
        data = self.arena[start : start + msg.length]  # a copy: the arena may be reused later
        compressed = False
        if msg.compress:
            packed = lz4.block.compress(data, store_size=False)
            if len(packed) < len(data) * (1 - COMPRESSION_MIN_SAVING):
                data, compressed = packed, True
        self.bytes_served += msg.length
        self.node.endpoint.reply(
            identity, P.ObjectChunk(msg.object_id, msg.offset, compressed), seq, [data]
        )

    def on_pull_done(self, identity: bytes, msg: P.PullDone):
        key = (identity, msg.object_id)
        count = self.serving.pop(key, 0)
        if count > 1:
            self.serving[key] = count - 1
        if count:
            self.node.store.release(identity, [msg.object_id])

    def peer_gone(self, identity: bytes):
        for key in [k for k in self.serving if k[0] == identity]:
            for _ in range(self.serving.pop(key)):
                self.node.store.release(identity, [key[1]])

    def forget_arena_of(self, node_id: bytes):
        """A dead node's arena file is unlinked: unmap it, or its memory stays allocated."""
        for path in [p for p in self._peer_arenas if p.endswith(node_id.hex()[:12])]:
            self._peer_arenas.pop(path).close()

    def close(self):
        for mapped in self._peer_arenas.values():
            mapped.close()
        self._peer_arenas.clear()

    def stats(self) -> dict:
        return {
            "pulling": len(self.pulls),
            "serving": len(self.serving),
            "bytes_pulled": self.bytes_pulled,
            "bytes_served": self.bytes_served,
            "compressed_chunks": self.compressed_chunks,
            "copied_from_shared_memory": self.copied_locally,
            "pulls": [
                [p.object_id.hex()[:16], p.source, p.size, p.received, p.inflight]
                for p in list(self.pulls.values())[:10]
            ],
        }
