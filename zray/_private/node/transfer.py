"""Object bytes between nodes on different hosts: one TCP stream per transfer, from the source's
arena straight into the puller's arena.

The node's ZeroMQ inbox carries the pull's control messages (PullStream/StreamGrant, PullDone);
the bytes go over a plain TCP connection to the source's transfer port, served and received by
threads here so the node's loop never touches them. The sender writes memoryviews of its arena
mapping (`sendall`, no intermediate bytes); the receiver `recv_into`s its own arena at the
object's offset. Each transfer is one request for a whole range, streamed in blocks: the kernel's
TCP window keeps the link full, which on loopback moved ~3.9 GB/s where 4 MiB request/answer
chunks over the node's inbox managed ~1 GB/s.

A connection proves nothing by itself, so every request names a *grant*: 16 random bytes the
source handed out in its StreamGrant answer over the authenticated ZeroMQ connection, valid for
one object range until PullDone. (A cluster with encryption on never uses this path: its bytes
travel as chunks over CURVE, see ObjectManager.)

A source may serve an object it is still receiving (a broadcast fans out along the pullers):
its grant then carries the receiving transfer's `Progress`, and the serving thread sends each
block once it has arrived.

Stream format, per request `<16sQQB` (grant, offset, length, compress): blocks of `<II`
(raw length, wire length) followed by wire-length bytes, lz4 when shorter than the raw length. A
raw length of 0 means the source cannot serve (unknown grant, the copy failed); it then closes
the connection.
"""

from __future__ import annotations

import logging
import mmap
import os
import queue
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass

import lz4.block

from zray._fast import copy_into, populate

logger = logging.getLogger(__name__)

REQUEST = struct.Struct("<16sQQB")
BLOCK_HEADER = struct.Struct("<II")
BLOCK = 4 * 2**20
COMPRESS_SAMPLE = 64 * 1024
# lz4 compresses at ~0.5-2 GB/s on this VM, slower than a 10 Gb/s link: only data it at least
# halves gets through sooner compressed (numeric arrays rarely do; zeros shrink ~250x).
COMPRESSION_MIN_SAVING = 0.5
IDLE_CONNECTIONS_PER_PEER = 4
RECEIVERS = 4  # transfers received at once; more wait their turn


class TransferFailed(Exception):
    pass


class Progress:
    """How much of an object still being received has arrived (in order, from its start);
    shared between the thread receiving it and threads serving it onwards."""

    def __init__(self, size: int):
        self.size = size
        self.received = 0
        self.failed = False
        self._cond = threading.Condition()

    def advance(self, nbytes: int):
        with self._cond:
            self.received += nbytes
            self._cond.notify_all()

    def fail(self):
        with self._cond:
            self.failed = True
            self._cond.notify_all()

    def wait_beyond(self, position: int, timeout: float) -> int:
        """Bytes received once more than `position` have arrived (or the wait timed out);
        raises TransferFailed if the copy failed."""
        with self._cond:
            self._cond.wait_for(lambda: self.failed or self.received > position, timeout)
            if self.failed:
                raise TransferFailed("the copy being forwarded failed")
            return self.received


@dataclass
class Grant:
    object_id: bytes
    offset: int  # in the source's arena
    size: int
    progress: Progress | None  # None: the copy is complete and pinned


@dataclass
class Fetched:
    key: object  # the caller's, returned as is
    ok: bool
    error: str
    nbytes: int
    seconds: float
    compressed_blocks: int


