"""One end of a ray:// connection: a ZeroMQ DEALER that only its I/O thread touches.

The client (to the client server's tcp port) and each session process (to the client server's
ipc socket) hold one. Any thread sends by handing frames to the I/O thread over an inproc
pipe, so the DEALER stays single-threaded and the connection never needs a listening socket on
the client's side: every reply comes back on the connection the client opened.

A payload frame above CLIENT_CHUNK_BYTES travels as ClientChunks of that size after the
request or reply it belongs to (zero-copy slices on the sending side, one copy into place on
the receiving side), so a 1 GB value never becomes one ZeroMQ message and the pieces of a
large value interleave with other traffic on the way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

import zmq

from zray._private.wire import protocol as P
from zray._private.wire.security import Credentials, monitor_event

logger = logging.getLogger(__name__)

TICK_S = 0.1
_ZERO_COPY_MIN = 64 * 1024


def split(head, payload: list) -> list:
    """The messages (frame lists) that carry `head` (a ClientRequest or ClientReply whose
    `sizes` field is still empty) and its payload."""
    views = [memoryview(frame).cast("B") for frame in payload]
    sizes = [view.nbytes for view in views]
    head = head._replace(sizes=sizes)
    first = P.encode(head) + [v for v in views if v.nbytes <= P.CLIENT_CHUNK_BYTES]
    messages = [first]
    for index, view in enumerate(views):
        if view.nbytes <= P.CLIENT_CHUNK_BYTES:
            continue
        for offset in range(0, view.nbytes, P.CLIENT_CHUNK_BYTES):
            piece = view[offset : offset + P.CLIENT_CHUNK_BYTES]
            messages.append(P.encode(P.ClientChunk(head.seq, index, offset)) + [piece])
    return messages


class _Assembly:
    __slots__ = ("head", "frames", "missing")

    def __init__(self, head, frames: list, missing: int):
        self.head = head
        self.frames = frames
        self.missing = missing  # bytes of the large frames still to come


class Channel:
    """`on_message(record, payload)` runs on the I/O thread for every complete message;
    `on_connected()` each time the handshake with the peer succeeds (first and reconnections);
    `on_tick()` about every TICK_S."""

    def __init__(
        self,
        address: str,
        identity: bytes,
        creds: Credentials,
        on_message: Callable,
        on_connected: Callable | None = None,
        on_tick: Callable | None = None,
        name: str = "zray-client",
    ):
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.DEALER)
        creds.present(sock)
        sock.setsockopt(zmq.IDENTITY, identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        self._monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        )
        pipe = f"inproc://client-out-{os.getpid()}-{id(self)}"
        self._outgoing = self._ctx.socket(zmq.PULL)
        self._outgoing.bind(pipe)
        self._sender = self._ctx.socket(zmq.PUSH)
        self._sender.setsockopt(zmq.SNDHWM, 0)
        self._sender.connect(pipe)
        self._send_lock = threading.Lock()
        self._socket = sock
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_tick = on_tick
        self._assemblies: dict = {}
        self._closing = False
        self.connected = False
        self.disconnects = 0
        sock.connect(address)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "Channel":
        """Starts the I/O thread, once the owner can take callbacks."""
        self._thread.start()
        return self

    # ------------------------------------------------------------------ any thread

    def send(self, messages: list):
        """Sends each message (a list of frames) in order."""
        with self._send_lock:
            if self._closing:
                raise ConnectionError("the ray:// connection is closed")
            for frames in messages:
                last = len(frames) - 1
                for i, frame in enumerate(frames):
                    big = not isinstance(frame, bytes) and memoryview(frame).nbytes >= (
                        _ZERO_COPY_MIN
                    )
                    self._sender.send(frame, zmq.SNDMORE if i < last else 0, copy=not big)

    def close(self):
        with self._send_lock:
            if self._closing:
                return
            self._closing = True
            self._sender.send(b"")  # wakes the I/O thread, which closes the sockets
        if self._thread.ident is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        self._sender.close(linger=0)
        if not self._thread.is_alive():
            if self._thread.ident is None:  # never started: its sockets are still open
                for sock in (self._monitor, self._outgoing, self._socket):
                    sock.close(linger=0)
            self._ctx.term()

    # ------------------------------------------------------------------ I/O thread

    def _run(self):
        poller = zmq.Poller()
        for sock in (self._socket, self._outgoing, self._monitor):
            poller.register(sock, zmq.POLLIN)
        next_tick = time.monotonic() + TICK_S
        try:
            while True:
                ready = dict(poller.poll(max(0.0, next_tick - time.monotonic()) * 1000))
                if self._outgoing in ready and not self._forward():
                    return
                if self._socket in ready:
                    self._guard(self._receive)  # a message we cannot take is dropped, logged
                if self._monitor in ready:
                    self._watch()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK_S
                    if self._on_tick is not None:
                        self._guard(self._on_tick)
        finally:
            self._socket.disable_monitor()
            for sock in (self._monitor, self._outgoing, self._socket):
                sock.close(linger=0)

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except Exception:  # a callback's bug must not end the connection
            logger.exception("ray:// connection callback failed")

    def _forward(self) -> bool:
        while True:
            try:
                frames = self._outgoing.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return True
            if len(frames) == 1 and len(frames[0]) == 0:
                return False  # close()
            self._socket.send_multipart(frames, copy=False)

    def _watch(self):
        while True:
            try:
                kind = monitor_event(self._monitor.recv_multipart(zmq.NOBLOCK))[0]
            except zmq.Again:
                return
            except ValueError:
                continue
            if kind == zmq.EVENT_DISCONNECTED:
                self.connected = False
                self.disconnects += 1
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.connected = True
                if self._on_connected is not None:
                    self._guard(self._on_connected)

    def _receive(self):
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            try:
                record, _, _ = P.decode(frames[0].buffer, frames[1].buffer)
            except P.ProtocolError as exc:
                logger.warning("dropped a malformed ray:// message: %s", exc)
                continue
            payload = [f.buffer for f in frames[2:]]
            if isinstance(record, P.ClientChunk):
                self._add_chunk(record, payload)
            elif isinstance(record, (P.ClientRequest, P.ClientReply)):
                self._start(record, payload)
            else:
                self._guard(self._on_message, record, payload)

    def _start(self, head, attached: list):
        sizes = head.sizes
        small = iter(attached)
        frames: list = []
        missing = 0
        try:
            for size in sizes:
                if not isinstance(size, int) or size < 0:
                    raise ValueError(size)
                if size <= P.CLIENT_CHUNK_BYTES:
                    frames.append(next(small))
                else:
                    frames.append(bytearray(size))
                    missing += size
        except (StopIteration, ValueError, MemoryError, OverflowError) as exc:
            logger.warning("dropped a ray:// message whose frames cannot be taken: %r", exc)
            return
        if missing:
            # A resent message replaces a partial one whose chunks were lost with a connection.
            self._assemblies[head.seq] = _Assembly(head, frames, missing)
        else:
            self._assemblies.pop(head.seq, None)
            self._guard(self._on_message, head, frames)

    def _add_chunk(self, chunk, payload: list):
        assembly = self._assemblies.get(chunk.seq)
        if assembly is None or len(payload) != 1:
            return  # its message was completed, or replaced, already
        try:
            target = assembly.frames[chunk.frame]
            piece = payload[0]
            end = chunk.offset + piece.nbytes
            if not isinstance(target, bytearray) or chunk.offset < 0 or end > len(target):
                raise IndexError(chunk.frame)
        except (IndexError, TypeError):
            logger.warning("dropped a ray:// chunk outside its message")
            return
        target[chunk.offset : end] = piece
        assembly.missing -= piece.nbytes
        if assembly.missing <= 0:
            del self._assemblies[chunk.seq]
            self._guard(self._on_message, assembly.head, assembly.frames)
