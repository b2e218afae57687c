"""Moving objects between nodes: a node pulls what its clients need from a node that holds it.

Three ways, by where the source is:

- **Same host** (the shortcut, `same_host_transfer`): the puller asks the source for the
  object's place (PullObject; the source pins it meanwhile) and copies it straight out of the
  source's arena file into its own.
- **Another host** (or the shortcut off): the puller asks the head's directory which node to
  pull from (LocateSource: the holder or receiver with the fewest pullers, so a broadcast fans
  out), asks that node for a grant (PullStream) and streams the object from its arena into ours
  over a plain TCP connection (zray/_private/node/transfer.py). A node still receiving the
  object forwards it as it arrives.
- **Encrypted clusters**: the bytes must travel over CURVE, so they go as 4 MiB chunks over the
  nodes' ZeroMQ connections (PullChunk), at most `WINDOW` in flight, each sent zero-copy from
  the pinned source range and lz4-compressed when the peer is on another host and it pays.

The finished copy is sealed locally, which registers it in the head's object directory like any
other object.
"""

from __future__ import annotations

import logging
import mmap
import os
from dataclasses import dataclass, field

import lz4.block

from zray._config import config
from zray._fast import copy_into, populate
from zray._private.node.object_table import ObjectExists, StoreFull
from zray._private.node.transfer import Progress, TransferService, compressed_block
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)