class TransferService:
    def __init__(self, arena_path: str, capacity: int, host: str, idle_timeout_s: float):
        self.host = host
        self.idle_timeout_s = idle_timeout_s
        fd = os.open(arena_path, os.O_RDWR)
        try:
            self.arena = mmap.mmap(fd, capacity)
        finally:
            os.close(fd)
        self._grants: dict[bytes, Grant] = {}
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._serving: set[socket.socket] = set()
        self._idle: dict[tuple, list[socket.socket]] = {}
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.closed = False
        self.bytes_sent = 0
        self.bytes_received = 0
        self.requests_refused = 0
        threading.Thread(target=self._accept, name="zray-transfer-accept", daemon=True).start()
        self._receivers = [
            threading.Thread(target=self._receive_jobs, name="zray-transfer-recv", daemon=True)
            for _ in range(RECEIVERS)
        ]
        for thread in self._receivers:
            thread.start()

    @property
    def fd(self) -> int:
        """Readable when finished fetches are waiting in completions()."""
        return self._wake_r

    # ------------------------------------------------------------------ grants (node loop)

    def grant(self, object_id: bytes, offset: int, size: int, progress: Progress | None) -> bytes:
        grant_id = secrets.token_bytes(16)
        with self._lock:
            self._grants[grant_id] = Grant(object_id, offset, size, progress)
        return grant_id

    def revoke(self, grant_id: bytes):
        with self._lock:
            self._grants.pop(grant_id, None)

    @property
    def grants(self) -> int:
        return len(self._grants)

    # ------------------------------------------------------------------ serving (threads)

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._serving.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), name="zray-transfer-send", daemon=True
            ).start()

    def _serve(self, conn: socket.socket):
        # Until its first grant checks out, a connection gets the idle timeout; a proven one
        # may then sit in its puller's pool of idle connections as long as it likes.
        conn.settimeout(self.idle_timeout_s)
        try:
            while not self.closed:
                request = _recv_exact(conn, REQUEST.size)
                if request is None:
                    return
                grant_id, offset, length, compress = REQUEST.unpack(request)
                with self._lock:
                    grant = self._grants.get(grant_id)
                if grant is None or offset + length > grant.size:
                    self.requests_refused += 1
                    conn.sendall(BLOCK_HEADER.pack(0, 0))
                    return
                self._send_range(conn, grant, offset, length, bool(compress))
                conn.settimeout(None)
        except (OSError, TransferFailed) as exc:
            logger.debug("transfer connection ended: %s", exc)
        finally:
            with self._lock:
                self._serving.discard(conn)
            conn.close()

    def _send_range(self, conn, grant: Grant, offset: int, length: int, compress: bool):
        arena = memoryview(self.arena)
        position, end = offset, offset + length
        while position < end:
            available = end
            if grant.progress is not None:
                available = min(end, grant.progress.wait_beyond(position, self.idle_timeout_s))
                if available <= position:
                    raise TransferFailed("the copy being forwarded stalled")
            while position < available:
                n = min(BLOCK, available - position)
                start = grant.offset + position
                block = arena[start : start + n]
                packed = compressed_block(block) if compress else None
                if packed is None:
                    conn.sendall(BLOCK_HEADER.pack(n, n))
                    conn.sendall(block)
                else:
                    conn.sendall(BLOCK_HEADER.pack(n, len(packed)))
                    conn.sendall(packed)
                position += n
                self.bytes_sent += n
            if grant.progress is not None and grant.progress.failed:
                raise TransferFailed("the copy being forwarded failed")

    # ------------------------------------------------------------------ fetching

    def fetch(
        self,
        key,
        host: str,
        port: int,
        grant_id: bytes,
        dest_offset: int,
        size: int,
        progress: Progress,
        compress: bool,
    ):
        """Streams the granted range into our arena at `dest_offset` on a receiver thread;
        a `Fetched` with this key appears in completions() when it ends."""
        self._jobs.put((key, host, port, grant_id, dest_offset, size, progress, compress))

    def completions(self) -> list[Fetched]:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def _receive_jobs(self):
        while True:
            job = self._jobs.get()
            if job is None:
                return
            key, host, port, grant_id, dest_offset, size, progress, compress = job
            start = time.perf_counter()
            stats = [0]
            try:
                self._fetch(host, port, grant_id, dest_offset, size, progress, compress, stats)
                done = Fetched(key, True, "", size, time.perf_counter() - start, stats[0])
            except Exception as exc:  # noqa: BLE001 - every failure means: find another source
                progress.fail()
                done = Fetched(key, False, f"{type(exc).__name__}: {exc}", 0, 0.0, stats[0])
            self._done.put(done)
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # the pipe is full of wake-ups already

    def _fetch(self, host, port, grant_id, dest_offset, size, progress, compress, stats):
        conn = self._connection(host, port)
        reusable = False
        try:
            conn.sendall(REQUEST.pack(grant_id, 0, size, 1 if compress else 0))
            arena = memoryview(self.arena)
            position = 0
            while position < size:
                header = _recv_exact(conn, BLOCK_HEADER.size)
                if header is None:
                    raise TransferFailed("the source closed the connection")
                raw, wire = BLOCK_HEADER.unpack(header)
                if raw == 0 or raw > size - position or wire > raw:
                    raise TransferFailed("the source refused the transfer")
                start = dest_offset + position
                try:  # one call maps the block's fresh pages instead of a fault per page
                    populate(self.arena, start, raw)
                except OSError:
                    pass
                if wire == raw:
                    _recv_into_exact(conn, arena[start : start + raw])
                else:
                    packed = _recv_exact(conn, wire)
                    if packed is None:
                        raise TransferFailed("the source closed the connection")
                    copy_into(
                        self.arena, start, lz4.block.decompress(packed, uncompressed_size=raw)
                    )
                    stats[0] += 1
                position += raw
                self.bytes_received += raw
                progress.advance(raw)
            reusable = True
        finally:
            if reusable and not self.closed:
                self._put_back(host, port, conn)
            else:
                conn.close()

    def _connection(self, host: str, port: int) -> socket.socket:
        with self._lock:
            idle = self._idle.get((host, port))
            if idle:
                return idle.pop()
        conn = socket.create_connection((host, port), timeout=self.idle_timeout_s)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _put_back(self, host: str, port: int, conn: socket.socket):
        with self._lock:
            idle = self._idle.setdefault((host, port), [])
            if len(idle) < IDLE_CONNECTIONS_PER_PEER:
                idle.append(conn)
                return
        conn.close()

    def forget_peer(self, host: str, port: int):
        with self._lock:
            idle = self._idle.pop((host, port), [])
        for conn in idle:
            conn.close()

    def close(self):
        self.closed = True
        for _ in self._receivers:
            self._jobs.put(None)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            conns = list(self._serving) + [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        for thread in self._receivers:
            thread.join(timeout=2)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def stats(self) -> dict:
        return {
            "port": self.port,
            "grants": len(self._grants),
            "serving_connections": len(self._serving),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "requests_refused": self.requests_refused,
        }


def compressed_block(block: memoryview):
    """The block lz4-compressed if a sample of it shrinks by at least half, else None:
    incompressible data (most numeric arrays) costs only the sample."""
    sample = block[:COMPRESS_SAMPLE]
    if len(lz4.block.compress(sample, store_size=False)) > len(sample) * (
        1 - COMPRESSION_MIN_SAVING
    ):
        return None
    packed = lz4.block.compress(block, store_size=False)
    return packed if len(packed) < len(block) * (1 - COMPRESSION_MIN_SAVING) else None


def _recv_exact(conn: socket.socket, n: int):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = conn.recv_into(view[got:])
        if not k:
            return None
        got += k
    return bytes(buf)


def _recv_into_exact(conn: socket.socket, view: memoryview):
    got, n = 0, len(view)
    while got < n:
        k = conn.recv_into(view[got:])
        if not k:
            raise TransferFailed("the source closed the connection mid-block")
        got += k
