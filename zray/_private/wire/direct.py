"""Direct calls: task and actor-call pushes between processes of one machine over a plain Unix
stream socket, without ZeroMQ.

A ZeroMQ message wakes libzmq's I/O thread on both sides, and the worker's own I/O thread then
hands the call to the thread that runs it: on two shared cores those wake-ups, not Python,
were most of a synchronous call (docs/benchmarks.md). Here the owner's thread writes the call
into the socket itself, the worker's executing thread is the one blocked reading it, and the
answer comes back on the same connection to the owner's I/O thread. Everything else (leases,
borrowers, failures, calls from other machines) stays on ZeroMQ; a worker that dies closes its
connections, and the node's WorkerDied or the head's ActorState still decide about retries.

A worker advertises `direct://PATH` as one more part of its address. Only processes of the
worker's own user may connect (SO_PEERCRED): they could read the cluster token anyway (see
docs/protocol.md, Security). What they write is not trusted: see `Server`.

Wire format, repeated: u32 frame count, one u32 length per frame, then the frames; the first
two frames are a zray header and body (zray/_private/wire/protocol.py), the rest the payload.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import threading
from collections import deque

from zray._fast import FramingError, Unpacker, pack, unsent
from zray._private.wire import protocol as P
from zray._private.wire.pacing import spin

logger = logging.getLogger(__name__)

SCHEME = "direct://"
READ_CHUNK = 256 * 1024
SOCKET_BUFFER_BYTES = 4 * 2**20
# Held sends (Connection.send(hold=True)) go out in one sendmsg once this many wait.
HOLD_MAX = 16
IOV_MAX = 1024  # buffers per sendmsg (Linux)


def direct_path(address: str):
    for part in address.split("|"):
        if part.startswith(SCHEME):
            return part[len(SCHEME) :]
    return None


def decode(frames):
    """(msg, seq, flags, payload) or None for a message that is dropped (logged)."""
    decoded = _decode(frames)
    if type(decoded) is str:
        logger.warning("dropped direct message: %s", decoded)
        return None
    return decoded


def _decode(frames):
    """(msg, seq, flags, payload), or why the message cannot be decoded."""
    if len(frames) < 2:
        return f"{len(frames)} frames"
    try:
        msg, seq, flags = P.decode(frames[0].buffer, frames[1].buffer)
    except Exception as exc:  # a decoder bug must not end the connection's reader
        return str(exc) or type(exc).__name__
    return msg, seq, flags, frames[2:]


def _tune(sock: socket.socket):
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        except OSError:
            pass


class Connection:
    """One end of a direct connection. Any thread may send; a send never blocks: what the
    socket cannot take now waits in `_pending` until `flush` (the reader's loop calls it when
    the socket is writable), so `f.remote()` never waits on a busy worker."""

    def __init__(self, sock: socket.socket, address: str = ""):
        sock.setblocking(False)
        _tune(sock)
        self.address = address  # the peer's advertised address (owner side)
        self.sock = sock
        self.fd = sock.fileno()
        self.unpacker = Unpacker()
        self._inbox = None  # recv buffer, made by the first read
        self.closed = False
        self.failure = ""  # why `read` gave up on the stream, if it was garbage
        self._lock = threading.Lock()
        self._pending: deque = deque()
        self._held: list = []  # buffers of messages sent with hold=True, not written yet
        self._held_count = 0
        self.on_backlog = None  # called (outside the lock) when sends start to queue

    def send(self, msg, seq: int = 0, flags: int = 0, payload=(), hold: bool = False) -> bool:
        """Writes one message, or with `hold` keeps it for `release` (which the caller must
        see to) unless HOLD_MAX messages are held already: then they all go in one sendmsg.
        Messages leave in the order they were given either way."""
        return self.send_framed(pack([*P.encode(msg, seq, flags), *payload]), hold)

    def send_framed(self, buffers: list, hold: bool = False) -> bool:
        """`send` of a message framed already (the stream's `pack`, or
        `zray._fast.frame_actor_call`'s bytes in a list)."""
        with self._lock:
            if self.closed:
                return False
            if self._held:
                self._held.extend(buffers)
                self._held_count += 1
                if hold and self._held_count < HOLD_MAX and len(self._held) < IOV_MAX // 2:
                    return True
                buffers = self._take_held()
            elif hold:
                self._held, self._held_count = buffers, 1
                return True
            written, backlogged = self._write_locked(buffers)
        if backlogged and self.on_backlog is not None:
            self.on_backlog(self)
        return written

    def release(self) -> bool:
        """Writes the held messages; returns False if the connection is closed."""
        with self._lock:
            if self.closed:
                return False
            if not self._held:
                return True
            written, backlogged = self._write_locked(self._take_held())
        if backlogged and self.on_backlog is not None:
            self.on_backlog(self)
        return written

    def _take_held(self) -> list:
        buffers, self._held, self._held_count = self._held, [], 0
        return buffers

    def _write_locked(self, buffers) -> tuple[bool, bool]:
        """(written or queued, newly backlogged): what the socket cannot take now waits."""
        if self._pending:
            self._pending.extend(buffers)
            return True, False
        for start in range(0, len(buffers), IOV_MAX):  # sendmsg takes at most IOV_MAX
            chunk = buffers[start : start + IOV_MAX]
            try:
                sent = self.sock.sendmsg(chunk)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close_locked()
                return False, False
            rest = unsent(chunk, sent)
            if rest:
                self._pending.extend(rest)
                self._pending.extend(buffers[start + IOV_MAX :])
                return True, True
        return True, False

    @property
    def backlogged(self) -> bool:
        return bool(self._pending)

    def flush(self) -> bool:
        """Sends what waits; returns whether anything still does."""
        with self._lock:
            while self._pending and not self.closed:
                batch = [self._pending.popleft() for _ in range(min(64, len(self._pending)))]
                try:
                    sent = self.sock.sendmsg(batch)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self._close_locked()
                    return False
                rest = unsent(batch, sent)
                self._pending.extendleft(reversed(rest))
                if rest:
                    return True  # the socket is full again
            return bool(self._pending)

    def read(self) -> list | None:
        """Reads what the socket holds (only the one thread that reads this connection).
        Returns complete messages, or None once the peer is gone or the stream is garbage;
        that thread then unregisters the socket and calls `close`."""
        messages = []
        if self._inbox is None:
            self._inbox = memoryview(bytearray(READ_CHUNK))
        inbox = self._inbox
        while True:
            try:
                # Into a buffer kept for the connection: recv(READ_CHUNK) allocates 256 KiB per
                # call, which glibc often serves with mmap and munmap (17 us of a 20 us recv).
                data = bytes(inbox[: self.sock.recv_into(inbox)])
            except (BlockingIOError, InterruptedError):
                return messages
            except OSError as exc:
                if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                    logger.warning("direct connection failed: %s", exc)
                data = b""
            if not data:
                self.closed = True
                return messages or None
            try:
                messages.extend(self.unpacker.feed(data))
            except FramingError as exc:  # the reader logs it: it knows who sent garbage
                self.failure = str(exc)
                self.closed = True
                return messages or None
            if len(data) < READ_CHUNK:
                return messages

    def close(self):
        """Closes the socket: only its reading thread, once the fd is no longer polled (a
        sender closing it could hand the fd number to a new socket still being polled)."""
        with self._lock:
            self._close_locked()
            self.sock.close()

    def _close_locked(self):
        self.closed = True
        self._pending.clear()
        self._held, self._held_count = [], 0


class Waker:
    """A non-blocking pipe that makes another thread's poll return: any thread may `wake`."""

    def __init__(self):
        self.fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self):
        try:
            os.write(self._write_fd, b"\0")
        except OSError:  # full (already woken) or closed (shutting down)
            pass

    def drain(self):
        try:
            os.read(self.fd, 4096)
        except OSError:
            pass

    def close(self):
        for fd in (self.fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _peer_is_us(sock: socket.socket) -> bool:
    try:
        _pid, uid, _gid = struct.unpack(
            "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        )
    except OSError:
        return False
    return uid == os.getuid()


class Server:
    """Worker side: accepts local owners and reads their calls. Read only by the thread that
    executes them (`poll`); other threads hand work to that thread through `wake`.

    Whoever can connect may write anything: a stream that is not framing, a message that does
    not decode, or one `check(msg, nframes)` finds a problem with (it returns why) ends that
    connection (a real owner never sends one, and the stream cannot be trusted after it), is
    counted in `dropped` and logged now and then; the server and its other connections go on."""

    def __init__(self, path: str, check=None):
        self.path = path
        self._check = check
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(128)
        self.listener.setblocking(False)
        # A bare epoll: the selectors module's key objects cost a few microseconds per call.
        self._epoll = select.epoll()
        self._epoll.register(self.listener.fileno(), select.EPOLLIN)
        self._waker = Waker()
        self._epoll.register(self._waker.fd, select.EPOLLIN)
        self.connections: dict[int, Connection] = {}
        self.ready: deque = deque()  # (msg, payload, connection) in arrival order
        self.refused = 0
        self.dropped = 0  # connections ended for sending what cannot be used
        self._interest: deque = deque()  # connections whose replies queued up

    @property
    def address(self) -> str:
        return SCHEME + self.path

    def fileno(self) -> int:
        """Readable when `poll` would find work: another thread's poll may watch it."""
        return self._epoll.fileno()

    def wake(self):
        """From any thread: the reading thread leaves `poll` (work was queued elsewhere)."""
        self._waker.wake()

    def poll(self, timeout: float, spin_s: float = 0.0):
        """Waits up to `timeout` for calls (spinning `spin_s` first, see `spin`); decoded ones
        are appended to `ready`."""
        self.apply_interest()
        # maxevents given: by default epoll.poll allocates room for 1,023 events per call.
        maxevents = len(self.connections) + 2
        events = (
            spin(lambda: self._epoll.poll(0, maxevents), min(spin_s, timeout)) if spin_s else None
        )
        for fd, flags in events or self._epoll.poll(timeout, maxevents):
            connection = self.connections.get(fd)
            if connection is not None:
                if flags & select.EPOLLOUT:
                    self._flushed(connection)
                if flags & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    self._read(connection)
            elif fd == self._waker.fd:
                self._waker.drain()
            elif fd == self.listener.fileno():
                self._accept()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("direct accept failed: %s", exc)
                return
            if not _peer_is_us(sock):
                self.refused += 1
                logger.warning("refused a direct connection from another user")
                sock.close()
                continue
            connection = Connection(sock)
            connection.on_backlog = self._watch_writable
            self.connections[connection.fd] = connection
            self._epoll.register(connection.fd, select.EPOLLIN)

    def _watch_writable(self, connection: Connection):
        # Replies are sent by the thread that reads (or by actor threads, which wake it).
        self._interest.append(connection)
        self.wake()

    def _read(self, connection: Connection):
        messages = connection.read()
        check, ready = self._check, self.ready
        for frames in messages or ():
            decoded = _decode(frames)
            if type(decoded) is str:
                return self._refuse(connection, decoded)
            msg, _seq, _flags, payload = decoded
            if check is not None:
                problem = check(msg, len(payload))
                if problem is not None:
                    return self._refuse(connection, problem)
            ready.append((msg, payload, connection))
        if connection.failure:
            return self._refuse(connection, connection.failure)
        if messages is None or connection.closed:
            self._drop(connection)

    def _refuse(self, connection: Connection, why: str):
        self.dropped += 1
        if self.dropped <= 10 or self.dropped % 1000 == 0:
            logger.warning(
                "closed direct connection #%d that sent what cannot be used: %s", self.dropped, why
            )
        self._drop(connection)

    def _flushed(self, connection: Connection):
        if not connection.flush():
            self._set_events(connection, select.EPOLLIN)

    def apply_interest(self):
        """Watches for room on connections whose sends queued up (reading thread only)."""
        while self._interest:
            connection = self._interest.popleft()
            if not connection.closed and connection.backlogged:
                self._set_events(connection, select.EPOLLIN | select.EPOLLOUT)

    def _set_events(self, connection: Connection, events: int):
        if connection.fd in self.connections:
            self._epoll.modify(connection.fd, events)

    def _drop(self, connection: Connection):
        if self.connections.pop(connection.fd, None) is not None:
            self._epoll.unregister(connection.fd)
        connection.close()

    def close(self):
        for connection in list(self.connections.values()):
            self._drop(connection)
        self._epoll.close()
        self.listener.close()
        self._waker.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


_UNKNOWN = object()


class Channels:
    """Owner side: one connection per local worker, opened by whichever thread first pushes to
    it and read by the I/O thread (which `wake` interrupts to take up new connections)."""

    def __init__(self, wake):
        self._wake = wake
        self._lock = threading.Lock()
        self._by_address: dict = {}  # address -> Connection, or None: not reachable directly
        self.by_fd: dict[int, Connection] = {}
        self.changes: deque = deque()  # connections the I/O thread must (re)register

    def get(self, address: str):
        connection = self._by_address.get(address, _UNKNOWN)
        if connection is _UNKNOWN:
            with self._lock:
                connection = self._by_address.get(address, _UNKNOWN)
                if connection is _UNKNOWN:
                    connection = self._by_address[address] = self._open(address)
        return connection

    def opened(self, address: str):
        """The open connection to `address`, if one was opened (None otherwise)."""
        connection = self._by_address.get(address)
        return connection if isinstance(connection, Connection) else None

    def _open(self, address: str):
        path = direct_path(address)
        if path is None or not os.path.exists(path):
            return None  # another machine's worker, or one without direct calls
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5.0)
        try:
            sock.connect(path)
        except OSError as exc:  # e.g. refused: the worker died and left its socket file
            sock.close()
            logger.debug("direct connection to %s failed (%s): using ZeroMQ", path, exc)
            return None
        connection = Connection(sock, address)
        connection.on_backlog = self._backlogged
        self.by_fd[connection.fd] = connection
        self.changes.append(connection)
        self._wake()
        return connection

    def _backlogged(self, connection: Connection):
        self.changes.append(connection)
        self._wake()

    def forget(self, connection: Connection):
        """The I/O thread saw the connection end (its worker is gone)."""
        self.by_fd.pop(connection.fd, None)
        with self._lock:
            if self._by_address.get(connection.address) is connection:
                del self._by_address[connection.address]
        connection.close()

    def close(self):
        with self._lock:
            connections = [c for c in self._by_address.values() if c is not None]
            self._by_address.clear()
        for connection in connections:
            connection.close()
        self.by_fd.clear()