CHUNK = 4 * 2**20
WINDOW = 16
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
    stream: bool = False  # over a transfer connection (another host, or the shortcut off)
    source_id: bytes = b""
    progress: Progress | None = None  # set while the stream runs: we may forward it
    owner_address: str = ""
    waiting: list = field(default_factory=list)  # (identity, seq) of PullStreams to answer


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
        self.streamed = 0  # pulls done over a transfer connection
        self.forwarded = 0  # grants given for a copy still arriving
        self.stream_seconds = 0.0
        self._peer_arenas: dict[str, mmap.mmap] = {}
        # (puller identity, object id) -> [grant ids]; and -> grants on a copy still arriving,
        # pinned once it is complete.
        self.grants: dict[tuple, list] = {}
        self.unpinned: dict[tuple, int] = {}
        self._transfer: TransferService | None = None
        self._transfer_ports: dict[bytes, tuple] = {}  # node -> its transfer (host, port)
        self.streams = not node.creds.encrypt  # plain TCP would bypass CURVE

    @property
    def transfer(self) -> TransferService:
        if self._transfer is None:
            self._transfer = TransferService(
                self.node.arena_path,
                self.node.store_capacity,
                self.node.opts.node_ip,
                config.object_transfer_timeout_s,
            )
        return self._transfer

    @property
    def transfer_started(self) -> bool:
        return self._transfer is not None

    @property
    def transfer_fd(self) -> int:
        return self.transfer.fd

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
        if self.streams and not (source and self._shortcut(hint)):
            pull.stream = True
            self._locate_source(pull)
        elif source:
            self._start(pull, source, hint)
        else:
            self._locate(pull)

    def _shortcut(self, node_id: bytes) -> bool:
        return config.same_host_transfer and not self._remote_host(node_id)

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
        attempt = pull.attempt
        self.node.requests.send(
            source,
            P.PullObject(pull.object_id),
            lambda reply, payload: self._on_info(pull, reply, attempt, source),
        )

    def _remote_host(self, node_id: bytes) -> bool:
        node = self.node.view.nodes.get(node_id)
        return node is not None and bool(node.ip) and node.ip != self.node.opts.node_ip

    def _on_info(self, pull: Pull, reply, attempt: int, source: str):
        found = isinstance(reply, P.ObjectInfo) and reply.found
        if self.pulls.get(pull.object_id) is not pull or pull.attempt != attempt:
            # Given up or moved on meanwhile; the source pinned its copy for us all the same.
            if found:
                self.node.endpoint.send(source, P.PullDone(pull.object_id))
            return
        if not found:
            self._locate(pull)  # that copy is gone: ask the directory for another
            return
        # The source pins its copy until PullDone, so waiting here for room is safe.
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
        if (
            not pull.compress
            and config.same_host_transfer
            and self._copy_from_shared_memory(pull, reply)
        ):
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
        self.node.on_seal_object(self.node.node_id, P.SealObject(pull.object_id, False), 0)
        # Grants given while it arrived: from now on they hold pins like any other.
        for key in [k for k in self.unpinned if k[1] == pull.object_id]:
            for _ in range(self.unpinned.pop(key)):
                self._pin(key[0], pull.object_id)
        # Asked before we knew where the copy goes (or while we copied it another way).
        waiting, pull.waiting = pull.waiting, []
        for identity, seq in waiting:
            self.on_pull_stream(identity, P.PullStream(pull.object_id), seq)

    def _abort(self, pull: Pull):
        """The source failed mid-transfer: drop the partial copy and look for another source."""
        self.node.store.free([pull.object_id])
        pull.next_chunk = pull.received = pull.inflight = 0
        self._locate(pull)

    def _lost(self, pull: Pull, why: str):
        self.pulls.pop(pull.object_id, None)
        logger.warning("object %s is lost: %s", pull.object_id.hex()[:16], why)
        self._refuse_waiting(pull)
        # The directory may list us as receiving it (LocateSource): it must stop.
        self.node.endpoint.send(
            self.node.head_address, P.PullEnded(pull.object_id, self.node.node_id)
        )
        self.node.object_lost(pull.object_id)

    def node_died(self, address: str):
        for pull in list(self.pulls.values()):
            if pull.stream:
                # A running stream fails by itself (the connection breaks or times out).
                if pull.source == address and pull.progress is None and not pull.size:
                    pull.tried.add(pull.source_id)
                    self._locate_source(pull)
                continue
            if pull.source == address:
                if pull.size:
                    self.node.store.free([pull.object_id])
                pull.next_chunk = pull.received = pull.inflight = 0
                pull.size = 0
                self._locate(pull)

    # ------------------------------------------------------------------ streaming

    def _locate_source(self, pull: Pull):
        pull.attempt += 1
        pull.progress = None
        attempt = pull.attempt
        self.node.requests.send(
            self.node.head_address,
            P.LocateSource(pull.object_id, self.node.node_id, pull.hint, sorted(pull.tried)),
            lambda reply, payload: self._on_source(pull, attempt, reply),
        )

    def _on_source(self, pull: Pull, attempt: int, reply):
        if self.pulls.get(pull.object_id) is not pull or pull.attempt != attempt:
            return
        source_id = reply.node_id if isinstance(reply, P.SourceChosen) else b""
        if not source_id:
            self._lost(pull, "no live node holds a copy")
            return
        address = self.node.view.address_of(source_id)
        if not address or source_id == self.node.node_id:
            pull.tried.add(source_id)
            self._locate_source(pull)
            return
        if self._shortcut(source_id):  # on this machine after all: copy from its arena
            pull.stream = False
            self._start(pull, address, source_id)
            return
        pull.source, pull.source_id = address, source_id
        self.node.requests.send(
            address,
            P.PullStream(pull.object_id),
            lambda reply, payload: self._on_grant(pull, attempt, address, reply),
        )

    def _on_grant(self, pull: Pull, attempt: int, source: str, reply):
        if self.pulls.get(pull.object_id) is not pull or pull.attempt != attempt:
            if isinstance(reply, P.StreamGrant) and reply.found:
                self.node.endpoint.send(source, P.PullDone(pull.object_id))
            return
        if not isinstance(reply, P.StreamGrant) or not reply.found:
            pull.tried.add(pull.source_id)  # that copy is gone: ask for another
            self._locate_source(pull)
            return
        self.node.spiller.request_room(
            reply.size, lambda ok, why: self._allocate_stream(pull, attempt, source, reply, ok, why)
        )

    def _allocate_stream(self, pull: Pull, attempt: int, source: str, grant, ok: bool, why: str):
        if self.pulls.get(pull.object_id) is not pull or pull.attempt != attempt:
            self.node.endpoint.send(source, P.PullDone(pull.object_id))
            return
        try:
            if not ok:
                raise StoreFull(why)
            pull.offset = self.node.store.create(
                self.node.node_id, pull.object_id, grant.size, grant.owner_address, primary=False
            )
        except ObjectExists:
            self.pulls.pop(pull.object_id, None)
            self._refuse_waiting(pull)
            self.node.endpoint.send(source, P.PullDone(pull.object_id))
            return
        except StoreFull as exc:
            self.node.endpoint.send(source, P.PullDone(pull.object_id))
            self._lost(pull, f"no room for the copy: {exc}")
            return
        pull.size, pull.owner_address = grant.size, grant.owner_address
        if pull.size == 0:
            self._complete(pull)
            return
        pull.progress = Progress(pull.size)
        for identity, seq in pull.waiting:
            self._grant_arriving(identity, pull, seq)
        pull.waiting.clear()
        node = self.node.view.nodes.get(pull.source_id)
        host = node.ip if node is not None and node.ip else self.node.opts.node_ip
        self._transfer_ports[pull.source_id] = (host, grant.port)
        self.transfer.fetch(
            (pull.object_id, attempt),
            host,
            grant.port,
            grant.grant,
            pull.offset,
            pull.size,
            pull.progress,
            self._remote_host(pull.source_id),
        )

    def on_transfer_ready(self):
        for done in self.transfer.completions():
            object_id, attempt = done.key
            self.compressed_chunks += done.compressed_blocks
            pull = self.pulls.get(object_id)
            if pull is None or pull.attempt != attempt:
                continue
            if done.ok:
                self.bytes_pulled += done.nbytes
                self.streamed += 1
                self.stream_seconds += done.seconds
                pull.received = pull.size
                self._complete(pull)
                continue
            logger.info(
                "pulling %s from %s failed (%s): trying another copy",
                object_id.hex()[:16],
                pull.source,
                done.error,
            )
            # The thread marked the progress failed first: forwarders stop before we free.
            self._drop_unpinned(object_id)
            self.node.store.free([object_id])
            self.node.endpoint.send(pull.source, P.PullDone(object_id))
            pull.tried.add(pull.source_id)
            pull.size = pull.offset = pull.received = 0
            self._locate_source(pull)

    def _refuse_waiting(self, pull: Pull):
        for identity, seq in pull.waiting:
            self.node.endpoint.reply(
                identity, P.StreamGrant(pull.object_id, False, 0, "", 0, b""), seq
            )
        pull.waiting.clear()
        if pull.progress is not None:
            pull.progress.fail()
        self._drop_unpinned(pull.object_id)

    def _drop_unpinned(self, object_id: bytes):
        for key in [k for k in self.unpinned if k[1] == object_id]:
            del self.unpinned[key]
            for grant_id in self.grants.pop(key, ()):
                self.transfer.revoke(grant_id)

    def _pin(self, identity: bytes, object_id: bytes):
        self.node.store.get(identity, None, [object_id], 0)
        key = (identity, object_id)
        self.serving[key] = self.serving.get(key, 0) + 1

    # ------------------------------------------------------------------ serving

    def on_pull_stream(self, identity: bytes, msg: P.PullStream, seq: int):
        obj = self.node.store.objects.get(msg.object_id)
        pull = self.pulls.get(msg.object_id)
        if obj is not None and obj.spilled:
            self.node.spiller.restore(
                msg.object_id,
                then=lambda ok: self._stream_restored(identity, msg, seq, ok),
            )
        elif obj is not None and obj.sealed:
            self._pin(identity, msg.object_id)
            grant_id = self.transfer.grant(msg.object_id, obj.offset, obj.size, None)
            self.grants.setdefault((identity, msg.object_id), []).append(grant_id)
            self.node.endpoint.reply(
                identity,
                P.StreamGrant(
                    msg.object_id, True, obj.size, obj.owner_address, self.transfer.port, grant_id
                ),
                seq,
            )
        elif pull is not None and pull.stream and pull.progress is not None:
            self._grant_arriving(identity, pull, seq)
        elif pull is not None and pull.stream:
            pull.waiting.append((identity, seq))  # answered once we know where it goes
        else:
            self.node.endpoint.reply(
                identity, P.StreamGrant(msg.object_id, False, 0, "", 0, b""), seq
            )

    def _stream_restored(self, identity: bytes, msg: P.PullStream, seq: int, ok: bool):
        obj = self.node.store.objects.get(msg.object_id)
        if not ok or obj is None or obj.spilled:
            self.node.endpoint.reply(
                identity, P.StreamGrant(msg.object_id, False, 0, "", 0, b""), seq
            )
            return
        self.on_pull_stream(identity, msg, seq)

    def _grant_arriving(self, identity: bytes, pull: Pull, seq: int):
        """A grant on our copy still arriving: the serving thread sends each block once it is
        here. Pinned when complete; until then a failure ends the forwarded stream too."""
        key = (identity, pull.object_id)
        grant_id = self.transfer.grant(pull.object_id, pull.offset, pull.size, pull.progress)
        self.grants.setdefault(key, []).append(grant_id)
        self.unpinned[key] = self.unpinned.get(key, 0) + 1
        self.forwarded += 1
        self.node.endpoint.reply(
            identity,
            P.StreamGrant(
                pull.object_id, True, pull.size, pull.owner_address, self.transfer.port, grant_id
            ),
            seq,
        )

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
        # A view, sent zero-copy: the range stays pinned until the puller's PullDone, which
        # comes after its last chunk arrived.
        data = memoryview(self.arena)[start : start + msg.length]
        compressed = False
        if msg.compress:
            packed = compressed_block(data)
            if packed is not None:
                data, compressed = packed, True
        self.bytes_served += msg.length
        self.node.endpoint.reply(
            identity, P.ObjectChunk(msg.object_id, msg.offset, compressed), seq, [data]
        )

    def on_pull_done(self, identity: bytes, msg: P.PullDone):
        key = (identity, msg.object_id)
        grants = self.grants.pop(key, None)
        if grants and self._transfer is not None:
            for grant_id in grants:
                self._transfer.revoke(grant_id)
        unpinned = self.unpinned.pop(key, 0)
        if unpinned:
            if unpinned > 1:
                self.unpinned[key] = unpinned - 1
            return
        count = self.serving.pop(key, 0)
        if count > 1:
            self.serving[key] = count - 1
        if count:
            self.node.store.release(identity, [msg.object_id])

    def peer_gone(self, identity: bytes):
        port = self._transfer_ports.pop(identity, None)
        if port is not None and self._transfer is not None:
            self._transfer.forget_peer(*port)  # its idle connections lead nowhere now
        for key in [k for k in self.grants if k[0] == identity]:
            for grant_id in self.grants.pop(key):
                self.transfer.revoke(grant_id)
        for key in [k for k in self.unpinned if k[0] == identity]:
            del self.unpinned[key]
        for key in [k for k in self.serving if k[0] == identity]:
            for _ in range(self.serving.pop(key)):
                self.node.store.release(identity, [key[1]])

    def forget_arena_of(self, node_id: bytes):
        """A dead node's arena file is unlinked: unmap it, or its memory stays allocated."""
        for path in [p for p in self._peer_arenas if p.endswith(node_id.hex()[:12])]:
            self._peer_arenas.pop(path).close()

    def close(self):
        if self._transfer is not None:
            self._transfer.close()
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
            "streamed": self.streamed,
            "stream_seconds": round(self.stream_seconds, 6),
            "forwarded": self.forwarded,
            "connections": self._transfer.stats() if self._transfer is not None else {},
            "pulls": [
                [p.object_id.hex()[:16], p.source, p.size, p.received, p.inflight]
                for p in list(self.pulls.values())[:10]
            ],
        }
